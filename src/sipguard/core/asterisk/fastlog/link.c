/* link.c: linker.Linker in C (dedup, linking of address-less lines, unanswered challenges).
 *
 * linker.py is the reference; every function here mirrors the method of the same name, in the
 * same order of tests, so the events, their order and the stats are identical. The maps are
 * C hash tables with an insertion-ordered list (OrderedDict: move_to_end, popitem(last=False))
 * keyed on cheap exact values: the kind's index, the time as a double, the address as
 * (version, 128-bit int, scope id) read from the ipaddress object's `_ip` (its own __hash__ is
 * Python code), and str/int objects compared with ==.
 */
#include "fast.h"

#include <math.h>
#include <structmember.h>
#include <string.h>

#define LOOKBACK 0.005
#define MAX_MAP 65536
#define MAX_PENDING 4096
#define MAX_CHALLENGES 50000
#define PAIR_CAP 4096
#define SCAN 64
#define RECENT 1024     /* _recent's maxlen */
#define PEND_CAP 8192   /* ring size: more than MAX_PENDING + 1, a power of two */

/* linker.FAMILY by KIND index; -1 stands for None (FAMILY.get(kind) == None) */
enum { FAM_AUTH, FAM_DENY, FAM_CALL, FAM_MALFORMED, FAM_AMI, FAM_SUCCESS, FAM_LIMIT };
static const int FAMILY[NKINDS] = {
    [K_WRONG_PASSWORD] = FAM_AUTH, [K_UNKNOWN_ACCOUNT] = FAM_AUTH,
    [K_AUTH_NAME_MISMATCH] = FAM_AUTH, [K_ACL_DENIED] = FAM_DENY,
    [K_CALL_REJECTED] = FAM_CALL, [K_REQUEST_NOT_ALLOWED] = FAM_DENY,
    [K_MALFORMED_REQUEST] = FAM_MALFORMED, [K_SCANNER_PROBE] = -1,
    [K_CHALLENGE_UNANSWERED] = -1, [K_AMI_LOGIN_FAILED] = FAM_AMI, [K_LIMIT] = FAM_LIMIT,
    [K_LOG_TAMPERING] = -1, [K_SENSOR_DROP] = -1, [K_TOLL_FRAUD] = -1,
    [K_CHALLENGE_SENT] = -1, [K_AUTH_SUCCESS] = FAM_SUCCESS,
    [K_AMI_LOGIN_SUCCESS] = FAM_SUCCESS,
};

static int family(int kind) { return kind >= 0 && kind < NKINDS ? FAMILY[kind] : -1; }

/* ---- keys ----------------------------------------------------------------------------------- */
typedef struct {
    uint64_t lo, hi;  /* the address as an integer (IPv4 in lo) */
    PyObject *scope;  /* IPv6 scope id (str) or NULL */
    int version;      /* 0 for None, 4, 6 */
} ipkey;

/* One key shape for every map; the fields a map does not use stay 0/NULL. Objects are BORROWED
 * in a key built for a lookup and OWNED once stored. NULL stands for None. */
typedef struct {
    ipkey ip;
    PyObject *o[4];
    double t;
    int kind;
} mkey;

/* 1 equal, 0 not, -1 error: Python's == for str/int/None (None is NULL here) */
static int obj_eq(PyObject *a, PyObject *b)
{
    if (a == b)
        return 1;
    if (a == NULL || b == NULL)
        return 0;
    if (PyUnicode_CheckExact(a) && PyUnicode_CheckExact(b)) {
        Py_ssize_t n = PyUnicode_GET_LENGTH(a);
        if (n != PyUnicode_GET_LENGTH(b) || PyUnicode_KIND(a) != PyUnicode_KIND(b))
            return 0;
        return memcmp(PyUnicode_DATA(a), PyUnicode_DATA(b), (size_t)n * PyUnicode_KIND(a)) == 0;
    }
    return PyObject_RichCompareBool(a, b, Py_EQ);
}

static PyObject *none_to_null(PyObject *o) { return o == Py_None ? NULL : o; }

static int truthy(PyObject *o) /* -1 on error */
{
    if (o == NULL || o == Py_None)
        return 0;
    if (PyUnicode_CheckExact(o))
        return PyUnicode_GET_LENGTH(o) > 0;
    return PyObject_IsTrue(o);
}

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    return h;
}

