/* link_pairs.c: the same attempt seen twice (linker.py's _is_copy, _paired_copy, _unpair,
 * _ami_repeat): copies of one file's line in another, a line and its security event, repeated
 * AMI failures. */
#include "link.h"

#include <math.h>

int is_copy(linker *lk, PyObject *ev)
{
    mkey k;
    memset(&k, 0, sizeof k);
    if (ip_key(lk, event_get(ev, F_IP), &k.ip) < 0)
        return -1;
    k.kind = event_kind(ev);
    k.t = event_time(ev);
    k.o[0] = none_to_null(event_get(ev, F_DETAIL));
    k.o[1] = none_to_null(event_get(ev, F_CALL_ID));
    k.o[2] = none_to_null(event_get(ev, F_PORT));
    k.o[3] = none_to_null(event_get(ev, F_ACCOUNT));
    uint64_t h;
    if (key_hash(&k, &h) < 0)
        return -1;
    PyObject *src = slot_attr(event_get(ev, F_ORIGIN), lk->origin_type, lk->off_source, lk->s_source);
    if (src == NULL)
        return -1;
    omap *m = &lk->copies;
    int32_t x = map_find(m, &k, h);
    if (x == -2)
        goto fail;
    if (x == -1) {
        x = map_insert(m, &k, h);
        if (x < 0)
            goto fail;
        m->nodes[x].val.copies.one.src = src; /* takes the reference */
        m->nodes[x].val.copies.one.count = 1;
        m->nodes[x].val.copies.n = 1;
        if (m->count > MAX_MAP)
            map_remove(m, m->head);
        return 0;
    }
    node *n = &m->nodes[x];
    srccount *v = n->val.copies.v ? n->val.copies.v : &n->val.copies.one;
    long long mine = 0;
    int at = -1;
    for (int i = 0; i < n->val.copies.n; i++) {
        int r = obj_eq(v[i].src, src);
        if (r < 0)
            goto fail;
        if (r) {
            mine = v[i].count;
            at = i;
        }
    }
    if (at < 0) {
        if (n->val.copies.n == n->val.copies.cap || n->val.copies.v == NULL) {
            int cap = n->val.copies.cap ? n->val.copies.cap * 2 : 4;
            srccount *nv = PyMem_Realloc(n->val.copies.v, (size_t)cap * sizeof *nv);
            if (nv == NULL) {
                PyErr_NoMemory();
                goto fail;
            }
            if (n->val.copies.v == NULL)
                nv[0] = n->val.copies.one;
            n->val.copies.v = nv;
            n->val.copies.cap = cap;
            v = nv;
        }
        v[n->val.copies.n].src = src; /* takes the reference */
        v[n->val.copies.n].count = 1;
        at = n->val.copies.n++;
        src = NULL;
    } else {
        v[at].count = mine + 1;
    }
    int copy = 0;
    for (int i = 0; i < n->val.copies.n && !copy; i++) {
        if (i == at)
            continue;
        int r = obj_eq(v[i].src, v[at].src);
        if (r < 0)
            goto fail;
        copy = !r && v[i].count > mine;
    }
    Py_XDECREF(src);
    return copy;
fail:
    Py_XDECREF(src);
    return -1;
}

static void side_drop(pside *sd, int k) /* deletes entry k (0-based from start) */
{
    pentry *e = &sd->a[sd->start + k];
    Py_CLEAR(e->port);
    Py_CLEAR(e->call_id);
    /* the entries before k move up one: k is small (< 8) on the hot path */
    memmove(&sd->a[sd->start + 1], &sd->a[sd->start], (size_t)k * sizeof *e);
    sd->start++;
    sd->len--;
    if (sd->len == 0)
        sd->start = 0;
}

static int side_push(pside *sd, double t, PyObject *port, PyObject *call_id)
{
    if (sd->len >= PAIR_CAP)
        side_drop(sd, 0); /* the oldest goes, as from a full bounded deque */
    if (sd->start + sd->len == sd->cap) {
        if (sd->start > 0 && sd->len < sd->cap / 2 + 1) {
            memmove(sd->a, &sd->a[sd->start], (size_t)sd->len * sizeof *sd->a);
            sd->start = 0;
        } else {
            int cap = sd->cap ? sd->cap * 2 : 4;
            pentry *a = PyMem_Realloc(sd->a, (size_t)cap * sizeof *a);
            if (a == NULL) {
                PyErr_NoMemory();
                return -1;
            }
            sd->a = a;
            sd->cap = cap;
        }
    }
    pentry *e = &sd->a[sd->start + sd->len++];
    e->t = t;
    e->port = port;
    e->call_id = call_id;
    Py_XINCREF(port);
    Py_XINCREF(call_id);
    return 0;
}

