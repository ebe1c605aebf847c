/* link.c: linker.Linker in C (dedup, linking of address-less lines, unanswered challenges).
 *
 * linker.py is the reference; every function here mirrors the method of the same name, in the
 * same order of tests, so the events, their order and the stats are identical. This file holds
 * the linking itself (process, hold, link_forward, release, challenges); link_table.c the keys
 * and ordered hash tables, link_pairs.c the copy/pair dedup, link_new.c creation and address
 * keys; link.h is what they share.
 */
#include "link.h"

#include <math.h>

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
        if (dup < 0)
            goto fail;
        if (dup) {
            lk->st->duplicates++;
            goto done;
        }
        dup = paired ? 0 : paired_copy(lk, cur, &ik, c->channel);
        if (dup < 0)
            goto fail;
        if (dup) {
            lk->st->duplicates++;
            PyObject *held = c->channel == CH_LOG && lk->hlen > 0 ? take_held(lk, cur) : NULL;
            if (held == NULL) {
                if (PyErr_Occurred())
                    goto fail;
                goto done;
            }
            PyObject *m = merge(held, cur); /* the one event of this attempt */
            Py_DECREF(held);
            if (m == NULL)
                goto fail;
            Py_SETREF(cur, m);
        } else if (!paired && c->channel == CH_SECURITY && !c->tampered && waits_for_line(cur)) {
            if (held_push(lk, cur, out) < 0)
                goto fail;
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
    if (held_release(lk, now, all, out) < 0)
        return -1;
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