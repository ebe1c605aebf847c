/* grammar_iax_ami.c: the IAX2 and AMI grammars (iax_ami.parse_iax2, iax_ami.parse_ami) and
 * token_then, the `\S{1,100}` run they start with. Dispatched by grammar_parse (grammar.c).
 */
#include "grammar.h"

Py_ssize_t token_then(const char *msg, Py_ssize_t n, Py_ssize_t i, const char *lit, Py_ssize_t ln) {
    Py_ssize_t j = i;
    while (j < n && j - i <= 100 && !py_space((unsigned char)msg[j])) j++;
    if (j == i || j - i > 100 || !has_at(msg, n, j, lit, ln)) return -1;
    return j;
}

int grammar_iax2(const fast_prefix *p, const char *msg, Py_ssize_t n, PyObject *origin,
                 fast_cand *out) {
    static const char MD5[] = " failed MD5 authentication for '";
    static const char AUTH[] = " failed to authenticate as ";
    Py_ssize_t ip_at = 0, ip_end = -1, acct_at = 0, acct_end = 0;
    int kind = K_WRONG_PASSWORD;
    if (has_at(msg, n, 0, LIT("Host "))) {
        Py_ssize_t j = token_then(msg, n, 5, LIT(MD5));
        if (j >= 0) { /* greedy (.*) up to the last "' (" */
            Py_ssize_t a = j + (Py_ssize_t)sizeof(MD5) - 1, q = -1;
            for (Py_ssize_t k = n - 3; k >= a; k--)
                if (msg[k] == '\'' && msg[k + 1] == ' ' && msg[k + 2] == '(') {
                    q = k;
                    break;
                }
            if (q >= 0) {
                ip_at = 5, ip_end = j, acct_at = a, acct_end = q;
            }
        }
        if (ip_end < 0 && (j = token_then(msg, n, 5, LIT(AUTH))) >= 0) {
            ip_at = 5, ip_end = j, acct_at = j + (Py_ssize_t)sizeof(AUTH) - 1, acct_end = n;
        }
    } else if (has_at(msg, n, 0, LIT("No registration for peer '")) && msg[n - 1] == ')') {
        /* `…peer '(.*)' \(from ([^()\s]{1,100})\)$`: the address is the run before the ')' */
        Py_ssize_t s = n - 1;
        while (s > 0 && msg[s - 1] != '(' && msg[s - 1] != ')' && !py_space((unsigned char)msg[s - 1]))
            s--;
        if (n - 1 - s >= 1 && n - 1 - s <= 100 && s - 8 >= 26 &&
            has_at(msg, n, s - 8, LIT("' (from "))) {
            ip_at = s, ip_end = n - 1, acct_at = 26, acct_end = s - 8;
            kind = K_UNKNOWN_ACCOUNT;
        }
    }
    if (ip_end < 0) return GRAM_NONE;
    cand_spec c = spec(p->time, kind, S_IAX2);
    PyObject *ip = ip_from_text(msg + ip_at, ip_end - ip_at);
    if (ip == NULL) return GRAM_ERROR;
    if (ip != Py_None) {
        c.ip = keep(&c, ip);
    } else {
        Py_DECREF(ip);
        int rc = cand_hostport(&c, msg + ip_at, ip_end - ip_at, GRAM_MALFORMED);
        if (rc != GRAM_OK) return rc;
    }
    /* account: .strip().strip("'") or None */
    const char *as = msg + acct_at;
    Py_ssize_t an = acct_end - acct_at;
    strip(&as, &an);
    while (an > 0 && as[0] == '\'') as++, an--;
    while (an > 0 && as[an - 1] == '\'') an--;
    if (an > 0 && (c.account = keep(&c, text(as, an))) == NULL) return cand_fail(&c);
    if ((c.detail = keep(&c, text(msg, n < 80 ? n : 80))) == NULL) return cand_fail(&c);
    return cand_done(p, origin, &c, out);
}

int grammar_ami(const fast_prefix *p, const char *msg, Py_ssize_t n, PyObject *origin,
                fast_cand *out) {
    /* parse_ami: `(\S{1,100}) failed to authenticate as '(.*)'$`, then
     * `(\S{1,100}) tried to authenticate with nonexistent user '(.*)'$`, then
     * `Manager '(.*)' logged on from (\S{1,100})$`; the first that matches decides */
    static const char FAIL[] = " failed to authenticate as '";
    static const char NOUSER[] = " tried to authenticate with nonexistent user '";
    static const char OK[] = "' logged on from ";
    Py_ssize_t ip_at = 0, ip_end, acct_at, acct_end = n - 1;
    int kind = K_AMI_LOGIN_FAILED;
    int detail = GS_AMI_FAILED;
    if ((ip_end = token_then(msg, n, 0, LIT(FAIL))) >= 0 &&
        n - 1 >= (acct_at = ip_end + (Py_ssize_t)sizeof(FAIL) - 1) && msg[n - 1] == '\'') {
        /* matched */
    } else if ((ip_end = token_then(msg, n, 0, LIT(NOUSER))) >= 0 &&
               n - 1 >= (acct_at = ip_end + (Py_ssize_t)sizeof(NOUSER) - 1) &&
               msg[n - 1] == '\'') {
        detail = GS_AMI_NO_USER;
    } else if (has_at(msg, n, 0, LIT("Manager '"))) {
        ip_at = n; /* the address is the non-space run at the end */
        while (ip_at > 0 && !py_space((unsigned char)msg[ip_at - 1])) ip_at--;
        Py_ssize_t ok = ip_at - (Py_ssize_t)sizeof(OK) + 1;
        if (n - ip_at < 1 || n - ip_at > 100 || ok < 9 || !has_at(msg, n, ok, LIT(OK)))
            return GRAM_NONE;
        ip_end = n;
        acct_at = 9;
        acct_end = ok;
        kind = K_AMI_LOGIN_SUCCESS;
        detail = GS_AMI_LOGGED_ON;
    } else {
        return GRAM_NONE;
    }
    PyObject *ip = ip_from_text(msg + ip_at, ip_end - ip_at);
    if (ip == NULL) return GRAM_ERROR;
    if (ip == Py_None) {
        Py_DECREF(ip);
        return GRAM_MALFORMED;
    }
    cand_spec c = spec(p->time, kind, S_AMI);
    c.ip = keep(&c, ip);
    if ((c.account = keep(&c, text(msg + acct_at, acct_end - acct_at))) == NULL)
        return cand_fail(&c);
    c.detail = GRAMMAR_STR[detail];
    return cand_done(p, origin, &c, out);
}
