/* link_held.c: security events that wait for the module line of the same attempt (linker.py's
 * _held, _waits_for_line, _take_held, _merge and their part of release), so that one attempt is
 * one event that knows what both copies know, whichever copy came first. */
#include "link.h"

int waits_for_line(PyObject *ev)
{
    int service = event_service(ev);
    return family(event_kind(ev)) == FAM_AUTH && (service == S_PJSIP || service == S_CHAN_SIP);
}

static void held_drop(linker *lk, int k) /* removes entry k; its reference goes to the caller */
{
    memmove(&lk->held[k], &lk->held[k + 1], (size_t)(lk->hlen - k - 1) * sizeof *lk->held);
    lk->hlen--;
}

int held_push(linker *lk, PyObject *ev, PyObject *out)
{
    if (lk->hlen == lk->hcap) {
        int cap = lk->hcap ? lk->hcap * 2 : 16;
        PyObject **a = PyMem_Realloc(lk->held, (size_t)cap * sizeof *a);
        if (a == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        lk->held = a;
        lk->hcap = cap;
    }
    Py_INCREF(ev);
    lk->held[lk->hlen++] = ev;
    if (lk->hlen > MAX_PENDING) {
        lk->st->evicted++;
        PyObject *old = lk->held[0];
        held_drop(lk, 0);
        int r = PyList_Append(out, old);
        Py_DECREF(old);
        return r;
    }
    return 0;
}

static int same_ip(linker *lk, PyObject *a, PyObject *b) /* a == b for two addresses */
{
    if (a == b)
        return 1;
    ipkey ka, kb;
    if (ip_key(lk, a, &ka) < 0 || ip_key(lk, b, &kb) < 0)
        return -1;
    if (ka.version != kb.version || ka.lo != kb.lo || ka.hi != kb.hi)
        return 0;
    return obj_eq(ka.scope, kb.scope);
}

PyObject *take_held(linker *lk, PyObject *line)
{
    int fam = family(event_kind(line));
    PyObject *ip = event_get(line, F_IP);
    for (int k = 0; k < lk->hlen; k++) {
        PyObject *h = lk->held[k];
        int r = same_ip(lk, event_get(h, F_IP), ip);
        if (r == 1)
            r = family(event_kind(h)) == fam;
        if (r == 1)
            r = same_attempt(lk, event_time(h), none_to_null(event_get(h, F_PORT)),
                             none_to_null(event_get(h, F_CALL_ID)), line);
        if (r < 0)
            return NULL;
        if (r) {
            held_drop(lk, k);
            return h;
        }
    }
    return NULL;
}

PyObject *merge(PyObject *held, PyObject *line)
{
    static const int FIELDS[] = {F_USER_AGENT, F_ACCOUNT, F_TARGET};
    PyObject *m = event_copy(held);
    if (m == NULL)
        return NULL;
    for (size_t i = 0; i < sizeof FIELDS / sizeof *FIELDS; i++) {
        int have = truthy(event_get(held, FIELDS[i]));
        if (have < 0) {
            Py_DECREF(m);
            return NULL;
        }
        if (!have)
            event_set(m, FIELDS[i], event_get(line, FIELDS[i]));
    }
    return m;
}

int held_release(linker *lk, double now, int all, PyObject *out)
{
    while (lk->hlen > 0 && (all || event_time(lk->held[0]) + MERGE_WAIT < now)) {
        PyObject *h = lk->held[0];
        held_drop(lk, 0); /* its line never came: the event as it is */
        int r = PyList_Append(out, h);
        Py_DECREF(h);
        if (r < 0)
            return -1;
    }
    return 0;
}

void held_free(linker *lk)
{
    for (int i = 0; i < lk->hlen; i++)
        Py_CLEAR(lk->held[i]);
    PyMem_Free(lk->held);
    lk->held = NULL;
    lk->hlen = lk->hcap = 0;
}