/* hash(o); a str's cached hash is read directly (the keys hold mostly fresh strings and a few
 * shared ones: a call through PyObject_Hash for each costs more than the whole lookup) */
static Py_hash_t obj_hash(PyObject *o)
{
    if (PyUnicode_CheckExact(o)) {
        Py_hash_t h = ((PyASCIIObject *)o)->hash;
        if (h != -1)
            return h;
    }
    return PyObject_Hash(o);
}

static int key_hash(const mkey *k, uint64_t *out)
{
    uint64_t h = (uint64_t)k->kind * 0x100000001b3ULL;
    h = mix(h, k->ip.lo);
    h = mix(h, k->ip.hi);
    h = mix(h, (uint64_t)k->ip.version);
    double t = k->t == 0.0 ? 0.0 : k->t; /* -0.0 == 0.0 */
    uint64_t tb;
    memcpy(&tb, &t, sizeof tb);
    h = mix(h, tb);
    for (int i = 0; i < 4; i++) {
        if (k->o[i] != NULL) {
            Py_hash_t oh = obj_hash(k->o[i]);
            if (oh == -1 && PyErr_Occurred())
                return -1;
            h = mix(h, (uint64_t)oh);
        } else {
            h = mix(h, 0x5bd1e995ULL);
        }
    }
    if (k->ip.scope != NULL) {
        Py_hash_t oh = obj_hash(k->ip.scope);
        if (oh == -1 && PyErr_Occurred())
            return -1;
        h = mix(h, (uint64_t)oh);
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    *out = h;
    return 0;
}

static int key_eq(const mkey *a, const mkey *b)
{
    if (a->kind != b->kind || a->t != b->t || a->ip.version != b->ip.version ||
        a->ip.lo != b->ip.lo || a->ip.hi != b->ip.hi)
        return 0;
    int r = obj_eq(a->ip.scope, b->ip.scope);
    for (int i = 0; r == 1 && i < 4; i++)
        r = obj_eq(a->o[i], b->o[i]);
    return r;
}

static void key_own(mkey *k)
{
    Py_XINCREF(k->ip.scope);
    for (int i = 0; i < 4; i++)
        Py_XINCREF(k->o[i]);
}

static void key_drop(mkey *k)
{
    Py_CLEAR(k->ip.scope);
    for (int i = 0; i < 4; i++)
        Py_CLEAR(k->o[i]);
}

/* ---- ordered maps ---------------------------------------------------------------------------- */
typedef struct { double t; PyObject *port, *call_id; } pentry; /* a waiting line, OWNED refs */
typedef struct { pentry *a; int start, len, cap; } pside;       /* a[start .. start+len) */
typedef struct { PyObject *src; long long count; } srccount;

enum { MAP_TIME, MAP_COPIES, MAP_PAIRS, MAP_EVENTS };

typedef struct {
    mkey key;
    uint64_t hash;
    int32_t prev, next; /* insertion order; next is also the free list */
    union {
        double t;
        struct { srccount one; srccount *v; int n, cap; } copies; /* v NULL: only `one` */
        pside sides[2];                                          /* LOG, SECURITY */
        struct { PyObject **v; int n, cap; } evs;
    } val;
} node;

/* A table slot: the node index (-1: empty) and the hash's low bits, so that a probe past
 * another key does not have to read that key's node (a cache miss in a map of 65536) */
typedef struct { int32_t x; uint32_t h; } slot;

typedef struct {
    node *nodes;
    int32_t ncap, nhigh, free_head;
    slot *slots;
    uint32_t mask;
    int32_t count, head, tail;
    int type;
} omap;

static void map_init(omap *m, int type)
{
    memset(m, 0, sizeof *m);
    m->free_head = m->head = m->tail = -1;
    m->type = type;
}

static void node_clear(omap *m, node *n)
{
    key_drop(&n->key);
    if (m->type == MAP_COPIES) {
        if (n->val.copies.v == NULL) {
            Py_CLEAR(n->val.copies.one.src);
        } else {
            for (int i = 0; i < n->val.copies.n; i++)
                Py_CLEAR(n->val.copies.v[i].src);
            PyMem_Free(n->val.copies.v);
        }
    } else if (m->type == MAP_PAIRS) {
        for (int s = 0; s < 2; s++) {
            pside *sd = &n->val.sides[s];
            for (int i = 0; i < sd->len; i++) {
                Py_CLEAR(sd->a[sd->start + i].port);
                Py_CLEAR(sd->a[sd->start + i].call_id);
            }
            PyMem_Free(sd->a);
        }
    } else if (m->type == MAP_EVENTS) {
        for (int i = 0; i < n->val.evs.n; i++)
            Py_CLEAR(n->val.evs.v[i]);
        PyMem_Free(n->val.evs.v);
    }
    memset(&n->val, 0, sizeof n->val);
}

static void map_free(omap *m)
{
    for (int32_t i = m->head; i >= 0; i = m->nodes[i].next)
        node_clear(m, &m->nodes[i]);
    PyMem_Free(m->nodes);
    PyMem_Free(m->slots);
    map_init(m, m->type);
}

/* node index, -1 when absent, -2 on error */
static int32_t map_find(omap *m, const mkey *k, uint64_t h)
{
    if (m->slots == NULL)
        return -1;
    for (uint32_t i = (uint32_t)h & m->mask;; i = (i + 1) & m->mask) {
        int32_t x = m->slots[i].x;
        if (x < 0)
            return -1;
        if (m->slots[i].h == (uint32_t)h && m->nodes[x].hash == h) {
            int r = key_eq(&m->nodes[x].key, k);
            if (r < 0)
                return -2;
            if (r)
                return x;
        }
    }
}

static int map_grow(omap *m)
{
    uint32_t size = m->slots ? (m->mask + 1) * 2 : 256;
    slot *slots = PyMem_Malloc(size * sizeof *slots);
    if (slots == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (uint32_t i = 0; i < size; i++)
        slots[i].x = -1;
    /* from the old slots, which carry the hash bits: no node is read */
    for (uint32_t j = 0; m->slots != NULL && j <= m->mask; j++) {
        if (m->slots[j].x < 0)
            continue;
        uint32_t i = m->slots[j].h & (size - 1);
        while (slots[i].x >= 0)
            i = (i + 1) & (size - 1);
        slots[i] = m->slots[j];
    }
    PyMem_Free(m->slots);
    m->slots = slots;
    m->mask = size - 1;
    return 0;
}

/* Appends a new entry (the key's objects get their own references). Index, -1 on error. */
static int32_t map_insert(omap *m, const mkey *k, uint64_t h)
{
    if (m->slots == NULL || (uint32_t)(m->count + 1) * 2 > m->mask + 1) {
        if (map_grow(m) < 0)
            return -1;
    }
    int32_t x = m->free_head;
    if (x >= 0) {
        m->free_head = m->nodes[x].next;
    } else {
        if (m->nhigh == m->ncap) {
            int32_t cap = m->ncap ? m->ncap * 2 : (m->type == MAP_EVENTS ? 64 : MAX_MAP + 1);
            node *nodes = PyMem_Realloc(m->nodes, (size_t)cap * sizeof *nodes);
            if (nodes == NULL) {
                PyErr_NoMemory();
                return -1;
            }
            m->nodes = nodes;
            m->ncap = cap;
        }
        x = m->nhigh++;
    }
    node *n = &m->nodes[x];
    memset(n, 0, sizeof *n);
    n->key = *k;
    key_own(&n->key);
    n->hash = h;
    n->prev = m->tail;
    n->next = -1;
    if (m->tail >= 0)
        m->nodes[m->tail].next = x;
    else
        m->head = x;
    m->tail = x;
    uint32_t i = (uint32_t)h & m->mask;
    while (m->slots[i].x >= 0)
        i = (i + 1) & m->mask;
    m->slots[i].x = x;
    m->slots[i].h = (uint32_t)h;
    m->count++;
    return x;
}

static void list_unlink(omap *m, int32_t x)
{
    node *n = &m->nodes[x];
    if (n->prev >= 0)
        m->nodes[n->prev].next = n->next;
    else
        m->head = n->next;
    if (n->next >= 0)
        m->nodes[n->next].prev = n->prev;
    else
        m->tail = n->prev;
}

static void map_move_to_end(omap *m, int32_t x)
{
    if (m->tail == x)
        return;
    list_unlink(m, x);
    node *n = &m->nodes[x];
    n->prev = m->tail;
    n->next = -1;
    m->nodes[m->tail].next = x;
    m->tail = x;
}

static void map_remove(omap *m, int32_t x)
{
    /* backward-shift deletion: linear probing without tombstones */
    uint32_t i = (uint32_t)m->nodes[x].hash & m->mask;
    while (m->slots[i].x != x)
        i = (i + 1) & m->mask;
    uint32_t j = i;
    for (;;) {
        j = (j + 1) & m->mask;
        if (m->slots[j].x < 0)
            break;
        uint32_t home = m->slots[j].h & m->mask;
        /* y may fill the hole at i when its home is not inside (i, j] cyclically */
        int fill = i <= j ? (home <= i || home > j) : (home <= i && home > j);
        if (fill) {
            m->slots[i] = m->slots[j];
            i = j;
        }
    }
    m->slots[i].x = -1;
    list_unlink(m, x);
    node_clear(m, &m->nodes[x]);
    m->nodes[x].next = m->free_head;
    m->free_head = x;
    m->count--;
}

/* _bounded_put: m[key] = t; m.move_to_end(key); evict the oldest beyond MAX_MAP */
static int bounded_put(omap *m, const mkey *k, uint64_t h, double t)
{
    int32_t x = map_find(m, k, h);
    if (x == -2)
        return -1;
    if (x >= 0) {
        m->nodes[x].val.t = t;
        map_move_to_end(m, x);
        return 0;
    }
    x = map_insert(m, k, h);
    if (x < 0)
        return -1;
    m->nodes[x].val.t = t;
    if (m->count > MAX_MAP)
        map_remove(m, m->head);
    return 0;
}

/* ---- the linker ------------------------------------------------------------------------------ */
typedef struct { PyObject *ev, *tag; int name, channel; } recent_e; /* OWNED refs */
typedef struct { double deadline; mkey key; uint64_t hash; PyObject *ev; } chq_e;

struct linker {
    fast_stats *st;
    double window, cwindow;
    omap copies, pairs, nomatch, ami_nouser, answers, challenges;
    fast_cand *pend; /* ring of PEND_CAP */
    int pstart, plen;
    recent_e rec[RECENT];
    int rstart, rlen;
    chq_e *q; /* growable ring */
    size_t qstart, qlen, qcap;
    PyObject *v4type, *v6type, *origin_type, *s_ip, *s_scope, *s_source, *empty, *shift64;
    /* slot offsets (member descriptors) of IPv4Address._ip, IPv6Address._ip, ._scope_id and
     * Origin.source, read directly for exact instances; -1: use getattr */
    Py_ssize_t off_v4ip, off_v6ip, off_scope, off_source;
    PyObject *last_ip; /* OWNED: the address whose key is last_key */
    ipkey last_key;
};

#define PEND(lk, i) (&(lk)->pend[((lk)->pstart + (i)) & (PEND_CAP - 1)])
#define REC(lk, i) (&(lk)->rec[((lk)->rstart + (i)) % RECENT])

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

/* obj.<name>: NEW reference; the slot is read directly when obj's type is exactly `type` */
static PyObject *slot_attr(PyObject *obj, PyObject *type, Py_ssize_t off, PyObject *name)
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

int linker_waiting(const linker *lk) { return lk->plen > 0 || lk->qlen > 0; }

/* The exact key of an address: ipaddress compares (version, _ip) and, for IPv6, the scope id.
 * The scope is BORROWED from the address object (kept alive by lk->last_ip). */
static int ip_key(linker *lk, PyObject *ip, ipkey *out)
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

static int append_new(PyObject *out, PyObject *ev) /* steals ev */
{
    if (ev == NULL)
        return -1;
    int r = PyList_Append(out, ev);
    Py_DECREF(ev);
    return r;
}

/* tampering(ev): a NEW event */
static PyObject *tampering(PyObject *ev)
{
    PyObject *detail = PyUnicode_FromFormat("injected address in line (%S)", event_get(ev, F_DETAIL));
    if (detail == NULL)
        return NULL;
    PyObject *t = event_copy(ev);
    if (t != NULL) {
        event_set(t, F_KIND, KIND[K_LOG_TAMPERING]);
        event_set(t, F_DETAIL, detail);
    }
    Py_DECREF(detail);
    return t;
}

/* ev.with_address(r.ip, r.port, r.transport): a NEW event */
static PyObject *with_address(PyObject *ev, PyObject *r)
{
    PyObject *t = event_copy(ev);
    if (t == NULL)
        return NULL;
    PyObject *transport = event_get(r, F_TRANSPORT);
    int tr = truthy(transport);
    if (tr < 0) {
        Py_DECREF(t);
        return NULL;
    }
    event_set(t, F_IP, event_get(r, F_IP));
    event_set(t, F_PORT, event_get(r, F_PORT));
    event_set(t, F_TRANSPORT, tr ? transport : event_get(ev, F_TRANSPORT));
    return t;
}

static int tags_agree(PyObject *a, PyObject *b)
{
    if (a == NULL || a == Py_None || b == NULL || b == Py_None)
        return 1;
    return obj_eq(a, b);
}

/* -- same attempt, another copy ---------------------------------------------------------------- */
static int is_copy(linker *lk, PyObject *ev)
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
static int paired_copy(linker *lk, PyObject *ev, const ipkey *ik, int channel)
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
        if (!(fabs(e->t - now) <= lk->window))
            continue;
        int r = 1;
        if (e->port != NULL && port != NULL)
            r = obj_eq(e->port, port);
        if (r == 1 && e->call_id != NULL && call_id != NULL)
            r = obj_eq(e->call_id, call_id);
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

static int unpair(linker *lk, PyObject *ev)
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

static int ami_repeat(linker *lk, PyObject *ev, const ipkey *ik, int channel)
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

/* (ip, call_id) with its hash, shared by _fix_kind, _note_answer and _challenge (the merges
 * keep the call id); set only when call_id is truthy, as those methods require */
typedef struct { mkey k; uint64_t h; int set; } callkey;

static int call_key(const ipkey *ik, PyObject *call_id, callkey *ck)
{
    memset(ck, 0, sizeof *ck);
    ck->k.ip = *ik;
    int tr = truthy(call_id);
    if (tr <= 0)
        return tr;
    ck->k.o[0] = call_id;
    ck->set = 1;
    return key_hash(&ck->k, &ck->h);
}

/* _fix_kind: a NEW reference (ev itself or its UNKNOWN_ACCOUNT copy) */
static PyObject *fix_kind(linker *lk, PyObject *ev, const callkey *ck)
{
    int kind = event_kind(ev);
    if (event_service(ev) != S_PJSIP || !ck->set || (kind != K_UNKNOWN_ACCOUNT && kind != K_WRONG_PASSWORD)) {
        Py_INCREF(ev);
        return ev;
    }
    if (kind == K_UNKNOWN_ACCOUNT) {
        if (bounded_put(&lk->nomatch, &ck->k, ck->h, event_time(ev)) < 0)
            return NULL;
    } else {
        int32_t x = map_find(&lk->nomatch, &ck->k, ck->h);
        if (x == -2)
            return NULL;
        if (x >= 0 && fabs(event_time(ev) - lk->nomatch.nodes[x].val.t) <= lk->cwindow) {
            PyObject *t = event_copy(ev);
            if (t != NULL)
                event_set(t, F_KIND, KIND[K_UNKNOWN_ACCOUNT]);
            return t;
        }
    }
    Py_INCREF(ev);
    return ev;
}

/* -- address-less lines ------------------------------------------------------------------------ */
static int release_unlinked(linker *lk, fast_cand *c, PyObject *out) /* clears c */
{
    lk->st->unlinked++;
    int r = PyList_Append(out, c->event);
    if (r == 0 && c->tampered)
        r = append_new(out, tampering(c->event));
    cand_clear(c);
    return r;
}

static int hold(linker *lk, fast_cand *c, PyObject *out) /* takes over c */
{
    PyObject *ev = c->event;
    int fam = family(event_kind(ev));
    int r = 0;
    if (c->tag != NULL && c->tag != Py_None) { /* several lines of one request share its tag */
        for (int i = 0; i < lk->plen; i++) {
            fast_cand *p = PEND(lk, i);
            if (p->tag == NULL || p->tag == Py_None)
                continue;
            int eq = obj_eq(p->tag, c->tag);
            if (eq < 0)
                goto done_err;
            if (eq && family(event_kind(p->event)) == fam) {
                lk->st->duplicates++;
                goto done;
            }
        }
    }
    double t = event_time(ev);
    for (int k = 0; k < lk->rlen && k < SCAN; k++) {
        recent_e *re = REC(lk, lk->rlen - 1 - k);
        if (!(c->link & LINK_BIT(re->name)) || !(fabs(event_time(re->ev) - t) <= LOOKBACK))
            continue;
        int agree = tags_agree(re->tag, c->tag);
        if (agree < 0)
            goto done_err;
        if (!agree)
            continue;
        if (family(event_kind(re->ev)) == fam) {
            lk->st->duplicates++;
            if (re->channel == CH_SECURITY && !c->followed && unpair(lk, re->ev) < 0)
                goto done_err; /* it was that event's pair */
        } else if (append_new(out, with_address(ev, re->ev)) < 0) {
            goto done_err;
        }
        if (c->tampered) {
            PyObject *w = with_address(ev, re->ev);
            if (w == NULL)
                goto done_err;
            r = append_new(out, tampering(w));
            Py_DECREF(w);
        }
        goto done;
    }
    *PEND(lk, lk->plen) = *c;
    lk->plen++;
    memset(c, 0, sizeof *c);
    if (lk->plen > MAX_PENDING) {
        fast_cand old = *PEND(lk, 0);
        memset(PEND(lk, 0), 0, sizeof old);
        lk->pstart = (lk->pstart + 1) & (PEND_CAP - 1);
        lk->plen--;
        lk->st->evicted++;
        return release_unlinked(lk, &old, out);
    }
    return 0;
done_err:
    r = -1;
done:
    cand_clear(c);
    return r;
}

/* _link_forward: steals *ev and stores the (maybe merged) event there. On a merge *followed is
 * the merged line's followed (0/1), else -1. Returns linked (0/1) or -1 on error. */
static int link_forward(linker *lk, fast_cand *c, PyObject **evp, PyObject *out, int *followed)
{
    PyObject *ev = *evp;
    *followed = -1;
    double t = event_time(ev);
    int lo = lk->plen - 1 - SCAN;
    for (int k = lk->plen - 1; k > lo && k >= 0; k--) {
        fast_cand *p = PEND(lk, k);
        if (!(p->link & LINK_BIT(c->link_name)) || fabs(event_time(p->event) - t) > lk->window)
            continue;
        int agree = tags_agree(p->tag, c->tag);
        if (agree < 0)
            return -1;
        if (!agree)
            continue;
        fast_cand pc = *p;
        for (int i = k; i < lk->plen - 1; i++)
            *PEND(lk, i) = *PEND(lk, i + 1);
        memset(PEND(lk, lk->plen - 1), 0, sizeof pc);
        lk->plen--;
        int r = -1;
        PyObject *linked = with_address(pc.event, ev);
        if (linked == NULL)
            goto out;
        if (pc.tampered && append_new(out, tampering(linked)) < 0)
            goto out;
        if (family(event_kind(pc.event)) != family(event_kind(ev))) {
            r = PyList_Append(out, linked) < 0 ? -1 : 1;
            goto out;
        }
        /* the same attempt: keep the address line, enriched with what the other line knew */
        PyObject *pacc = event_get(pc.event, F_ACCOUNT), *acc = event_get(ev, F_ACCOUNT);
        PyObject *target = event_get(ev, F_TARGET);
        int pa = truthy(pacc), ea = truthy(acc);
        if (pa < 0 || ea < 0)
            goto out;
        if (pa && ea && target == Py_None) {
            int eq = obj_eq(pacc, acc);
            if (eq < 0)
                goto out;
            if (!eq)
                target = acc; /* chan_sip INVITE: InvalidPassword names the dialled number */
        }
        PyObject *ua = event_get(ev, F_USER_AGENT);
        int eu = truthy(ua);
        if (eu < 0)
            goto out;
        int kind = event_kind(ev) == K_WRONG_PASSWORD ? event_kind(pc.event) : event_kind(ev);
        PyObject *merged = event_copy(ev);
        if (merged == NULL)
            goto out;
        event_set(merged, F_KIND, KIND[kind]);
        event_set(merged, F_ACCOUNT, pa ? pacc : acc);
        event_set(merged, F_TARGET, target);
        event_set(merged, F_USER_AGENT, eu ? ua : event_get(pc.event, F_USER_AGENT));
        Py_DECREF(ev);
        *evp = merged;
        *followed = pc.followed != 0;
        r = 1;
    out:
        Py_XDECREF(linked);
        cand_clear(&pc);
        return r;
    }
    return 0;
}

/* -- challenges ---------------------------------------------------------------------------------- */
static int note_answer(linker *lk, PyObject *ev, const callkey *ck)
{
    if (!ck->set || event_kind(ev) == K_CHALLENGE_SENT)
        return 0;
    double t = event_time(ev);
    if (bounded_put(&lk->answers, &ck->k, ck->h, t) < 0)
        return -1;
    int32_t x = map_find(&lk->challenges, &ck->k, ck->h);
    if (x < 0)
        return x == -2 ? -1 : 0;
    node *n = &lk->challenges.nodes[x];
    int kept = 0;
    for (int i = 0; i < n->val.evs.n; i++) {
        PyObject *ch = n->val.evs.v[i];
        if (fabs(event_time(ch) - t) > lk->cwindow)
            n->val.evs.v[kept++] = ch;
        else
            Py_DECREF(ch);
    }
    n->val.evs.n = kept;
    if (kept == 0)
        map_remove(&lk->challenges, x);
    return 0;
}

static int challenge(linker *lk, PyObject *ev, const callkey *ck)
{
    mkey k = ck->k;
    uint64_t h = ck->h;
    if (!ck->set) {
        k.o[0] = lk->empty; /* ev.call_id or "" */
        if (key_hash(&k, &h) < 0)
            return -1;
    }
    double t = event_time(ev);
    int32_t x = map_find(&lk->answers, &k, h);
    if (x == -2)
        return -1;
    if (x >= 0 && fabs(t - lk->answers.nodes[x].val.t) <= lk->cwindow)
        return 0;
    omap *m = &lk->challenges;
    x = map_find(m, &k, h);
    if (x == -2)
        return -1;
    if (x == -1 && (x = map_insert(m, &k, h)) < 0)
        return -1;
    node *n = &m->nodes[x];
    if (n->val.evs.n == n->val.evs.cap) {
        int cap = n->val.evs.cap ? n->val.evs.cap * 2 : 2;
        PyObject **v = PyMem_Realloc(n->val.evs.v, (size_t)cap * sizeof *v);
        if (v == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        n->val.evs.v = v;
        n->val.evs.cap = cap;
    }
    Py_INCREF(ev);
    n->val.evs.v[n->val.evs.n++] = ev;
    if (lk->qlen == lk->qcap) {
        size_t cap = lk->qcap ? lk->qcap * 2 : 256;
        chq_e *q = PyMem_Malloc(cap * sizeof *q);
        if (q == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        for (size_t i = 0; i < lk->qlen; i++)
            q[i] = lk->q[(lk->qstart + i) % lk->qcap];
        PyMem_Free(lk->q);
        lk->q = q;
        lk->qcap = cap;
        lk->qstart = 0;
    }
    chq_e *e = &lk->q[(lk->qstart + lk->qlen++) % lk->qcap];
    e->deadline = t + lk->cwindow;
    e->key = k;
    key_own(&e->key);
    e->hash = h;
    Py_INCREF(ev);
    e->ev = ev;
    return 0;
}

static int expire_challenge(linker *lk, chq_e *e, PyObject *out)
{
    int32_t x = map_find(&lk->challenges, &e->key, e->hash);
    if (x < 0)
        return x == -2 ? -1 : 0;
    node *n = &lk->challenges.nodes[x];
    int at = -1;
    for (int i = 0; i < n->val.evs.n && at < 0; i++)
        if (n->val.evs.v[i] == e->ev)
            at = i;
    if (at < 0)
        return 0;
    int kept = 0;
    for (int i = 0; i < n->val.evs.n; i++) {
        if (n->val.evs.v[i] == e->ev)
            Py_DECREF(n->val.evs.v[i]);
        else
            n->val.evs.v[kept++] = n->val.evs.v[i];
    }
    n->val.evs.n = kept;
    if (kept == 0)
        map_remove(&lk->challenges, x);
    PyObject *t = event_copy(e->ev);
    if (t == NULL)
        return -1;
    PyObject *detail = PyUnicode_FromString("ChallengeSent never answered");
    if (detail == NULL) {
        Py_DECREF(t);
        return -1;
    }
    event_set(t, F_KIND, KIND[K_CHALLENGE_UNANSWERED]);
    event_set(t, F_DETAIL, detail);
    Py_DECREF(detail);
    return append_new(out, t);
}

/* -- entry --------------------------------------------------------------------------------------- */
int linker_process(linker *lk, fast_cand *c, PyObject *out)
{
    PyObject *ev = c->event;
    int r;
    if (c->channel == CH_SECURITY) {
        r = is_copy(lk, ev);
        if (r != 0) {
            if (r > 0)
                lk->st->duplicates++;
            cand_clear(c);
            return r < 0 ? -1 : 0;
        }
    }
    PyObject *ip = event_get(ev, F_IP);
    if (ip == Py_None) {
        if (c->link)
            return hold(lk, c, out);
        lk->st->unlinked++; /* nothing can carry its address (chan_sip invite timeouts) */
        r = PyList_Append(out, ev);
        cand_clear(c);
        return r;
    }
    ipkey ik;
    callkey ck;
    if (ip_key(lk, ip, &ik) < 0 || call_key(&ik, event_get(ev, F_CALL_ID), &ck) < 0) {
        cand_clear(c);
        return -1;
    }
    PyObject *cur = fix_kind(lk, ev, &ck);
    if (cur == NULL) {
        cand_clear(c);
        return -1;
    }
    int followed = -1, linked = 0;
    r = 0;
    if (c->link_name >= 0) {
        linked = link_forward(lk, c, &cur, out, &followed);
        if (linked < 0)
            goto fail;
        if (lk->rlen == RECENT) {
            recent_e *old = REC(lk, 0);
            Py_CLEAR(old->ev);
            Py_CLEAR(old->tag);
            lk->rstart = (lk->rstart + 1) % RECENT;
            lk->rlen--;
        }
        recent_e *re = REC(lk, lk->rlen++);
        Py_INCREF(cur);
        re->ev = cur;
        re->tag = c->tag;
        Py_XINCREF(c->tag);
        re->name = c->link_name;
        re->channel = c->channel;
    }
    if (note_answer(lk, cur, &ck) < 0)
        goto fail;
    /* a security event merged with its address-less module line has had its pair, unless
     * the module logs one more line with the address for that attempt (username mismatch) */
    int paired = followed == 0 && c->channel == CH_SECURITY;
    if (event_kind(cur) == K_CHALLENGE_SENT) {
        if (!linked && challenge(lk, cur, &ck) < 0)
            goto fail;
    } else {
        int dup = ami_repeat(lk, cur, &ik, c->channel);
        if (dup == 0 && !paired)
            dup = paired_copy(lk, cur, &ik, c->channel);
        if (dup < 0)
            goto fail;
        if (dup) {
            lk->st->duplicates++;
            goto done;
        }
    }
    if (PyList_Append(out, cur) < 0 || (c->tampered && append_new(out, tampering(cur)) < 0))
        goto fail;
    goto done;
fail:
    r = -1;
done:
    Py_DECREF(cur);
    cand_clear(c);
    return r;
}

int linker_release(linker *lk, double now, int all, PyObject *out)
{
    while (lk->plen > 0 && (all || event_time(PEND(lk, 0)->event) + lk->window < now)) {
        fast_cand old = *PEND(lk, 0);
        memset(PEND(lk, 0), 0, sizeof old);
        lk->pstart = (lk->pstart + 1) & (PEND_CAP - 1);
        lk->plen--;
        if (release_unlinked(lk, &old, out) < 0)
            return -1;
    }
    while (lk->qlen > 0) {
        chq_e e = lk->q[lk->qstart];
        if (!(all || e.deadline < now || lk->qlen > MAX_CHALLENGES))
            break;
        if (!all && e.deadline >= now)
            lk->st->evicted++;
        lk->qstart = (lk->qstart + 1) % lk->qcap;
        lk->qlen--;
        int r = expire_challenge(lk, &e, out);
        key_drop(&e.key);
        Py_CLEAR(e.ev);
        if (r < 0)
            return -1;
    }
    return 0;
}
