/* fastlog: a C implementation of LogNormalizer.feed_chunk for `sipguard scan`.
 *
 * The Python normalizer (normalizer.py, prefix.py, lines.py, security.py, linker.py) is the
 * reference: for every input this module must return exactly the events and the stats that
 * the Python one returns (tests/core/test_fastlog_equivalence.py checks it on every sample, on
 * generated logs and on fuzzed lines). Lines the C grammars do not handle natively (other
 * prefixes, non-ASCII, rare forms, anything odd) go back to the Python parser through a callback
 * and their Candidate joins the same C linker, so correctness never depends on the C grammars
 * covering everything: only speed does.
 *
 * Files: module.c (the module, the Normalizer and Linker types, the Python fallback), objects.c
 * (Event/Origin/IPv4Address construction, caches, Candidates to and from Python), scan.c (chunk
 * loop, candidate finder), prefix.c (prefixes, time), grammar*.c (message grammars, addresses),
 * link*.c (dedup and linking: linker.py in C).
 */
#ifndef SIPGUARD_FASTLOG_H
#define SIPGUARD_FASTLOG_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#define FAST_MAX_LINE 8192   /* normalizer.MAX_LINE */
#define FAST_ORIGIN_TEXT 512 /* normalizer.ORIGIN_TEXT */

/* ---- Kind and Service: indices into KIND[] / SERVICE[] (the Python enum members) ---------- */
enum {
    K_WRONG_PASSWORD, K_UNKNOWN_ACCOUNT, K_AUTH_NAME_MISMATCH, K_ACL_DENIED, K_CALL_REJECTED,
    K_REQUEST_NOT_ALLOWED, K_MALFORMED_REQUEST, K_SCANNER_PROBE, K_CHALLENGE_UNANSWERED,
    K_AMI_LOGIN_FAILED, K_LIMIT, K_LOG_TAMPERING, K_SENSOR_DROP, K_TOLL_FRAUD,
    K_CHALLENGE_SENT, K_AUTH_SUCCESS, K_AMI_LOGIN_SUCCESS,
    NKINDS
};
enum { S_CHAN_SIP, S_PJSIP, S_IAX2, S_AMI, S_SECURITY, S_PJPROJECT, S_SENSOR, S_UNKNOWN, NSERVICES };

extern PyObject *KIND[NKINDS];        /* borrowed, alive for the module's life */
extern PyObject *SERVICE[NSERVICES];
int kind_index(PyObject *kind);        /* KIND[] index of an enum member, -1 if none */
int service_index(PyObject *service);

/* ---- Event fields (slots of the frozen dataclass sipguard.core.events.Event) -------------- */
enum {
    F_TIME, F_KIND, F_SERVICE, F_IP, F_PORT, F_TRANSPORT, F_ACCOUNT, F_TARGET, F_USER_AGENT,
    F_CALL_ID, F_DETAIL, F_ORIGIN, F_CALL,
    NFIELDS
};

/* A new Event. Every argument is BORROWED (the event takes its own references); NULL means
 * None, except detail (NULL -> "") and origin (NULL -> NO_ORIGIN). Returns NULL on error. */
PyObject *event_new(double time, int kind, int service, PyObject *ip, PyObject *port,
                    PyObject *transport, PyObject *account, PyObject *target,
                    PyObject *user_agent, PyObject *call_id, PyObject *detail,
                    PyObject *origin);
/* dataclasses.replace(ev) without arguments: a new, independent Event with the same fields.
 * Only a copy returned by event_copy (never a shared event) may then be changed with event_set. */
PyObject *event_copy(PyObject *ev);
void event_set(PyObject *copy, int field, PyObject *value); /* value BORROWED; NULL -> None */
PyObject *event_get(PyObject *ev, int field);               /* BORROWED reference */
double event_time(PyObject *ev);
int event_kind(PyObject *ev);       /* KIND[] index */
int event_service(PyObject *ev);    /* SERVICE[] index */
/* Origin(source, line_no, text): source and text BORROWED. */
PyObject *origin_new(PyObject *source, Py_ssize_t line_no, PyObject *text);

/* ---- addresses ---------------------------------------------------------------------------- */
/* The ipaddress object for text that is exactly an address (addr.parse_ip semantics, cached):
 * NEW reference, Py_None when the text is not an address, NULL on error. */
PyObject *ip_from_text(const char *s, Py_ssize_t n);
/* PyLong for a port, cached for 0..65535: NEW reference. */
PyObject *port_obj(long port);
/* Interned str for short constant-like text (transports, detail words): NEW reference. */
PyObject *str_from(const char *s, Py_ssize_t n);

/* ---- candidates (candidate.Candidate in C) ------------------------------------------------ */
enum { CH_LOG = 0, CH_SECURITY = 1 };
/* Link names: what an address-less line may look for, and what an address line is called.
 * The first 14 are the security event names (security.EVENT_KINDS order). */
enum {
    L_InvalidAccountID, L_ChallengeResponseFailed, L_InvalidPassword, L_FailedACL,
    L_RequestBadFormat, L_RequestNotAllowed, L_RequestNotSupported, L_AuthMethodNotAllowed,
    L_InvalidTransport, L_SessionLimit, L_MemoryLimit, L_LoadAverageLimit, L_ChallengeSent,
    L_SuccessfulAuth, L_Registration, L_Call,
    NLINKS
};
#define LINK_BIT(i) (1u << (i))
extern const char *const LINK_NAMES[NLINKS];
int link_index(const char *s, Py_ssize_t n); /* -1 if not a link name */