/* _paired_copy: 1 when ev is the partner of a waiting line of the other side */
int paired_copy(linker *lk, PyObject *ev, const ipkey *ik, int channel)
{
    int fam = family(event_kind(ev));
    if (fam < 0)
        return 0;
    mkey k;
    memset(&k, 0, sizeof k);
    k.ip = *ik;
    k.kind = fam;
    uint64_t h;
    if (key_hash(&k, &h) < 0)
        return -1;
    omap *m = &lk->pairs;
    int32_t x = map_find(m, &k, h);
    if (x == -2)
        return -1;
    if (x == -1) {
        x = map_insert(m, &k, h);
        if (x < 0)
            return -1;
        if (m->count > MAX_MAP)
            map_remove(m, m->head);
    } else {
        map_move_to_end(m, x);
    }
    node *n = &m->nodes[x];
    int mine = channel == CH_LOG ? 0 : 1;
    pside *other = &n->val.sides[1 - mine];
    double now = event_time(ev);
    double horizon = now - lk->window;
    if (other->len > 0 && other->a[other->start].t < horizon) {
        int drop = 1;
        while (drop < other->len && other->a[other->start + drop].t < horizon)
            drop++;
        for (int i = 0; i < drop; i++) {
            Py_CLEAR(other->a[other->start + i].port);
            Py_CLEAR(other->a[other->start + i].call_id);
        }
        other->start += drop;
        other->len -= drop;
        if (other->len == 0)
            other->start = 0;
    }
    PyObject *port = none_to_null(event_get(ev, F_PORT));
    PyObject *call_id = none_to_null(event_get(ev, F_CALL_ID));
    int lim = other->len < 8 ? other->len : 8; /* the 8 oldest waiting lines */
    for (int i = 0; i < lim; i++) {
        pentry *e = &other->a[other->start + i];
        int r = same_attempt(lk, e->t, e->port, e->call_id, ev);
        if (r < 0)
            return -1;
        if (r) {
            side_drop(other, i);
            if (other->len == 0 && n->val.sides[mine].len == 0)
                map_remove(m, x); /* nothing waits here: an empty slot is no slot */
            return 1;
        }
    }
    return side_push(&n->val.sides[mine], now, port, call_id) < 0 ? -1 : 0;
}

int unpair(linker *lk, PyObject *ev)
{
    int fam = family(event_kind(ev));
    if (fam < 0)
        return 0; /* (ip, None) is never a key */
    mkey k;
    memset(&k, 0, sizeof k);
    if (ip_key(lk, event_get(ev, F_IP), &k.ip) < 0)
        return -1;
    k.kind = fam;
    uint64_t h;
    if (key_hash(&k, &h) < 0)
        return -1;
    int32_t x = map_find(&lk->pairs, &k, h);
    if (x < 0)
        return x == -2 ? -1 : 0;
    pside *side = &lk->pairs.nodes[x].val.sides[1];
    double t = event_time(ev);
    PyObject *port = none_to_null(event_get(ev, F_PORT));
    for (int i = 0; i < side->len; i++) {
        pentry *e = &side->a[side->start + i];
        if (e->t != t)
            continue;
        int r = obj_eq(e->port, port); /* None == None here */
        if (r < 0)
            return -1;
        if (r) {
            side_drop(side, i);
            return 0;
        }
    }
    return 0;
}

int ami_repeat(linker *lk, PyObject *ev, const ipkey *ik, int channel)
{
    if (event_kind(ev) != K_AMI_LOGIN_FAILED || channel != CH_LOG)
        return 0;
    mkey k;
    memset(&k, 0, sizeof k);
    k.ip = *ik;
    k.o[0] = none_to_null(event_get(ev, F_ACCOUNT));
    uint64_t h;
    if (key_hash(&k, &h) < 0)
        return -1;
    PyObject *detail = event_get(ev, F_DETAIL);
    if (PyUnicode_Check(detail) && PyUnicode_CompareWithASCIIString(detail, "nonexistent user") == 0)
        return bounded_put(&lk->ami_nouser, &k, h, event_time(ev));
    int32_t x = map_find(&lk->ami_nouser, &k, h);
    if (x < 0)
        return x == -2 ? -1 : 0;
    double t = lk->ami_nouser.nodes[x].val.t;
    map_remove(&lk->ami_nouser, x);
    return fabs(event_time(ev) - t) <= 1.0;
}
