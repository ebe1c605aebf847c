/* grammar.c: the common message grammars of lines.py in C, and grammar_parse, the dispatch of
 * lines.parse_message. SecurityEvent lines are in grammar_security.c, IAX2 and AMI in
 * grammar_iax_ami.c, the rarer chan_sip/PJSIP forms in grammar_rare.c, addresses and name-addrs
 * in grammar_addr.c, the shared scanners in grammar.h.
 *
 * Each grammar is a hand-written scanner that mirrors what the Python regular expression would
 * match, including where greedy and lazy groups end. Only the common shapes are handled here;
 * whenever the outcome is not certain (a backslash in a name-addr, a second separator that moves
 * a greedy group, an unusual EventTV, a regex whose search could start further on) the grammar
 * returns GRAM_FALLBACK and the Python parser decides the line. Input: one message, already
 * stripped, ASCII without NUL or ANSI codes (scan.c guarantees it).
 */
#include "grammar.h"

/* ---- constant strs ------------------------------------------------------------------------- */

PyObject *GRAMMAR_STR[NGS];

static const char *const GRAMMAR_TEXT[GS_EVENT] = {
    "udp", "tcp", "tls", "ws", "wss", "sctp",
    "Registered", "fake auth rejection", "non-critical invite transaction timed out",
    "endpoint has no configured AORs", "Added contact",
    "failed to authenticate", "nonexistent user", "logged on",
};

int grammar_init(void) {
    for (int i = 0; i < NGS; i++) {
        const char *s = i < GS_EVENT ? GRAMMAR_TEXT[i] : LINK_NAMES[i - GS_EVENT];
        if ((GRAMMAR_STR[i] = PyUnicode_InternFromString(s)) == NULL) return -1;
    }
    return 0;
}

/* ---- building the candidate ------------------------------------------------------------------ */

PyObject *text_join(const char *a, Py_ssize_t an, const char *b, Py_ssize_t bn, const char *c,
                    Py_ssize_t cn, const char *d, Py_ssize_t dn) {
    PyObject *v = PyUnicode_New(an + bn + cn + dn, 127);
    if (v == NULL) return NULL;
    char *w = (char *)PyUnicode_1BYTE_DATA(v);
    memcpy(w, a, (size_t)an);
    memcpy(w + an, b, (size_t)bn);
    memcpy(w + an + bn, c, (size_t)cn);
    memcpy(w + an + bn + cn, d, (size_t)dn);
    return v;
}

int cand_done(const fast_prefix *p, PyObject *origin, cand_spec *c, fast_cand *out) {
    PyObject *ev = event_new(c->time, c->kind, c->service, c->ip, c->port, c->transport,
                             c->account, c->target, c->user_agent, c->call_id, c->detail, origin);
    release(c); /* the Event holds its own references now */
    if (ev == NULL) return GRAM_ERROR;
    PyObject *tag = NULL;
    if (c->with_tag && p->tag != NULL) {
        tag = PyUnicode_DecodeLatin1(p->tag, p->tag_len, NULL);
        if (tag == NULL) {
            Py_DECREF(ev);
            return GRAM_ERROR;
        }
    }
    out->event = ev;
    out->tag = tag;
    out->channel = c->channel;
    out->tampered = c->tampered;
    out->followed = c->followed;
    out->link = c->link;
    out->link_name = c->link_name;
    return GRAM_OK;
}

#define FAILED_FOR "' failed for '"
#define FAILED_FOR_LEN ((Py_ssize_t)sizeof(FAILED_FOR) - 1)

/* ---- PJSIP `Request … failed for` (lines._pjsip_request) -------------------------------------- */

/* lines._grammar_failed_for: the index of the address after the From name-addr at i, -1 if
 * From is not one (Python then tries a regex: the caller falls back). No backslash in msg. */
