/* link_new.c: the linker's creation and freeing, and the exact keys of addresses. */
#include "link.h"

#include <structmember.h>

/* The offset of a slot attribute (a T_OBJECT_EX member descriptor of the type), else -1. */
static Py_ssize_t member_offset(PyObject *type, const char *name)
{
    PyObject *d = PyObject_GetAttrString(type, name);
    if (d == NULL) {
        PyErr_Clear();
        return -1;
    }
    Py_ssize_t off = -1;
    if (Py_IS_TYPE(d, &PyMemberDescr_Type)) {
        PyMemberDef *m = ((PyMemberDescrObject *)d)->d_member;
        if (m->type == T_OBJECT_EX && !(m->flags & READ_RESTRICTED))
            off = m->offset;
    }
    Py_DECREF(d);
    return off;
}

PyObject *slot_attr(PyObject *obj, PyObject *type, Py_ssize_t off, PyObject *name)
{
    if (off >= 0 && (PyObject *)Py_TYPE(obj) == type) {
        PyObject *v = *(PyObject **)((char *)obj + off);
        if (v != NULL) {
            Py_INCREF(v);
            return v;
        }
    }
    return PyObject_GetAttr(obj, name); /* raises as Python would */
}

linker *linker_new(fast_stats *st, double link_window, double challenge_window)
{
    linker *lk = PyMem_Calloc(1, sizeof *lk);
    if (lk == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    lk->st = st;
    lk->window = link_window;
    lk->cwindow = challenge_window;
    map_init(&lk->copies, MAP_COPIES);
    map_init(&lk->pairs, MAP_PAIRS);
    map_init(&lk->nomatch, MAP_TIME);
    map_init(&lk->ami_nouser, MAP_TIME);
    map_init(&lk->answers, MAP_TIME);
    map_init(&lk->challenges, MAP_EVENTS);
    lk->pend = PyMem_Calloc(PEND_CAP, sizeof *lk->pend);
    if (lk->pend == NULL)
        goto fail;
    PyObject *mod = PyImport_ImportModule("ipaddress");
    if (mod == NULL)
        goto fail;
    lk->v4type = PyObject_GetAttrString(mod, "IPv4Address");
    lk->v6type = PyObject_GetAttrString(mod, "IPv6Address");
    Py_DECREF(mod);
    mod = PyImport_ImportModule("sipguard.core.events");
    if (mod == NULL)
        goto fail;
    lk->origin_type = PyObject_GetAttrString(mod, "Origin");
    Py_DECREF(mod);
    if (!lk->v4type || !lk->v6type || !lk->origin_type)
        goto fail;
    lk->off_v4ip = member_offset(lk->v4type, "_ip");
    lk->off_v6ip = member_offset(lk->v6type, "_ip");
    lk->off_scope = member_offset(lk->v6type, "_scope_id");
    lk->off_source = member_offset(lk->origin_type, "source");
    lk->s_ip = PyUnicode_InternFromString("_ip");
    lk->s_scope = PyUnicode_InternFromString("_scope_id");
    lk->s_source = PyUnicode_InternFromString("source");
    lk->empty = PyUnicode_FromStringAndSize("", 0);
    lk->shift64 = PyLong_FromLong(64);
    if (!lk->v4type || !lk->v6type || !lk->s_ip || !lk->s_scope || !lk->s_source ||
        !lk->empty || !lk->shift64)
        goto fail;
    return lk;
fail:
    if (!PyErr_Occurred())
        PyErr_NoMemory();
    linker_free(lk);
    return NULL;
}

void linker_free(linker *lk)
{
    if (lk == NULL)
        return;
    map_free(&lk->copies);
    map_free(&lk->pairs);
    map_free(&lk->nomatch);
    map_free(&lk->ami_nouser);
    map_free(&lk->answers);
    map_free(&lk->challenges);
    if (lk->pend != NULL) {
        for (int i = 0; i < lk->plen; i++)
            cand_clear(PEND(lk, i));
        PyMem_Free(lk->pend);
    }
    for (int i = 0; i < lk->rlen; i++) {
        Py_CLEAR(REC(lk, i)->ev);
        Py_CLEAR(REC(lk, i)->tag);
    }
    for (size_t i = 0; i < lk->qlen; i++) {
        chq_e *e = &lk->q[(lk->qstart + i) % lk->qcap];
        key_drop(&e->key);
        Py_CLEAR(e->ev);
    }
    PyMem_Free(lk->q);
    held_free(lk);
    Py_XDECREF(lk->v4type);
    Py_XDECREF(lk->v6type);
    Py_XDECREF(lk->origin_type);
    Py_XDECREF(lk->s_ip);
    Py_XDECREF(lk->s_scope);
    Py_XDECREF(lk->s_source);
    Py_XDECREF(lk->empty);
    Py_XDECREF(lk->shift64);
    Py_XDECREF(lk->last_ip);
    PyMem_Free(lk);
}

int linker_waiting(const linker *lk) { return lk->plen > 0 || lk->qlen > 0 || lk->hlen > 0; }

/* The exact key of an address: ipaddress compares (version, _ip) and, for IPv6, the scope id.
 * The scope is BORROWED from the address object (kept alive by lk->last_ip). */
int ip_key(linker *lk, PyObject *ip, ipkey *out)
{
    memset(out, 0, sizeof *out);
    if (ip == NULL || ip == Py_None)
        return 0;
    if (ip == lk->last_ip) {
        *out = lk->last_key;
        return 0;
    }
    int v6 = PyObject_TypeCheck(ip, (PyTypeObject *)lk->v6type);
    if (!v6 && !PyObject_TypeCheck(ip, (PyTypeObject *)lk->v4type)) {
        PyErr_SetString(PyExc_TypeError, "linker: an event's ip is not an IP address");
        return -1;
    }
    PyObject *n = v6 ? slot_attr(ip, lk->v6type, lk->off_v6ip, lk->s_ip)
                     : slot_attr(ip, lk->v4type, lk->off_v4ip, lk->s_ip);
    if (n == NULL)
        return -1;
    out->lo = PyLong_AsUnsignedLongLongMask(n);
    if (out->lo == (unsigned long long)-1 && PyErr_Occurred()) {
        Py_DECREF(n);
        return -1;
    }
    out->version = 4;
    if (v6) {
        out->version = 6;
        PyObject *hi = PyNumber_Rshift(n, lk->shift64);
        if (hi == NULL) {
            Py_DECREF(n);
            return -1;
        }
        out->hi = PyLong_AsUnsignedLongLongMask(hi);
        Py_DECREF(hi);
        if (out->hi == (unsigned long long)-1 && PyErr_Occurred()) {
            Py_DECREF(n);
            return -1;
        }
        PyObject *scope = slot_attr(ip, lk->v6type, lk->off_scope, lk->s_scope);
        if (scope == NULL) {
            Py_DECREF(n);
            return -1;
        }
        out->scope = none_to_null(scope);
        Py_DECREF(scope); /* the address object holds it */
    }
    Py_DECREF(n);
    Py_INCREF(ip);
    Py_XSETREF(lk->last_ip, ip);
    lk->last_key = *out;
    return 0;
}
