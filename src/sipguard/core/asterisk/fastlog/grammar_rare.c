/* grammar_rare.c: the rarer lines.py forms: chan_sip fake auth rejection, username mismatch,
 * the malformed-request phrases and `Timeout on … non-critical invite transaction`, PJSIP
 * `Endpoint … has no configured AORs` and `Added contact …`. Dispatched by grammar_parse
 * (grammar.c), which has already checked each line's opening words.
 */
#include "grammar.h"

int grammar_fake_auth(const fast_prefix *p, const char *msg, Py_ssize_t n, PyObject *origin,
                      fast_cand *out) {
    /* `Sending fake auth rejection for (?:device|user) (.*)$` */
    Py_ssize_t i = device_or_user(msg, n, 32);
    if (!has_at(msg, n, 27, LIT(" for ")) || i < 0) return GRAM_MALFORMED;
    opt_span display, user;
    if (!name_addr(msg + i, n - i, &display, &user)) return GRAM_FALLBACK;
    cand_spec c = spec(p->time, K_WRONG_PASSWORD, S_CHAN_SIP);
    if (cand_from(&c, &display, &user) < 0) return cand_fail(&c);
    c.detail = GRAMMAR_STR[GS_FAKE_AUTH];
    c.with_tag = 1;
    c.link = LINK_AUTH_FAILED | LINK_BIT(L_ChallengeSent);
    return cand_done(p, origin, &c, out);
}

int grammar_mismatch(const fast_prefix *p, const char *msg, Py_ssize_t n, PyObject *origin,
                     fast_cand *out) {
    /* `username mismatch, have <([^>]*)>, digest has <(.*)>$` */
    static const char DIGEST[] = ">, digest has <";
    if (!has_at(msg, n, 0, LIT("username mismatch, have <"))) return GRAM_MALFORMED;
    Py_ssize_t gt = find_char(msg, n, 25, '>');
    Py_ssize_t b = gt + (Py_ssize_t)sizeof(DIGEST) - 1;
    if (gt < 0 || !has_at(msg, n, gt, LIT(DIGEST)) || n - 1 < b || msg[n - 1] != '>')
        return GRAM_MALFORMED;
    cand_spec c = spec(p->time, K_AUTH_NAME_MISMATCH, S_CHAN_SIP);
    if ((c.account = keep(&c, text(msg + 25, gt - 25))) == NULL) return cand_fail(&c);
    c.detail = keep(&c, text_join(LIT("username mismatch, digest has <"), msg + b, n - 1 - b,
                                  LIT(">"), "", 0));
    if (c.detail == NULL) return cand_fail(&c);
    c.with_tag = 1;
    c.link = LINK_BIT(L_Registration) | LINK_BIT(L_ChallengeResponseFailed);
    c.followed = 1;
    return cand_done(p, origin, &c, out);
}

int grammar_bad_request(const fast_prefix *p, const char *msg, Py_ssize_t n, PyObject *origin,
                        fast_cand *out) {
    cand_spec c = spec(p->time, K_MALFORMED_REQUEST, S_CHAN_SIP);
    if ((c.detail = keep(&c, text(msg, n < 120 ? n : 120))) == NULL) return cand_fail(&c);
    c.with_tag = 1;
    c.link = LINK_BIT(L_ChallengeSent) | LINK_BIT(L_RequestBadFormat);
    return cand_done(p, origin, &c, out);
}

int grammar_timeout(const fast_prefix *p, const char *msg, Py_ssize_t n, PyObject *origin,
                    fast_cand *out) {
    /* `Timeout on (.{1,512}) on non-critical invite transaction\.?$` */
    static const char TAIL[] = " on non-critical invite transaction";
    Py_ssize_t tl = (Py_ssize_t)sizeof(TAIL) - 1;
    Py_ssize_t end = n > 0 && msg[n - 1] == '.' ? n - 1 : n;
    Py_ssize_t q = end - tl;
    if (q - 11 < 1 || q - 11 > 512 || !has_at(msg, n, q, TAIL, tl))
        return find(msg, n, 0, LIT("non-critical invite")) >= 0 ? GRAM_MALFORMED : GRAM_NONE;
    cand_spec c = spec(p->time, K_CHALLENGE_UNANSWERED, S_CHAN_SIP);
    if ((c.call_id = keep(&c, fresh(msg + 11, q - 11))) == NULL) return cand_fail(&c);
    c.detail = GRAMMAR_STR[GS_TIMED_OUT];
    c.with_tag = 1;
    return cand_done(p, origin, &c, out);
}

int grammar_no_aors(const fast_prefix *p, const char *msg, Py_ssize_t n, PyObject *origin,
                    fast_cand *out) {
    /* `Endpoint '([^']{0,128})' \(([^()\s]{1,100})\) has no configured AORs` (no end anchor) */
    int bad = find(msg, n, 0, LIT("no configured AORs")) >= 0 ? GRAM_MALFORMED : GRAM_NONE;
    Py_ssize_t q = find_char(msg, n, 10, '\'');
    if (q < 0 || q - 10 > 128 || !has_at(msg, n, q, LIT("' ("))) return bad;
    Py_ssize_t a = q + 3, j = a;
    while (j < n && msg[j] != '(' && msg[j] != ')' && !py_space((unsigned char)msg[j])) j++;
    if (j == a || j - a > 100 || !has_at(msg, n, j, LIT(") has no configured AORs"))) return bad;
    cand_spec c = spec(p->time, K_REQUEST_NOT_ALLOWED, S_PJSIP);
    int rc = cand_hostport(&c, msg + a, j - a, GRAM_MALFORMED);
    if (rc != GRAM_OK) return rc;
    if ((c.account = keep(&c, text(msg + 10, q - 10))) == NULL) return cand_fail(&c);
    c.detail = GRAMMAR_STR[GS_NO_AORS];
    return cand_done(p, origin, &c, out);
}

int grammar_added_contact(const fast_prefix *p, const char *msg, Py_ssize_t n, PyObject *origin,
                          fast_cand *out) {
    /* `Added contact '(.*)' to AOR '([^']*)' with expiration of \d+ seconds` (no end anchor):
     * the greedy contact ends at the last "' to AOR '"; if that one fails an earlier one might
     * match, which Python decides */
    static const char AOR[] = "' to AOR '";
    static const char EXP[] = "' with expiration of ";
    Py_ssize_t al = (Py_ssize_t)sizeof(AOR) - 1, el = (Py_ssize_t)sizeof(EXP) - 1;
    Py_ssize_t k = -1;
    for (Py_ssize_t i = n - al; i >= 15; i--)
        if (msg[i] == '\'' && memcmp(msg + i, AOR, (size_t)al) == 0) {
            k = i;
            break;
        }
    if (k < 0) return GRAM_NONE; /* no separator at all: the regex cannot match */
    Py_ssize_t a = k + al;
    Py_ssize_t q = find_char(msg, n, a, '\'');
    if (q < 0 || !has_at(msg, n, q, EXP, el)) return GRAM_FALLBACK;
    Py_ssize_t d = q + el, e = d;
    while (e < n && is_digit((unsigned char)msg[e])) e++;
    if (e == d || !has_at(msg, n, e, LIT(" seconds"))) return GRAM_FALLBACK;
    cand_spec c = spec(p->time, K_AUTH_SUCCESS, S_PJSIP);
    if ((c.account = keep(&c, text(msg + a, q - a))) == NULL) return cand_fail(&c);
    c.detail = GRAMMAR_STR[GS_ADDED_CONTACT];
    c.link = LINK_BIT(L_SuccessfulAuth);
    return cand_done(p, origin, &c, out);
}
