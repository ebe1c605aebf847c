/* link.h: what the linker files (link.c, link_table.c, link_pairs.c, link_new.c) share.
 * Private to them: module.c sees only fast.h's linker_new/free/process/release/waiting.
 *
 * The small comparisons are static inline so that each file gets them inlined, as they were
 * when the linker lived in one file.
 */
#ifndef SIPGUARD_FASTLOG_LINK_H
#define SIPGUARD_FASTLOG_LINK_H

#include "fast.h"

#include <math.h>
#include <string.h>

#define LOOKBACK 0.005
#define MAX_MAP 65536
#define MAX_PENDING 4096
#define MAX_CHALLENGES 50000
#define PAIR_CAP 4096
#define SCAN 64
#define RECENT 1024     /* _recent's maxlen */
#define PEND_CAP 8192   /* ring size: more than MAX_PENDING + 1, a power of two */
#define MERGE_WAIT 0.25 /* linker.MERGE_WAIT */

/* linker.FAMILY by KIND index; -1 stands for None (FAMILY.get(kind) == None) */
enum { FAM_AUTH, FAM_DENY, FAM_CALL, FAM_MALFORMED, FAM_AMI, FAM_SUCCESS, FAM_LIMIT };
static inline int family(int kind)
{
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
    return kind >= 0 && kind < NKINDS ? FAMILY[kind] : -1;
}

/* ---- keys (link_table.c) ------------------------------------------------------------------- */
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
static inline int obj_eq(PyObject *a, PyObject *b)
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

static inline PyObject *none_to_null(PyObject *o) { return o == Py_None ? NULL : o; }

static inline int truthy(PyObject *o) /* -1 on error */
{
    if (o == NULL || o == Py_None)
        return 0;
    if (PyUnicode_CheckExact(o))
        return PyUnicode_GET_LENGTH(o) > 0;
    return PyObject_IsTrue(o);
}

int key_hash(const mkey *k, uint64_t *out); /* 0 / -1 */
void key_own(mkey *k);  /* the key's objects get their own references */
void key_drop(mkey *k); /* drops them, NULLs the fields */

/* ---- ordered maps (link_table.c) ----------------------------------------------------------- */
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

void map_init(omap *m, int type);
void map_free(omap *m);
/* node index, -1 when absent, -2 on error */
int32_t map_find(omap *m, const mkey *k, uint64_t h);
/* Appends a new entry (the key's objects get their own references). Index, -1 on error. */
int32_t map_insert(omap *m, const mkey *k, uint64_t h);
void map_move_to_end(omap *m, int32_t x);
void map_remove(omap *m, int32_t x);
/* _bounded_put: m[key] = t; m.move_to_end(key); evict the oldest beyond MAX_MAP */
int bounded_put(omap *m, const mkey *k, uint64_t h, double t);

/* ---- the linker ---------------------------------------------------------------------------- */
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
    PyObject **held; /* _held: OWNED security events waiting for their module line, oldest first */
    int hlen, hcap;
};

#define PEND(lk, i) (&(lk)->pend[((lk)->pstart + (i)) & (PEND_CAP - 1)])
#define REC(lk, i) (&(lk)->rec[((lk)->rstart + (i)) % RECENT])

/* link_new.c */
/* obj.<name>: NEW reference; the slot is read directly when obj's type is exactly `type` */
PyObject *slot_attr(PyObject *obj, PyObject *type, Py_ssize_t off, PyObject *name);
/* The exact key of an address (version, _ip, scope id); the scope is BORROWED. 0 / -1. */
int ip_key(linker *lk, PyObject *ip, ipkey *out);

/* _same_attempt: a copy logged at t with port and call_id (NULL = None) is ev's attempt.
 * 1 yes, 0 no, -1 error. */
static inline int same_attempt(const linker *lk, double t, PyObject *port, PyObject *call_id,
                               PyObject *ev)
{
    if (!(fabs(t - event_time(ev)) <= lk->window))
        return 0;
    PyObject *evport = none_to_null(event_get(ev, F_PORT));
    PyObject *evcall = none_to_null(event_get(ev, F_CALL_ID));
    int r = 1;
    if (port != NULL && evport != NULL)
        r = obj_eq(port, evport);
    if (r == 1 && call_id != NULL && evcall != NULL)
        r = obj_eq(call_id, evcall);
    return r;
}

/* link_held.c: security events waiting for their module line (linker.py's _held) */
int waits_for_line(PyObject *ev); /* _waits_for_line: 1 / 0 */
int held_push(linker *lk, PyObject *ev, PyObject *out); /* 0 / -1 */
/* _take_held: a NEW reference to the waiting event `line` is a copy of (removed), NULL with no
 * error set when there is none */
PyObject *take_held(linker *lk, PyObject *line);
PyObject *merge(PyObject *held, PyObject *line); /* _merge: a NEW event */
int held_release(linker *lk, double now, int all, PyObject *out); /* 0 / -1 */
void held_free(linker *lk);

/* link_pairs.c: the same attempt seen twice. 1 yes (a duplicate), 0 no, -1 error. */
int is_copy(linker *lk, PyObject *ev);
int paired_copy(linker *lk, PyObject *ev, const ipkey *ik, int channel);
int ami_repeat(linker *lk, PyObject *ev, const ipkey *ik, int channel);
int unpair(linker *lk, PyObject *ev); /* 0 / -1 */

#endif
