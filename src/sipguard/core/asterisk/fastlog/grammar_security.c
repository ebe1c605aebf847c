/* grammar_security.c: the SecurityEvent lines (security.py) and their EventTV (prefix.event_tv)
 * in C. Only the _simple_fields shape is read natively (distinct keys, every '",' a cut, a
 * RemoteAddress part, an EventTV in one of the usual forms); anything else falls back.
 */
#include "grammar.h"

#define MAX_FIELDS 64

static const struct {
    const char *name;
    int kind;
} EVENT_KINDS[NSECURITY_EVENTS] = {
/* LINK_NAMES order: the index is also the link name */
#define EVENT_KIND(name, kind) {#name, K_##kind},
    FASTLOG_SECURITY_EVENTS(EVENT_KIND)
#undef EVENT_KIND
};

static int64_t days_from_civil(int64_t y, int m, int d) { /* days since 1970-01-01 */
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}
static int days_in_month(int y, int m) {
    static const int dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return 29;
    return dm[m - 1];
}
static int num2(const char *s) { return (s[0] - '0') * 10 + (s[1] - '0'); }
static int digits_at(const char *s, Py_ssize_t n, Py_ssize_t i, Py_ssize_t len) {
    return i + len <= n && all_digits(s + i, len);
}

/* prefix.event_tv with tz None: `secs-usecs`, or ISO `YYYY-MM-DDTHH:MM:SS[.f{1,6}][Z|±HH[:]MM]`.
 * 1 with *out, 0 when the shape is not one of these (the caller falls back). */
static int event_tv(const char *s, Py_ssize_t n, double *out) {
    Py_ssize_t dash = find_char(s, n, 0, '-');
    if (dash > 0 && dash <= 12 && all_digits(s, dash) && n - dash - 1 <= 6 &&
        all_digits(s + dash + 1, n - dash - 1)) {
        long long secs = 0;
        for (Py_ssize_t i = 0; i < dash; i++) secs = secs * 10 + (s[i] - '0');
        *out = (double)secs + (double)digits_value(s + dash + 1, n - dash - 1) / 1e6;
        return 1;
    }
    if (n < 19 || !digits_at(s, n, 0, 4) || s[4] != '-' || !digits_at(s, n, 5, 2) ||
        s[7] != '-' || !digits_at(s, n, 8, 2) || s[10] != 'T' || !digits_at(s, n, 11, 2) ||
        s[13] != ':' || !digits_at(s, n, 14, 2) || s[16] != ':' || !digits_at(s, n, 17, 2))
        return 0;
    int y = (int)digits_value(s, 4), mo = num2(s + 5), d = num2(s + 8);
    int h = num2(s + 11), mi = num2(s + 14), sec = num2(s + 17);
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 ||
        sec > 59)
        return 0;
    Py_ssize_t i = 19;
    long us = 0;
    if (i < n && s[i] == '.') {
        Py_ssize_t f = ++i;
        while (i < n && is_digit((unsigned char)s[i])) i++;
        if (i == f || i - f > 6) return 0;
        us = digits_value(s + f, i - f);
        for (Py_ssize_t k = i - f; k < 6; k++) us *= 10;
    }
    int64_t local = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
    if (i == n) { /* naive: timegm + microsecond / 1e6 */
        *out = (double)local + (double)us / 1e6;
        return 1;
    }
    int64_t offset = 0;
    if (s[i] == 'Z' && i + 1 == n) {
        offset = 0;
    } else if (s[i] == '+' || s[i] == '-') {
        Py_ssize_t j = i + 1;
        int oh, om;
        if (n - j == 4 && all_digits(s + j, 4)) {
            oh = num2(s + j);
            om = num2(s + j + 2);
        } else if (n - j == 5 && s[j + 2] == ':' && digits_at(s, n, j, 2) &&
                   digits_at(s, n, j + 3, 2)) {
            oh = num2(s + j);
            om = num2(s + j + 3);
        } else {
            return 0;
        }
        if (oh > 23 || om > 59) return 0;
        offset = (oh * 3600 + om * 60) * (s[i] == '-' ? -1 : 1);
    } else {
        return 0;
    }
    /* aware: datetime.timestamp() is total microseconds / 10**6, one correctly rounded division.
     * A double holds the microseconds exactly only up to 2**53 (the year 2255): beyond, Python's
     * exact integer division and this one would round differently, so Python decides. */
    int64_t total_us = (local - offset) * 1000000 + us;
    if (total_us > ((int64_t)1 << 53) || total_us < -((int64_t)1 << 53)) return 0;
    *out = (double)total_us / 1e6;
    return 1;
}

typedef struct {
    const char *key, *val;
    Py_ssize_t klen, vlen;
} field;

static const field *get_field(const field *f, int nf, const char *key) {
    Py_ssize_t kl = (Py_ssize_t)strlen(key);
    for (int i = 0; i < nf; i++)
        if (f[i].klen == kl && memcmp(f[i].key, key, (size_t)kl) == 0) return &f[i];
    return NULL;
}

