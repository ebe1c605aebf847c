/* grammar_addr.c: addresses for the grammars: addr.parse_hostport, security.parse_remote and
 * candidate.name_addr in C. Addresses themselves are parsed (and cached) by module.c's
 * ip_from_text, which follows addr.parse_ip; this file finds where they are.
 */
#include "grammar.h"

static inline int is_hex_class(unsigned char c) { /* [0-9A-Fa-f:.] */
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' ||
           c == '.';
}
static inline int is_scope(unsigned char c) { return is_alnum(c) || c == '_' || c == '.' || c == '-'; }

/* ---- addr.parse_hostport -------------------------------------------------------------------- */

/* `\d{1,3}(\.\d{1,3}){3}`: length of the match at s, 0 if none */
static Py_ssize_t v4_len(const char *s, Py_ssize_t n) {
    Py_ssize_t i = 0;
    for (int part = 0; part < 4; part++) {
        if (part > 0) {
            if (i >= n || s[i] != '.') return 0;
            i++;
        }
        Py_ssize_t d = i;
        while (i < n && i - d < 4 && is_digit((unsigned char)s[i])) i++;
        if (i == d || i - d > 3) return 0;
    }
    return i;
}
/* `[0-9A-Fa-f:.]{2,45}(?:%[\w.-]{1,32})?` from s: its length, 0 if none */
static Py_ssize_t v6_chars_len(const char *s, Py_ssize_t n) {
    Py_ssize_t i = 0;
    while (i < n && is_hex_class((unsigned char)s[i])) i++;
    if (i < 2 || i > 45) return 0;
    if (i < n && s[i] == '%') {
        Py_ssize_t j = i + 1;
        while (j < n && is_scope((unsigned char)s[j])) j++;
        if (j - i - 1 >= 1 && j - i - 1 <= 32) return j;
    }
    return i;
}
/* `(?::(\d{1,5}))?$` at s[i:]: 1 with *port (0 = absent), 0 if no match */
static int opt_port(const char *s, Py_ssize_t n, Py_ssize_t i, long *port) {
    *port = 0;
    if (i == n) return 1;
    if (s[i] != ':' || n - i - 1 < 1 || n - i - 1 > 5 || !all_digits(s + i + 1, n - i - 1))
        return 0;
    *port = digits_value(s + i + 1, n - i - 1);
    return 1;
}

/* addr.parse_hostport (v6_port_last): *ip NEW, *port NEW or NULL (None). */
int parse_hostport(const char *s, Py_ssize_t n, PyObject **ip, PyObject **port) {
    *ip = *port = NULL;
    if (n == 0 || n > 90) return HP_NONE;
    Py_ssize_t host_at = 0, host_len = 0;
    long p = 0;
    int have_port = 0, matched = 0;
    Py_ssize_t v4 = v4_len(s, n);
    if (v4 > 0 && opt_port(s, n, v4, &p)) {
        host_len = v4;
        matched = 1;
    } else if (s[0] == '[') {
        Py_ssize_t in = v6_chars_len(s + 1, n - 1);
        if (in > 0 && 1 + in < n && s[1 + in] == ']' && opt_port(s, n, 2 + in, &p)) {
            host_at = 1;
            host_len = in;
            matched = 1;
        }
    }
    if (matched) {
        have_port = host_at + host_len + (host_at ? 1 : 0) < n;
        if (have_port && !(p > 0 && p < 65536)) return HP_NONE;
    } else {
        if (v6_chars_len(s, n) != n) return HP_NONE;
        int colons = 0;
        for (Py_ssize_t i = 0; i < n; i++) colons += s[i] == ':';
        if (colons < 2) return HP_NONE;
        Py_ssize_t c = rfind_char(s, 0, n, ':');
        Py_ssize_t pl = n - c - 1;
        if (pl > 5 || !all_digits(s + c + 1, pl)) return HP_NONE;
        p = digits_value(s + c + 1, pl);
        /* out of range: Python returns the address with port False; let it */
        if (!(p > 0 && p < 65536)) return HP_FALLBACK;
        host_len = c;
        have_port = 1;
    }
    PyObject *addr = ip_from_text(s + host_at, host_len);
    if (addr == NULL) return HP_ERROR;
    if (addr == Py_None) {
        Py_DECREF(addr);
        return HP_NONE;
    }
    /* the unbracketed form must be IPv6: its host holds a ':' so an IPv4 never parses */
    if (have_port) {
        *port = port_obj(p);
        if (*port == NULL) {
            Py_DECREF(addr);
            return HP_ERROR;
        }
    }
    *ip = addr;
    return HP_OK;
}