static Py_ssize_t failed_for(const char *msg, Py_ssize_t n, Py_ssize_t i) {
    Py_ssize_t q = i < n && msg[i] == '"' ? find_char(msg, n, i + 1, '"') : -1;
    if (q >= 0 && q - i - 1 <= 512) { /* QUOTED, then \s* */
        i = q + 1;
        while (i < n && py_space((unsigned char)msg[i])) i++;
    } else if (!(i < n && msg[i] == '<')) {
        /* _TOKENS `[^<:"]{1,256}?\s*(?=<)`: every char up to the first '<' outside <:" and at
         * most 256 of them before the trailing whitespace */
        Py_ssize_t k = i;
        while (k < n && msg[k] != '<' && msg[k] != ':' && msg[k] != '"') k++;
        Py_ssize_t len = k - i, ws = 0;
        while (ws < len && py_space((unsigned char)msg[k - 1 - ws])) ws++;
        if (k < n && msg[k] == '<' && len >= 1 && len - (ws < len - 1 ? ws : len - 1) <= 256) {
            i = k;
        } else { /* a bare URI: no space up to the separator */
            Py_ssize_t j = find(msg, n, i, LIT(FAILED_FOR));
            if (j < 0 || memchr(msg + i, ' ', (size_t)(j - i)) != NULL) return -1;
            return j + FAILED_FOR_LEN;
        }
    }
    if (i < n && msg[i] == '<') {
        Py_ssize_t gt = find(msg, n, i, LIT(">" FAILED_FOR));
        return gt >= 0 ? gt + 1 + FAILED_FOR_LEN : -1;
    }
    return has_at(msg, n, i, LIT(FAILED_FOR)) ? i + FAILED_FOR_LEN : -1;
}

/* a failure reason's text and the event kind it means */
typedef struct {
    const char *text;
    int kind;
} reason_kind;

#define REASON_KIND(text, kind) {text, K_##kind},
static const reason_kind PJSIP_REASONS[] = {FASTLOG_PJSIP_REASONS(REASON_KIND)};

/* _PJSIP_REASON.search(msg, from): `\) - (reason)( after \d+ tries in [\d.]+ ms)?$`. The match can
 * only be at the end (no reason or suffix holds ')'), so it is read backwards. Returns the start
 * of `) - `, -1 if none; *reason, *suffix_at set. */
static Py_ssize_t pjsip_reason(const char *msg, Py_ssize_t n, Py_ssize_t from, int *reason,
                               Py_ssize_t *suffix_at) {
    Py_ssize_t end = n;
    if (n >= 3 && memcmp(msg + n - 3, " ms", 3) == 0) {
        Py_ssize_t k = n - 3;
        while (k > 0 && (is_digit((unsigned char)msg[k - 1]) || msg[k - 1] == '.')) k--;
        Py_ssize_t d = k - 10; /* " tries in " */
        if (k < n - 3 && has_at(msg, n, d, LIT(" tries in "))) {
            Py_ssize_t e = d;
            while (e > 0 && is_digit((unsigned char)msg[e - 1])) e--;
            if (e < d && has_at(msg, n, e - 7, LIT(" after "))) end = e - 7;
        }
    }
    for (int r = 0; r < 5; r++) {
        Py_ssize_t rl = (Py_ssize_t)strlen(PJSIP_REASONS[r].text);
        Py_ssize_t at = end - rl - 4;
        if (at >= from && has_at(msg, n, at, LIT(") - ")) &&
            memcmp(msg + at + 4, PJSIP_REASONS[r].text, (size_t)rl) == 0) {
            *reason = r;
            *suffix_at = end;
            return at;
        }
    }
    return -1;
}