typedef struct {
    PyObject *event;  /* OWNED Event */
    PyObject *tag;    /* OWNED str ("C-0000001") or NULL */
    int channel;      /* CH_LOG or CH_SECURITY */
    int tampered;     /* the line carries a second, injected address */
    int followed;     /* address-less: the module logs the same attempt again with an address */
    uint32_t link;    /* address-less: LINK_BIT set of names that may carry its address */
    int link_name;    /* address-bearing: its own link name, -1 for None */
} fast_cand;

void cand_clear(fast_cand *c); /* drops the references, zeroes the struct */
/* objects.c: a Python Candidate as a fast_cand (new references; 0 / -1), and back (debug mode). */
int cand_from_py(PyObject *obj, fast_cand *c);
PyObject *cand_to_py(const fast_cand *c);
/* objects.c: the Event/Origin/Kind/Service/IPv4Address lookups and caches, at module import. */
int objects_init(void);

/* ---- stats (NormalizerStats in C) ---------------------------------------------------------- */
typedef struct {
    long long lines, candidates, events, duplicates, malformed, too_long, binary, tampering,
        unlinked, evicted;
} fast_stats;

/* ---- the linker (link.c): linker.Linker in C ------------------------------------------------ */
typedef struct linker linker;
linker *linker_new(fast_stats *st, double link_window, double challenge_window);
void linker_free(linker *lk);
/* Linker.process: takes over c's references (c is cleared); appends Events to out (a list).
 * 0 on success, -1 with a Python exception set. */
int linker_process(linker *lk, fast_cand *c, PyObject *out);
/* Linker.release: now is ignored when all != 0 (release(None)). */
int linker_release(linker *lk, double now, int all, PyObject *out);
int linker_waiting(const linker *lk);

/* ---- one normalizer (module.c owns it; scan.c and grammar.c read it) ----------------------- */
typedef struct {
    fast_stats st;
    linker *lk;
    double last_time;   /* LogNormalizer._last_time */
    PyObject *source;   /* BORROWED during feed_chunk: the file name (str) */
    PyObject *fallback; /* Python: (raw: bytes, source, line_no, last_time) -> None | (cand, time) */
    PyObject *out;      /* BORROWED during feed_chunk: the list events are appended to */
    void *scan_state;   /* scan.c's own state (date cache); NULL until scan.c allocates it */
    int native;         /* 0: every candidate line goes to ctx_fallback (a time zone is set) */
} fast_ctx;

/* module.c: LogNormalizer._run: the linker, then a release when anything waits; counts events
 * and tampering. Takes over c's references. 0 / -1. */
int ctx_run(fast_ctx *ctx, fast_cand *c);
/* module.c: a candidate line the C grammars do not handle: the Python parser decides (it counts
 * nothing itself; this counts candidates/malformed and runs ctx_run). raw is the line as it would
 * be passed to decode_line in Python (truncated at MAX_LINE, trailing \r removed). 0 / -1. */
int ctx_fallback(fast_ctx *ctx, const char *raw, Py_ssize_t n, Py_ssize_t line_no);

/* ---- scan.c ---------------------------------------------------------------------------------- */
/* LogNormalizer.feed_chunk(data, ctx->source, first_line_no): counts lines, binary, too_long;
 * finds candidate lines; parses the native ones (counting candidates/malformed as _parse does)
 * and calls ctx_run, or ctx_fallback for the others. 0 / -1. */
int scan_chunk(fast_ctx *ctx, const char *data, Py_ssize_t n, Py_ssize_t first_line_no);
void scan_state_free(void *state);

/* ---- grammar.c ------------------------------------------------------------------------------- */
typedef struct {
    double time;                            /* the prefix's time (always present natively) */
    const char *tag; Py_ssize_t tag_len;    /* "C-00000001" or NULL */
    const char *file; Py_ssize_t file_len;  /* "chan_sip.c", "res_pjsip/pjsip_distributor.c", "" */
    const char *level; Py_ssize_t level_len;
} fast_prefix;

enum {
    GRAM_OK = 0,        /* *out holds the candidate */
    GRAM_NONE = 1,      /* not an event, not malformed (parse_message returned (None, False)) */
    GRAM_MALFORMED = 2, /* (None, True) */
    GRAM_FALLBACK = 3,  /* not handled natively: the caller uses ctx_fallback for the line */
    GRAM_ERROR = -1     /* Python exception set */
};
/* lines.parse_message for one message (prefix removed, str.strip()ped; ASCII only, no ANSI,
 * no NUL). origin BORROWED. */
int grammar_parse(fast_ctx *ctx, const fast_prefix *p, const char *msg, Py_ssize_t n,
                  PyObject *origin, fast_cand *out);
/* module init: builds the grammars' constant strs once. 0 / -1 with an exception set. */
int grammar_init(void);

/* ---- prefix.c -------------------------------------------------------------------------------- */
/* Asterisk's own `[YYYY-MM-DD HH:MM:SS[.f]] LEVEL[lwp][C-tag]: file: ` prefix, as
 * prefix.split_prefix takes it (digit date form only), and its time (TimeParser.asterisk, tz None).
 * scan.c keeps one prefix_dates per normalizer: the last date and its midnight, since a log's
 * lines share a date for hours. Zeroed memory is an empty cache. */
typedef struct {
    char key[10]; /* `YYYY-MM-DD` */
    int valid;
    long long midnight;
} prefix_dates;

enum {
    PFX_OK,    /* *p and *msg_at are set (the message at t + *msg_at is not yet stripped) */
    PFX_EXT,   /* the "Ext. " rule: split_prefix returns None (a malformed candidate) */
    PFX_UNSURE /* not handled natively: the line goes to ctx_fallback */
};
/* t: the line (ASCII, n bytes, starting with '['). */
int prefix_parse(prefix_dates *dates, const char *t, Py_ssize_t n, fast_prefix *p,
                 Py_ssize_t *msg_at);

#endif
