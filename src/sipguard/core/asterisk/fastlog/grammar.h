/* grammar.h: what the grammar files (grammar.c, grammar_addr.c, grammar_security.c,
 * grammar_iax_ami.c, grammar_rare.c) share.
 * Private to them: module.c, scan.c and link.c see only fast.h's grammar_parse/grammar_init.
 *
 * The small scanners are static inline so that each file gets them inlined, as they were when
 * the grammars lived in one file. Input everywhere: one stripped message, ASCII without NUL or
 * ANSI codes (scan.c guarantees it).
 */
#ifndef SIPGUARD_FASTLOG_GRAMMAR_H
#define SIPGUARD_FASTLOG_GRAMMAR_H

#include "fast.h"
#include <string.h>

#define LIT(s) s, (Py_ssize_t)(sizeof(s) - 1)

enum { HP_OK, HP_NONE, HP_FALLBACK, HP_ERROR = -1 };

/* ---- small scanners ----------------------------------------------------------------------- */

/* Python's str.isspace / regex \s on ASCII: also the separators \x1c-\x1f */
static inline int py_space(unsigned char c) {
    return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
}
static inline int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static inline int is_alnum(unsigned char c) {
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static inline int has_at(const char *s, Py_ssize_t n, Py_ssize_t i, const char *lit,
                         Py_ssize_t ln) {
    return i >= 0 && i <= n - ln && memcmp(s + i, lit, (size_t)ln) == 0;
}
static inline Py_ssize_t find(const char *s, Py_ssize_t n, Py_ssize_t from, const char *lit,
                              Py_ssize_t ln) {
    if (from < 0 || from > n) return -1;
    const char *p = memmem(s + from, (size_t)(n - from), lit, (size_t)ln);
    return p ? p - s : -1;
}
static inline Py_ssize_t find_char(const char *s, Py_ssize_t n, Py_ssize_t from, char c) {
    if (from < 0 || from >= n) return -1;
    const char *p = memchr(s + from, c, (size_t)(n - from));
    return p ? p - s : -1;
}
static inline Py_ssize_t rfind_char(const char *s, Py_ssize_t from, Py_ssize_t to, char c) {
    for (Py_ssize_t i = to - 1; i >= from; i--)
        if (s[i] == c) return i;
    return -1;
}
/* str.count (non-overlapping, left to right) capped at 2: callers only ask "more than one?" */
static inline int count2(const char *s, Py_ssize_t n, const char *lit, Py_ssize_t ln) {
    Py_ssize_t i = find(s, n, 0, lit, ln);
    if (i < 0) return 0;
    return find(s, n, i + ln, lit, ln) < 0 ? 1 : 2;
}
static inline void strip(const char **s, Py_ssize_t *n) {
    while (*n > 0 && py_space((unsigned char)(*s)[0])) (*s)++, (*n)--;
    while (*n > 0 && py_space((unsigned char)(*s)[*n - 1])) (*n)--;
}
static inline int all_digits(const char *s, Py_ssize_t n) {
    if (n == 0) return 0;
    for (Py_ssize_t i = 0; i < n; i++)
        if (!is_digit((unsigned char)s[i])) return 0;
    return 1;
}
static inline long digits_value(const char *s, Py_ssize_t n) { /* n <= 9 */
    long v = 0;
    for (Py_ssize_t i = 0; i < n; i++) v = v * 10 + (s[i] - '0');
    return v;
}
/* `(?:device|user) ` at i: the index after it, -1 if neither */
static inline Py_ssize_t device_or_user(const char *s, Py_ssize_t n, Py_ssize_t i) {
    if (has_at(s, n, i, "device ", 7)) return i + 7;
    if (has_at(s, n, i, "user ", 5)) return i + 5;
    return -1;
}
static inline int eq_upper(const char *s, Py_ssize_t n, const char *upper) {
    /* s.upper() == upper */
    if ((Py_ssize_t)strlen(upper) != n) return 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        char c = s[i];
        if (c >= 'a' && c <= 'z') c = (char)(c - 32);
        if (c != upper[i]) return 0;
    }
    return 1;
}