static int pjsip_request(const fast_prefix *p, const char *msg, Py_ssize_t n, PyObject *origin,
                         fast_cand *out) {
    if (memchr(msg, '\\', (size_t)n) != NULL) return GRAM_FALLBACK;
    int bad = find(msg, n, 0, LIT(FAILED_FOR)) >= 0 ? GRAM_MALFORMED : GRAM_NONE;
    Py_ssize_t i = 8;
    const char *method = "request";
    Py_ssize_t method_len = 7;
    if (i < n && msg[i] == '\'') {
        Py_ssize_t end = find(msg, n, i + 1, LIT("' "));
        if (end < 0 || end - i > 33) return bad;
        if (end > i + 1) {
            method = msg + i + 1;
            method_len = end - i - 1;
        }
        i = end + 2;
    }
    if (!has_at(msg, n, i, LIT("from '"))) return bad;
    i += 6;
    Py_ssize_t addr_at = failed_for(msg, n, i);
    if (addr_at < 0) return GRAM_FALLBACK;
    Py_ssize_t end = find_char(msg, n, addr_at, '\'');
    if (end < 0) return bad;
    int reason;
    Py_ssize_t suffix_at;
    Py_ssize_t rs = pjsip_reason(msg, n, end, &reason, &suffix_at);
    if (rs < 0) return bad;
    opt_span display, user;
    if (!name_addr(msg + i, addr_at - FAILED_FOR_LEN - i, &display, &user)) return GRAM_FALLBACK;
    cand_spec c = spec(p->time, PJSIP_REASONS[reason].kind, S_PJSIP);
    int rc = cand_hostport(&c, msg + addr_at, end - addr_at, bad);
    if (rc != GRAM_OK) return rc;
    if (cand_from(&c, &display, &user) < 0) return cand_fail(&c);
    if (has_at(msg, n, end + 1, LIT(" (callid: ")) && rs > end + 11 &&
        (c.call_id = keep(&c, fresh(msg + end + 11, rs - end - 11))) == NULL)
        return cand_fail(&c);
    const char *why = PJSIP_REASONS[reason].text;
    c.detail = keep(&c, text_join(method, method_len, LIT(": "), why, (Py_ssize_t)strlen(why),
                                  msg + suffix_at, n - suffix_at));
    if (c.detail == NULL) return cand_fail(&c);
    c.tampered = count2(msg, n, LIT(FAILED_FOR)) > 1;
    return cand_done(p, origin, &c, out);
}

/* ---- chan_sip `Registration from '…' failed for '…' - reason` -------------------------------- */

static const reason_kind CHAN_SIP_REASONS[] = {FASTLOG_CHAN_SIP_REASONS(REASON_KIND)};
#undef REASON_KIND

static int registration(const fast_prefix *p, const char *msg, Py_ssize_t n, PyObject *origin,
                        fast_cand *out) {
    /* `Registration from '(.*)' failed for '([^']{1,90})' - ([^']{1,80})$`: the reason and the
     * address hold no quote, so both are found from the end and the greedy From ends there */
    Py_ssize_t lq = rfind_char(msg, 0, n, '\'');
    if (lq < 0 || !has_at(msg, n, lq, LIT("' - ")) || n - lq - 4 < 1 || n - lq - 4 > 80)
        return GRAM_MALFORMED;
    Py_ssize_t pq = rfind_char(msg, 0, lq, '\'');
    Py_ssize_t q = pq - (FAILED_FOR_LEN - 1);
    if (pq < 0 || lq - pq - 1 < 1 || lq - pq - 1 > 90 || q < 19 ||
        !has_at(msg, n, q, LIT(FAILED_FOR)))
        return GRAM_MALFORMED;
    opt_span display, user;
    if (!name_addr(msg + 19, q - 19, &display, &user)) return GRAM_FALLBACK;
    const char *why = msg + lq + 4;
    Py_ssize_t why_len = n - lq - 4;
    cand_spec c = spec(p->time, K_REQUEST_NOT_ALLOWED, S_CHAN_SIP);
    int rc = cand_hostport(&c, msg + pq + 1, lq - pq - 1, GRAM_MALFORMED);
    if (rc != GRAM_OK) return rc;
    for (size_t k = 0; k < sizeof CHAN_SIP_REASONS / sizeof *CHAN_SIP_REASONS; k++)
        if ((Py_ssize_t)strlen(CHAN_SIP_REASONS[k].text) == why_len &&
            memcmp(CHAN_SIP_REASONS[k].text, why, (size_t)why_len) == 0)
            c.kind = CHAN_SIP_REASONS[k].kind;
    if (cand_from(&c, &display, &user) < 0 || (c.detail = keep(&c, text(why, why_len))) == NULL)
        return cand_fail(&c);
    c.with_tag = 1;
    c.tampered = count2(msg, n, LIT(FAILED_FOR)) > 1;
    c.link_name = L_Registration;
    return cand_done(p, origin, &c, out);
}

