/* link_table.c: the linker's keys and its ordered hash tables (linker.py's OrderedDicts).
 *
 * A map is a C hash table (linear probing, backward-shift deletion) with an insertion-ordered
 * list, so OrderedDict's move_to_end and popitem(last=False) are O(1). Keys are cheap exact
 * values: the kind's index, the time as a double, the address as (version, 128-bit int, scope
 * id) and str/int objects compared with ==.
 */
#include "link.h"

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

int key_hash(const mkey *k, uint64_t *out)
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

void key_own(mkey *k)
{
    Py_XINCREF(k->ip.scope);
    for (int i = 0; i < 4; i++)
        Py_XINCREF(k->o[i]);
}

void key_drop(mkey *k)
{
    Py_CLEAR(k->ip.scope);
    for (int i = 0; i < 4; i++)
        Py_CLEAR(k->o[i]);
}

void map_init(omap *m, int type)
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

void map_free(omap *m)
{
    for (int32_t i = m->head; i >= 0; i = m->nodes[i].next)
        node_clear(m, &m->nodes[i]);
    PyMem_Free(m->nodes);
    PyMem_Free(m->slots);
    map_init(m, m->type);
}

int32_t map_find(omap *m, const mkey *k, uint64_t h)
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

int32_t map_insert(omap *m, const mkey *k, uint64_t h)
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

void map_move_to_end(omap *m, int32_t x)
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

void map_remove(omap *m, int32_t x)
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

int bounded_put(omap *m, const mkey *k, uint64_t h, double t)
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