/* lines.parse_message's SecurityEvent branch for the _simple_fields shape */
int grammar_security(const fast_prefix *p, const char *msg, Py_ssize_t n, PyObject *origin,
                     fast_cand *out) {
    if (!has_at(msg, n, 0, LIT("SecurityEvent=\""))) return GRAM_FALLBACK;
    Py_ssize_t bn = n;
    if (bn > 0 && msg[bn - 1] == '"') bn--;
    field f[MAX_FIELDS];
    int nf = 0;
    Py_ssize_t at = 0;
    for (;;) { /* body.split('",'), each part key="value; one pass, no substring search */
        Py_ssize_t end = at;
        for (;;) {
            const char *q = memchr(msg + end, '"', (size_t)(bn - end));
            end = q ? q - msg : bn;
            if (end >= bn - 1 || msg[end + 1] == ',') break;
            end++;
        }
        if (end >= bn - 1) end = bn; /* no '",' left: the last part */
        if (nf == MAX_FIELDS) return GRAM_FALLBACK;
        /* partition('="'), key ASCII alnum: the key is the alnum run, or the part is refused */
        Py_ssize_t eq = at;
        while (eq < end && eq - at <= 32 && is_alnum((unsigned char)msg[eq])) eq++;
        if (eq == at || eq - at > 32 || eq + 1 >= end || msg[eq] != '=' || msg[eq + 1] != '"')
            return GRAM_FALLBACK;
        for (int k = 0; k < nf; k++)
            if (f[k].klen == eq - at && memcmp(f[k].key, msg + at, (size_t)(eq - at)) == 0)
                return GRAM_FALLBACK; /* a repeated key: the full parse decides */
        f[nf++] = (field){msg + at, msg + eq + 2, eq - at, end - eq - 2};
        if (end >= bn) break;
        at = end + 2;
    }
    /* Python wants body.count('",RemoteAddress="') == 1: every occurrence starts a part (every
     * '",' is a cut) and keys are distinct, so that is "a RemoteAddress part exists" */
    const field *rf = get_field(f, nf, "RemoteAddress");
    if (rf == NULL) return GRAM_FALLBACK;
    const field *name_f = &f[0]; /* the body starts with SecurityEvent=" */
    const char *name = name_f->val;
    Py_ssize_t name_len = name_f->vlen;
    if (name_len == 0 || py_space((unsigned char)name[0]) ||
        py_space((unsigned char)name[name_len - 1]))
        return GRAM_FALLBACK; /* "" reads Event=, spaces are stripped: rare, leave to Python */
    int link = -1;
    for (int k = 0; k < NSECURITY_EVENTS; k++)
        if ((Py_ssize_t)strlen(EVENT_KINDS[k].name) == name_len &&
            memcmp(EVENT_KINDS[k].name, name, (size_t)name_len) == 0)
            link = k;
    if (link < 0) return GRAM_NONE;
    double when = p->time;
    const field *tv = get_field(f, nf, "EventTV");
    if (tv != NULL && tv->vlen > 0 && !event_tv(tv->val, tv->vlen, &when)) return GRAM_FALLBACK;

    const char *rs = rf->val;
    Py_ssize_t rn = rf->vlen;
    strip(&rs, &rn);
    cand_spec c = spec(when, EVENT_KINDS[link].kind, S_SECURITY);
    int rc = parse_remote(rs, rn, &c.ip, &c.port, &c.transport);
    if (rc <= 0) return rc < 0 ? GRAM_ERROR : GRAM_NONE;
    keep(&c, c.ip);
    keep(&c, c.port);
    keep(&c, c.transport);

    const field *sf = get_field(f, nf, "Service");
    if (sf != NULL) {
        const char *ss = sf->val;
        Py_ssize_t sn = sf->vlen;
        strip(&ss, &sn);
        if (eq_upper(ss, sn, "SIP"))
            c.service = S_CHAN_SIP;
        else if (eq_upper(ss, sn, "PJSIP"))
            c.service = S_PJSIP;
        else if (eq_upper(ss, sn, "AMI"))
            c.service = S_AMI;
        else if (eq_upper(ss, sn, "IAX2") || eq_upper(ss, sn, "IAX"))
            c.service = S_IAX2;
    }
    const field *af = get_field(f, nf, "AccountID");
    int unknown = 0;
    if (af != NULL) {
        const char *as = af->val;
        Py_ssize_t an = af->vlen;
        strip(&as, &an);
        unknown = an == 9 && memcmp(as, "<unknown>", 9) == 0;
        if (an > 0 && !unknown && (c.account = keep(&c, text(as, an))) == NULL)
            return cand_fail(&c);
    }
    if (c.kind == K_WRONG_PASSWORD && unknown) c.kind = K_UNKNOWN_ACCOUNT;
    if (link == L_ChallengeResponseFailed && c.service == S_CHAN_SIP && c.kind == K_WRONG_PASSWORD)
        c.kind = K_AUTH_NAME_MISMATCH; /* chan_sip raises it only for a name mismatch */
    c.detail = GRAMMAR_STR[GS_EVENT + link];
    if (link == L_FailedACL) {
        const field *lf = get_field(f, nf, "ACLName");
        const char *ls = lf ? lf->val : "";
        Py_ssize_t ln = lf ? lf->vlen : 0;
        strip(&ls, &ln);
        if (ln > 0) {
            PyObject *d = keep(&c, text_join(LIT("FailedACL "), ls, ln, "", 0, "", 0));
            if (d == NULL) return cand_fail(&c);
            c.detail = d;
            if (ln == 18 && memcmp(ls, "no_extension_match", 18) == 0)
                c.kind = K_CALL_REJECTED;
            else if (ln == 17 && memcmp(ls, "domain_must_match", 17) == 0)
                c.kind = K_REQUEST_NOT_ALLOWED;
        }
    }
    if (c.service == S_AMI) {
        if (link == L_InvalidAccountID || link == L_ChallengeResponseFailed ||
            link == L_InvalidPassword)
            c.kind = K_AMI_LOGIN_FAILED;
        else if (c.kind == K_AUTH_SUCCESS)
            c.kind = K_AMI_LOGIN_SUCCESS;
    }
    const field *cf = get_field(f, nf, "SessionID");
    if (cf != NULL && cf->vlen > 0 && (c.call_id = keep(&c, fresh(cf->val, cf->vlen))) == NULL)
        return cand_fail(&c);
    c.channel = CH_SECURITY;
    c.link_name = link;
    return cand_done(p, origin, &c, out);
}