/* ---- `… to extension '…' rejected because extension not found in context '…'` ----------------- */

#define REJECTED "' rejected because extension not found in context '"

static int call_rejected(const fast_prefix *p, const char *msg, Py_ssize_t n, PyObject *origin,
                         fast_cand *out) {
    /* _CALL_REJECTED.search, natively only when it matches from the line's start; a failure
     * there leaves the search to try further on: Python decides */
    opt_span who = {NULL, 0, 0};
    Py_ssize_t a;
    if (has_at(msg, n, 0, LIT("Call from '"))) { /* lazy user: the first "' (" */
        Py_ssize_t k = find(msg, n, 11, LIT("' ("));
        if (k < 0 || k - 11 > 512) return GRAM_FALLBACK;
        who = (opt_span){msg + 11, k - 11, k > 11};
        a = k + 3;
    } else {
        Py_ssize_t e = 0;
        while (e < n && e <= 80 && !py_space((unsigned char)msg[e]) && msg[e] != ':' &&
               msg[e] != '\'')
            e++;
        if (e == 0 || e > 80 || !has_at(msg, n, e, LIT(": Call ("))) return GRAM_FALLBACK;
        who = (opt_span){msg, e, 1};
        a = e + 8;
    }
    Py_ssize_t j = a;
    while (j < n && msg[j] != '(' && msg[j] != ')' && !py_space((unsigned char)msg[j])) j++;
    if (j == a || j - a > 100 || !has_at(msg, n, j, LIT(") to extension '")))
        return GRAM_FALLBACK;
    Py_ssize_t x = j + 16;
    Py_ssize_t rb = find(msg, n, x, LIT(REJECTED));
    if (rb < 0 || find(msg, n, rb + 1, LIT(REJECTED)) >= 0) return GRAM_FALLBACK;
    Py_ssize_t ctx = rb + (Py_ssize_t)sizeof(REJECTED) - 1, ctx_end;
    if (n - ctx >= 1 && msg[n - 1] == '\'')
        ctx_end = n - 1;
    else if (n - ctx >= 2 && msg[n - 2] == '\'' && msg[n - 1] == '.')
        ctx_end = n - 2;
    else
        return GRAM_FALLBACK;
    /* split_transport */
    const char *addr = msg + a;
    Py_ssize_t an = j - a;
    Py_ssize_t colon = find_char(addr, an, 0, ':');
    int transport = 0;
    if (colon >= 0 && (eq_upper(addr, colon, "UDP") || eq_upper(addr, colon, "TCP") ||
                       eq_upper(addr, colon, "TLS") || eq_upper(addr, colon, "WS") ||
                       eq_upper(addr, colon, "WSS"))) {
        transport = 1;
        addr += colon + 1;
        an -= colon + 1;
    }
    int pjsip = transport || find(p->file, p->file_len, 0, LIT("pjsip")) >= 0;
    cand_spec c = spec(p->time, K_CALL_REJECTED, pjsip ? S_PJSIP : S_CHAN_SIP);
    int rc = cand_hostport(&c, addr, an, GRAM_MALFORMED);
    if (rc != GRAM_OK) return rc;
    if (opt_text(&c, &who, &c.account) < 0 || (c.target = keep(&c, text(msg + x, rb - x))) == NULL)
        return cand_fail(&c);
    c.detail = keep(&c, text_join(LIT("extension not found in context '"), msg + ctx,
                                  ctx_end - ctx, LIT("'"), "", 0));
    if (c.detail == NULL) return cand_fail(&c);
    c.with_tag = 1;
    c.tampered = count2(msg, n, LIT(") to extension '")) > 1;
    c.link_name = L_Call;
    return cand_done(p, origin, &c, out);
}