/* a str for client text: short ones through the shared cache (accounts repeat a lot) */
static inline PyObject *text(const char *s, Py_ssize_t n) { return str_from(s, n); }

/* a str of up to four ASCII pieces (details such as "REGISTER: Failed to authenticate") */
PyObject *text_join(const char *a, Py_ssize_t an, const char *b, Py_ssize_t bn, const char *c,
                    Py_ssize_t cn, const char *d, Py_ssize_t dn);
/* a str for text that seldom repeats (call ids): not worth a cache slot */
static inline PyObject *fresh(const char *s, Py_ssize_t n) {
    return text_join(s, n, "", 0, "", 0, "", 0);
}

/* ---- addresses (grammar_addr.c) ------------------------------------------------------------- */

typedef struct {
    const char *s;
    Py_ssize_t n;
    int set;
} opt_span;

/* addr.parse_hostport (v6_port_last): HP_OK with *ip NEW, *port NEW or NULL (None). */
int parse_hostport(const char *s, Py_ssize_t n, PyObject **ip, PyObject **port);
/* (display, URI user) of a From value (candidate.name_addr). 0: not handled (a backslash). */
int name_addr(const char *s, Py_ssize_t n, opt_span *display, opt_span *user);
/* security.parse_remote: 1 with *ip (NEW), *port (NEW or NULL), *transport (NEW or NULL);
 * 0: not an address; -1: error */
int parse_remote(const char *s, Py_ssize_t n, PyObject **ip, PyObject **port,
                 PyObject **transport);

/* ---- building the candidate (grammar.c) ------------------------------------------------------ */

/* What a grammar found: the Event's fields and the candidate's link data. `held` owns the NEW
 * references the fields point at (a field may also point at a BORROWED GRAMMAR_STR), so every
 * grammar leaves the same two ways: cand_done (emit, then drop them) or cand_fail. */
typedef struct {
    double time;
    int kind, service;
    PyObject *ip, *port, *transport, *account, *target, *user_agent, *call_id, *detail;
    int channel, tampered, followed, link_name, with_tag;
    uint32_t link;
    int nheld;
    PyObject *held[8]; /* at most one per object field above */
} cand_spec;

static inline cand_spec spec(double time, int kind, int service) {
    cand_spec c;
    memset(&c, 0, sizeof c);
    c.time = time;
    c.kind = kind;
    c.service = service;
    c.channel = CH_LOG;
    c.link_name = -1;
    return c;
}
/* keeps a NEW reference (or NULL) in c until cand_done / cand_fail; returns it */
static inline PyObject *keep(cand_spec *c, PyObject *o) {
    if (o != NULL) c->held[c->nheld++] = o;
    return o;
}
static inline void release(cand_spec *c) {
    while (c->nheld > 0) Py_DECREF(c->held[--c->nheld]);
}
/* the way out after a failed Python call (exception set) */
static inline int cand_fail(cand_spec *c) {
    release(c);
    return GRAM_ERROR;
}
/* the Event and the candidate for c, then drops what c keeps: GRAM_OK or GRAM_ERROR */
int cand_done(const fast_prefix *p, PyObject *origin, cand_spec *c, fast_cand *out);

/* an optional span as a str kept in c (NULL when unset): 0, or -1 with an exception set */
static inline int opt_text(cand_spec *c, const opt_span *v, PyObject **field) {
    *field = NULL;
    if (!v->set) return 0;
    *field = keep(c, text(v->s, v->n));
    return *field == NULL ? -1 : 0;
}
/* a From name-addr's parts (name_addr): display name as user_agent, URI user as account */
static inline int cand_from(cand_spec *c, const opt_span *display, const opt_span *user) {
    return opt_text(c, display, &c->user_agent) < 0 || opt_text(c, user, &c->account) < 0 ? -1 : 0;
}