/* ---- name-addr (candidate.name_addr) -------------------------------------------------------- */

/* (display, URI user) of a From value. 0: not handled (a backslash: QUOTED unescapes). */
int name_addr(const char *s, Py_ssize_t n, opt_span *display, opt_span *user) {
    display->set = user->set = 0;
    if (memchr(s, '\\', (size_t)n) != NULL) return 0;
    const char *uri = s;
    Py_ssize_t un = n;
    Py_ssize_t q = n > 0 && s[0] == '"' ? find_char(s, n, 1, '"') : -1;
    if (q > 0 && q - 1 <= 512) { /* QUOTED: no backslash, so the first '"' closes it */
        Py_ssize_t e = q + 1;
        while (e < n && py_space((unsigned char)s[e])) e++;
        *display = (opt_span){s + 1, q - 1, q - 1 > 0};
        uri = s + e;
        un = n - e;
    } else {
        Py_ssize_t lt = find_char(s, n, 0, '<');
        if (lt > 0 && memchr(s, ':', (size_t)lt) == NULL) {
            const char *d = s;
            Py_ssize_t dn = lt;
            strip(&d, &dn);
            *display = (opt_span){d, dn, dn > 0};
            uri = s + lt;
            un = n - lt;
        }
    }
    /* _URI_USER.search: (?:sips?|tel):([^@;>?\s]{1,128}) */
    for (Py_ssize_t i = 0; i + 4 < un; i++) {
        Py_ssize_t at;
        if (has_at(uri, un, i, LIT("sip:")) || has_at(uri, un, i, LIT("tel:")))
            at = i + 4;
        else if (has_at(uri, un, i, LIT("sips:")))
            at = i + 5;
        else
            continue;
        Py_ssize_t j = at;
        while (j < un && j - at < 128) {
            unsigned char c = (unsigned char)uri[j];
            if (c == '@' || c == ';' || c == '>' || c == '?' || py_space(c)) break;
            j++;
        }
        if (j > at) {
            *user = (opt_span){uri + at, j - at, 1};
            break;
        }
    }
    return 1;
}

/* ---- security.parse_remote ------------------------------------------------------------------ */

/* security.parse_remote: 1 with *ip (NEW), *port (NEW or NULL), *transport (NEW or NULL);
 * 0: not an address; -1: error */
int parse_remote(const char *s, Py_ssize_t n, PyObject **ip, PyObject **port,
                 PyObject **transport) {
    static const char *const TRANSPORTS[] = {"UDP", "TCP", "TLS", "WS", "WSS", "SCTP"};
    *ip = *port = *transport = NULL;
    if (n > 128) return 0;
    Py_ssize_t last = rfind_char(s, 0, n, '/');
    if (last < 0) return 0;
    Py_ssize_t head = last;
    Py_ssize_t v = find_char(s, head, 0, '/');
    Py_ssize_t vlen = v < 0 ? head : v;
    if (!(eq_upper(s, vlen, "IPV4") || eq_upper(s, vlen, "IPV6"))) return 0;
    Py_ssize_t pl = n - last - 1;
    if (pl > 5 || !all_digits(s + last + 1, pl)) return 0;
    const char *rest = v < 0 ? s + head : s + v + 1;
    Py_ssize_t rn = v < 0 ? 0 : head - v - 1;
    const char *addr = rest;
    Py_ssize_t an = rn;
    int tr = -1; /* TRANSPORTS index: the lower-case name is GRAMMAR_STR[GS_UDP + tr] */
    Py_ssize_t sl = find_char(rest, rn, 0, '/');
    if (sl >= 0) {
        for (int t = 0; t < (int)(sizeof TRANSPORTS / sizeof *TRANSPORTS); t++)
            if (eq_upper(rest, sl, TRANSPORTS[t])) {
                tr = t;
                addr = rest + sl + 1;
                an = rn - sl - 1;
                break;
            }
    }
    if (an >= 1 && addr[0] == '[' && addr[an - 1] == ']') {
        addr++;
        an = an >= 2 ? an - 2 : 0;
    }
    long p = digits_value(s + last + 1, pl);
    if (p > 65535) return 0; /* checked after the address in Python; the result is the same */
    PyObject *a = ip_from_text(addr, an);
    if (a == NULL) return -1;
    if (a == Py_None) {
        Py_DECREF(a);
        return 0;
    }
    if (p != 0 && (*port = port_obj(p)) == NULL) {
        Py_DECREF(a);
        return -1;
    }
    if (tr >= 0) {
        *transport = GRAMMAR_STR[GS_UDP + tr];
        Py_INCREF(*transport);
    }
    *ip = a;
    return 1;
}