/* ---- chan_sip `Failed to authenticate device …` (address-less) -------------------------------- */

static int is_upper(unsigned char c) { return c >= 'A' && c <= 'Z'; }

static int device(const fast_prefix *p, const char *msg, Py_ssize_t n, PyObject *origin,
                  fast_cand *out) {
    /* `Failed to authenticate (?:device|user) (.*?)(?: for ([A-Z]{1,20}), code = -?\d{1,6})?$`:
     * the optional tail can match at one place only, so the lazy group ends there if it does */
    Py_ssize_t i = device_or_user(msg, n, 23);
    if (i < 0) return GRAM_MALFORMED;
    Py_ssize_t who_end = n;
    const char *method = "?";
    Py_ssize_t method_len = 1;
    Py_ssize_t d = n;
    while (d > i && is_digit((unsigned char)msg[d - 1])) d--;
    if (n - d >= 1 && n - d <= 6) {
        Py_ssize_t m = d > i && msg[d - 1] == '-' ? d - 1 : d;
        Py_ssize_t ue = m - 9; /* ", code = " */
        if (ue >= i && has_at(msg, n, ue, LIT(", code = "))) {
            Py_ssize_t us = ue;
            while (us > i && is_upper((unsigned char)msg[us - 1])) us--;
            if (ue - us >= 1 && ue - us <= 20 && us - 5 >= i && has_at(msg, n, us - 5, LIT(" for "))) {
                who_end = us - 5;
                method = msg + us;
                method_len = ue - us;
            }
        }
    }
    opt_span display, user;
    if (!name_addr(msg + i, who_end - i, &display, &user)) return GRAM_FALLBACK;
    cand_spec c = spec(p->time, K_WRONG_PASSWORD, S_CHAN_SIP);
    if (cand_from(&c, &display, &user) < 0) return cand_fail(&c);
    c.detail = keep(&c, text_join(LIT("Failed to authenticate device for "), method, method_len,
                                  "", 0, "", 0));
    if (c.detail == NULL) return cand_fail(&c);
    c.with_tag = 1;
    c.tampered = find(msg, who_end, i, LIT("failed for '")) >= 0;
    c.link = LINK_AUTH_FAILED;
    return cand_done(p, origin, &c, out);
}

/* ---- pjproject `Dropping N bytes packet from UDP addr : reason` -------------------------------- */

static int pjproject(const fast_prefix *p, const char *msg, Py_ssize_t n, PyObject *origin,
                     fast_cand *out) {
    static const char *const TRANSPORTS[] = {"UDP", "TCP", "TLS", "WS", "WSS"};
    /* the search's first candidate position; if it does not match, a later "Dropping " might */
    Py_ssize_t d = find(msg, n, 0, LIT("Dropping "));
    Py_ssize_t k = d + 9, e = k;
    while (e < n && is_digit((unsigned char)msg[e])) e++;
    if (e == k || e - k > 9 || !has_at(msg, n, e, LIT(" bytes packet from "))) return GRAM_FALLBACK;
    Py_ssize_t t = e + 19, te = t;
    while (te < n && msg[te] != ' ') te++;
    int tr = -1;
    for (int x = 0; x < 5; x++)
        if ((Py_ssize_t)strlen(TRANSPORTS[x]) == te - t &&
            memcmp(TRANSPORTS[x], msg + t, (size_t)(te - t)) == 0)
            tr = x;
    if (tr < 0 || te >= n) return GRAM_FALLBACK;
    Py_ssize_t a = te + 1;
    Py_ssize_t ae = token_then(msg, n, a, LIT(" : "));
    if (ae < 0) return GRAM_FALLBACK;
    Py_ssize_t why = ae + 3;
    cand_spec c = spec(p->time, K_MALFORMED_REQUEST, S_PJPROJECT);
    int rc = cand_hostport(&c, msg + a, ae - a, GRAM_MALFORMED);
    if (rc != GRAM_OK) return rc;
    c.transport = GRAMMAR_STR[GS_UDP + tr];
    if ((c.detail = keep(&c, text(msg + why, n - why < 200 ? n - why : 200))) == NULL)
        return cand_fail(&c);
    return cand_done(p, origin, &c, out);
}