/* a parse_hostport result as a grammar result: HP_NONE -> none_rc */
static inline int hp_rc(int rc, int none_rc) {
    return rc == HP_NONE ? none_rc : rc == HP_FALLBACK ? GRAM_FALLBACK : GRAM_ERROR;
}
/* c.ip and c.port (kept) from parse_hostport(s, n): GRAM_OK, or the grammar's result with
 * nothing kept (HP_NONE -> none_rc) */
static inline int cand_hostport(cand_spec *c, const char *s, Py_ssize_t n, int none_rc) {
    int rc = parse_hostport(s, n, &c->ip, &c->port);
    if (rc != HP_OK) {
        release(c);
        return hp_rc(rc, none_rc);
    }
    keep(c, c->ip);
    keep(c, c->port);
    return GRAM_OK;
}

/* the address-less chan_sip auth failures: the security events that may carry their address */
#define LINK_AUTH_FAILED                                                                        \
    (LINK_BIT(L_InvalidPassword) | LINK_BIT(L_ChallengeResponseFailed) |                       \
     LINK_BIT(L_InvalidAccountID))

/* ---- constant strs (grammar.c) --------------------------------------------------------------- */

/* Details, transports and security event names, built once by grammar_init (module init) so a
 * line does not decode and look them up again. BORROWED, alive for the module's life: a
 * cand_spec field may point at one without keeping it. */
enum {
    GS_UDP, GS_TCP, GS_TLS, GS_WS, GS_WSS, GS_SCTP, /* lower case, TRANSPORTS order */
    GS_REGISTERED, GS_FAKE_AUTH, GS_TIMED_OUT, GS_NO_AORS, GS_ADDED_CONTACT,
    GS_AMI_FAILED, GS_AMI_NO_USER, GS_AMI_LOGGED_ON,
    GS_EVENT,                          /* + a security event's link name (L_InvalidAccountID..) */
    NGS = GS_EVENT + NSECURITY_EVENTS
};
extern PyObject *GRAMMAR_STR[NGS];

/* ---- security events (grammar_security.c) ---------------------------------------------------- */

/* lines.parse_message's SecurityEvent branch (msg starts with "SecurityEvent=") */
int grammar_security(const fast_prefix *p, const char *msg, Py_ssize_t n, PyObject *origin,
                     fast_cand *out);

/* ---- the grammars grammar_parse dispatches to in other files --------------------------------- */

/* a line grammar: GRAM_OK with *out filled, or GRAM_NONE / GRAM_MALFORMED / GRAM_FALLBACK /
 * GRAM_ERROR, as lines.parse_message would decide the message */
typedef int grammar_fn(const fast_prefix *p, const char *msg, Py_ssize_t n, PyObject *origin,
                       fast_cand *out);

/* grammar_iax_ami.c: msg starts with "Host " or "No registration for peer" */
grammar_fn grammar_iax2;
/* grammar_iax_ami.c: parse_ami (a manager log, or "authenticate" / "logged on from" in msg) */
grammar_fn grammar_ami;
/* `\S{1,100}` from i followed by lit: the run's end, -1 if not (also pjproject's address) */
Py_ssize_t token_then(const char *msg, Py_ssize_t n, Py_ssize_t i, const char *lit, Py_ssize_t ln);

/* grammar_rare.c, each for msg starting with its phrase (checked by grammar_parse) */
grammar_fn grammar_fake_auth;     /* "Sending fake auth rejection" */
grammar_fn grammar_mismatch;      /* "username mismatch" */
grammar_fn grammar_bad_request;   /* "No closing bracket…", "From address missing…", "No field…" */
grammar_fn grammar_timeout;       /* "Timeout on " */
grammar_fn grammar_no_aors;       /* "Endpoint '" */
grammar_fn grammar_added_contact; /* "Added contact '" */

#endif