/* ---- chan_sip `Registered SIP '…' at addr` (the most frequent candidate line) --------------- */

static int registered(const fast_prefix *p, const char *msg, Py_ssize_t n, PyObject *origin,
                      fast_cand *out) {
    Py_ssize_t a = 16;
    Py_ssize_t q = find_char(msg, n, a, '\'');
    if (q < 0 || q - a > 128 || !has_at(msg, n, q, LIT("' at ")) || n - q - 5 < 1 ||
        n - q - 5 > 100)
        return GRAM_MALFORMED;
    for (Py_ssize_t k = q + 5; k < n; k++)
        if (py_space((unsigned char)msg[k])) return GRAM_MALFORMED;
    cand_spec c = spec(p->time, K_AUTH_SUCCESS, S_CHAN_SIP);
    int rc = cand_hostport(&c, msg + q + 5, n - q - 5, GRAM_MALFORMED);
    if (rc != GRAM_OK) return rc;
    if ((c.account = keep(&c, text(msg + a, q - a))) == NULL) return cand_fail(&c);
    c.detail = GRAMMAR_STR[GS_REGISTERED];
    c.with_tag = 1;
    return cand_done(p, origin, &c, out);
}

/* ---- lines.parse_message: the same dispatch, in the same order ------------------------------- */

int grammar_parse(fast_ctx *ctx, const fast_prefix *p, const char *msg, Py_ssize_t n,
                  PyObject *origin, fast_cand *out) {
    (void)ctx;
    if (n <= 0) return GRAM_FALLBACK;
    if (has_at(msg, n, 0, LIT("SecurityEvent="))) return grammar_security(p, msg, n, origin, out);
    if (has_at(msg, n, 0, LIT("Request "))) return pjsip_request(p, msg, n, origin, out);
    if (has_at(msg, n, 0, LIT("Registration from '"))) return registration(p, msg, n, origin, out);
    if (find(msg, n, 0, LIT("rejected because extension not found")) >= 0)
        return call_rejected(p, msg, n, origin, out);
    if (has_at(msg, n, 0, LIT("Failed to authenticate "))) return device(p, msg, n, origin, out);
    if (has_at(msg, n, 0, LIT("Sending fake auth rejection")))
        return grammar_fake_auth(p, msg, n, origin, out);
    if (has_at(msg, n, 0, LIT("username mismatch")))
        return grammar_mismatch(p, msg, n, origin, out);
    if (has_at(msg, n, 0, LIT("No closing bracket found in ")) ||
        has_at(msg, n, 0, LIT("From address missing 'sip:'")) ||
        has_at(msg, n, 0, LIT("No field 'From' present")))
        return grammar_bad_request(p, msg, n, origin, out);
    if (has_at(msg, n, 0, LIT("Timeout on "))) return grammar_timeout(p, msg, n, origin, out);
    if (has_at(msg, n, 0, LIT("Endpoint '"))) return grammar_no_aors(p, msg, n, origin, out);
    if (has_at(msg, n, 0, LIT("Host ")) || has_at(msg, n, 0, LIT("No registration for peer")))
        return grammar_iax2(p, msg, n, origin, out);
    if (find(msg, n, 0, LIT("Dropping ")) >= 0) return pjproject(p, msg, n, origin, out);
    if (has_at(msg, n, 0, LIT("Registered SIP '"))) return registered(p, msg, n, origin, out);
    if (has_at(msg, n, 0, LIT("Added contact '")))
        return grammar_added_contact(p, msg, n, origin, out);
    if (find(p->file, p->file_len, 0, LIT("manager")) >= 0 ||
        find(msg, n, 0, LIT("authenticate")) >= 0 || find(msg, n, 0, LIT("logged on from")) >= 0)
        return grammar_ami(p, msg, n, origin, out);
    return GRAM_NONE;
}

