/* objects.c: the Python objects the C normalizer makes and reads — Event and Origin built by
 * writing the slots of the frozen dataclasses (their generated __init__ goes through
 * object.__setattr__ once per field, ~2 us an event: more than the whole C parse), IPv4
 * addresses built the same way, the caches, and Candidates to and from Python.
 */
#include "fast.h"
#include <structmember.h>

PyObject *KIND[NKINDS];
PyObject *SERVICE[NSERVICES];

const char *const LINK_NAMES[NLINKS] = {
    "InvalidAccountID", "ChallengeResponseFailed", "InvalidPassword", "FailedACL",
    "RequestBadFormat", "RequestNotAllowed", "RequestNotSupported", "AuthMethodNotAllowed",
    "InvalidTransport", "SessionLimit", "MemoryLimit", "LoadAverageLimit", "ChallengeSent",
    "SuccessfulAuth", "Registration", "Call",
};

static const char *const KIND_ATTRS[NKINDS] = {
    "WRONG_PASSWORD", "UNKNOWN_ACCOUNT", "AUTH_NAME_MISMATCH", "ACL_DENIED", "CALL_REJECTED",
    "REQUEST_NOT_ALLOWED", "MALFORMED_REQUEST", "SCANNER_PROBE", "CHALLENGE_UNANSWERED",
    "AMI_LOGIN_FAILED", "LIMIT", "LOG_TAMPERING", "SENSOR_DROP", "TOLL_FRAUD",
    "CHALLENGE_SENT", "AUTH_SUCCESS", "AMI_LOGIN_SUCCESS",
};
static const char *const SERVICE_ATTRS[NSERVICES] = {
    "CHAN_SIP", "PJSIP", "IAX2", "AMI", "SECURITY", "PJPROJECT", "SENSOR", "UNKNOWN",
};
static const char *const EVENT_FIELDS[NFIELDS] = {
    "time", "kind", "service", "ip", "port", "transport", "account", "target", "user_agent",
    "call_id", "detail", "origin", "call",
};
static const char *const ORIGIN_FIELDS[3] = {"source", "line_no", "text"};

static PyTypeObject *EventType, *OriginType, *IPv4Type;
static Py_ssize_t IP4_OFF; /* IPv4Address's `_ip` slot */
static PyObject *CandidateType, *NO_ORIGIN, *EMPTY, *parse_ip_fn;
static Py_ssize_t EV_OFF[NFIELDS], OR_OFF[3];
static PyObject *ip_cache, *str_cache;
static PyObject *PORTS[65536];
static PyObject *CHANNEL_STR[2], *LINK_STR[NLINKS];

#define IP_CACHE_MAX 65536
#define STR_CACHE_MAX 65536

#define SLOT(obj, off) (*(PyObject **)((char *)(obj) + (off)))

/* ---- events ----------------------------------------------------------------------------- */
int kind_index(PyObject *kind) {
    for (int i = 0; i < NKINDS; i++)
        if (KIND[i] == kind) return i;
    return -1;
}

int service_index(PyObject *service) {
    for (int i = 0; i < NSERVICES; i++)
        if (SERVICE[i] == service) return i;
    return -1;
}

static inline void set_slot(PyObject *obj, Py_ssize_t off, PyObject *value) {
    PyObject *v = value ? value : Py_None;
    Py_INCREF(v);
    PyObject *old = SLOT(obj, off);
    SLOT(obj, off) = v;
    Py_XDECREF(old);
}

PyObject *event_new(double time, int kind, int service, PyObject *ip, PyObject *port,
                    PyObject *transport, PyObject *account, PyObject *target,
                    PyObject *user_agent, PyObject *call_id, PyObject *detail,
                    PyObject *origin) {
    PyObject *t = PyFloat_FromDouble(time);
    if (t == NULL) return NULL;
    PyObject *ev = EventType->tp_alloc(EventType, 0);
    if (ev == NULL) {
        Py_DECREF(t);
        return NULL;
    }
    SLOT(ev, EV_OFF[F_TIME]) = t;
    set_slot(ev, EV_OFF[F_KIND], KIND[kind]);
    set_slot(ev, EV_OFF[F_SERVICE], SERVICE[service]);
    set_slot(ev, EV_OFF[F_IP], ip);
    set_slot(ev, EV_OFF[F_PORT], port);
    set_slot(ev, EV_OFF[F_TRANSPORT], transport);
    set_slot(ev, EV_OFF[F_ACCOUNT], account);
    set_slot(ev, EV_OFF[F_TARGET], target);
    set_slot(ev, EV_OFF[F_USER_AGENT], user_agent);
    set_slot(ev, EV_OFF[F_CALL_ID], call_id);
    set_slot(ev, EV_OFF[F_DETAIL], detail ? detail : EMPTY);
    set_slot(ev, EV_OFF[F_ORIGIN], origin ? origin : NO_ORIGIN);
    set_slot(ev, EV_OFF[F_CALL], NULL); /* None: log lines are never call events */
    return ev;
}

PyObject *event_copy(PyObject *ev) {
    PyObject *copy = EventType->tp_alloc(EventType, 0);
    if (copy == NULL) return NULL;
    for (int f = 0; f < NFIELDS; f++) set_slot(copy, EV_OFF[f], SLOT(ev, EV_OFF[f]));
    return copy;
}

void event_set(PyObject *copy, int field, PyObject *value) { set_slot(copy, EV_OFF[field], value); }

PyObject *event_get(PyObject *ev, int field) { return SLOT(ev, EV_OFF[field]); }

double event_time(PyObject *ev) {
    PyObject *t = SLOT(ev, EV_OFF[F_TIME]);
    return PyFloat_CheckExact(t) ? PyFloat_AS_DOUBLE(t) : PyFloat_AsDouble(t);
}

int event_kind(PyObject *ev) { return kind_index(SLOT(ev, EV_OFF[F_KIND])); }

int event_service(PyObject *ev) { return service_index(SLOT(ev, EV_OFF[F_SERVICE])); }

PyObject *origin_new(PyObject *source, Py_ssize_t line_no, PyObject *text) {
    PyObject *n = PyLong_FromSsize_t(line_no);
    if (n == NULL) return NULL;
    PyObject *o = OriginType->tp_alloc(OriginType, 0);
    if (o == NULL) {
        Py_DECREF(n);
        return NULL;
    }
    set_slot(o, OR_OFF[0], source);
    SLOT(o, OR_OFF[1]) = n;
    set_slot(o, OR_OFF[2], text);
    return o;
}

/* ---- caches ------------------------------------------------------------------------------ */
/* ipaddress.IPv4Address(text) for text of digits and dots: its integer, or -1 when Python would
 * refuse it (4 octets of 1-3 ASCII digits, no leading zero, each <= 255: _BaseV4._parse_octet).
 * Text with anything else is -2: it may be IPv6, which stays with Python. */
static int64_t v4_value(const char *s, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || s[i] == '.')) return -2;
    int64_t value = 0;
    int octets = 0;
    Py_ssize_t i = 0;
    while (1) {
        Py_ssize_t start = i;
        int octet = 0;
        while (i < n && s[i] != '.') { /* no more than 4 digits are read: no overflow */
            if (i - start < 4) octet = octet * 10 + (s[i] - '0');
            i++;
        }
        Py_ssize_t len = i - start;
        if (len == 0 || len > 3 || (len > 1 && s[start] == '0') || octet > 255) return -1;
        value = (value << 8) | octet;
        if (++octets > 4) return -1;
        if (i == n) break;
        i++; /* the dot */
    }
    return octets == 4 ? value : -1;
}

/* The IPv4Address, built as its constructor would from an int: the slot `_ip` set, no Python
 * code run. A scan of tens of thousands of sources spent ~6 us an address in the constructor. */
static PyObject *v4_address(int64_t value) {
    PyObject *v = PyLong_FromLongLong(value);
    if (v == NULL) return NULL;
    PyObject *ip = IPv4Type->tp_alloc(IPv4Type, 0);
    if (ip == NULL) {
        Py_DECREF(v);
        return NULL;
    }
    SLOT(ip, IP4_OFF) = v;
    return ip;
}

PyObject *ip_from_text(const char *s, Py_ssize_t n) {
    PyObject *key = PyUnicode_DecodeLatin1(s, n, NULL);
    if (key == NULL) return NULL;
    PyObject *ip = PyDict_GetItemWithError(ip_cache, key);
    if (ip != NULL) {
        Py_DECREF(key);
        Py_INCREF(ip);
        return ip;
    }
    if (PyErr_Occurred()) {
        Py_DECREF(key);
        return NULL;
    }
    int64_t v4 = n > 0 && n <= 80 ? v4_value(s, n) : -2;
    if (v4 >= 0) ip = v4_address(v4);
    else if (v4 == -1) ip = Py_NewRef(Py_None);
    else ip = PyObject_CallOneArg(parse_ip_fn, key);
    if (ip == NULL) {
        Py_DECREF(key);
        return NULL;
    }
    if (PyDict_GET_SIZE(ip_cache) >= IP_CACHE_MAX) PyDict_Clear(ip_cache);
    int rc = PyDict_SetItem(ip_cache, key, ip);
    Py_DECREF(key);
    if (rc < 0) {
        Py_DECREF(ip);
        return NULL;
    }
    return ip;
}

PyObject *port_obj(long port) {
    if (port < 0 || port > 65535) return PyLong_FromLong(port);
    if (PORTS[port] == NULL) {
        PORTS[port] = PyLong_FromLong(port);
        if (PORTS[port] == NULL) return NULL;
    }
    Py_INCREF(PORTS[port]);
    return PORTS[port];
}

PyObject *str_from(const char *s, Py_ssize_t n) {
    PyObject *v = PyUnicode_DecodeLatin1(s, n, NULL);
    if (v == NULL || n > 64) return v;
    PyObject *shared = PyDict_GetItemWithError(str_cache, v);
    if (shared != NULL) {
        Py_DECREF(v);
        Py_INCREF(shared);
        return shared;
    }
    if (PyErr_Occurred()) {
        Py_DECREF(v);
        return NULL;
    }
    if (PyDict_GET_SIZE(str_cache) >= STR_CACHE_MAX) PyDict_Clear(str_cache);
    if (PyDict_SetItem(str_cache, v, v) < 0) {
        Py_DECREF(v);
        return NULL;
    }
    return v;
}

int link_index(const char *s, Py_ssize_t n) {
    for (int i = 0; i < NLINKS; i++)
        if ((Py_ssize_t)strlen(LINK_NAMES[i]) == n && memcmp(LINK_NAMES[i], s, (size_t)n) == 0)
            return i;
    return -1;
}

void cand_clear(fast_cand *c) {
    Py_CLEAR(c->event);
    Py_CLEAR(c->tag);
    memset(c, 0, sizeof *c);
    c->link_name = -1;
}

/* ---- candidates between Python and C ------------------------------------------------------ */
static int get_bool(PyObject *obj, const char *name, int *out) {
    PyObject *v = PyObject_GetAttrString(obj, name);
    if (v == NULL) return -1;
    int r = PyObject_IsTrue(v);
    Py_DECREF(v);
    if (r < 0) return -1;
    *out = r;
    return 0;
}

static int link_from_name(PyObject *name) {
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(name, &n);
    if (s == NULL) return -2;
    return link_index(s, n);
}

/* A Python Candidate as a fast_cand (new references). 0 / -1. */
int cand_from_py(PyObject *obj, fast_cand *c) {
    memset(c, 0, sizeof *c);
    c->link_name = -1;
    PyObject *v = NULL;
    if ((c->event = PyObject_GetAttrString(obj, "event")) == NULL) goto fail;
    if (!PyObject_TypeCheck(c->event, EventType)) {
        PyErr_SetString(PyExc_TypeError, "Candidate.event is not an Event");
        goto fail;
    }
    if ((v = PyObject_GetAttrString(obj, "channel")) == NULL) goto fail;
    c->channel = PyUnicode_Check(v) && PyUnicode_CompareWithASCIIString(v, "security") == 0
                     ? CH_SECURITY
                     : CH_LOG;
    Py_CLEAR(v);
    if ((v = PyObject_GetAttrString(obj, "tag")) == NULL) goto fail;
    if (v != Py_None) {
        c->tag = v;
        v = NULL;
    }
    Py_CLEAR(v);
    if (get_bool(obj, "tampered", &c->tampered) < 0) goto fail;
    if (get_bool(obj, "followed", &c->followed) < 0) goto fail;
    if ((v = PyObject_GetAttrString(obj, "link")) == NULL) goto fail;
    PyObject *it = PyObject_GetIter(v);
    if (it == NULL) goto fail;
    PyObject *name;
    while ((name = PyIter_Next(it)) != NULL) {
        int i = link_from_name(name);
        Py_DECREF(name);
        if (i == -2) {
            Py_DECREF(it);
            goto fail;
        }
        if (i >= 0) c->link |= LINK_BIT(i);
    }
    Py_DECREF(it);
    if (PyErr_Occurred()) goto fail;
    Py_CLEAR(v);
    if ((v = PyObject_GetAttrString(obj, "link_name")) == NULL) goto fail;
    if (v != Py_None) {
        int i = link_from_name(v);
        if (i == -2) goto fail;
        c->link_name = i;
    }
    Py_CLEAR(v);
    return 0;
fail:
    Py_XDECREF(v);
    cand_clear(c);
    return -1;
}

/* A fast_cand as a Python Candidate (debug mode link=False). New reference. */
PyObject *cand_to_py(const fast_cand *c) {
    PyObject *links = PyFrozenSet_New(NULL);
    if (links == NULL) return NULL;
    for (int i = 0; i < NLINKS; i++)
        if ((c->link & LINK_BIT(i)) && PySet_Add(links, LINK_STR[i]) < 0) {
            Py_DECREF(links);
            return NULL;
        }
    PyObject *name = c->link_name >= 0 && c->link_name < NLINKS ? LINK_STR[c->link_name] : Py_None;
    PyObject *r = PyObject_CallFunction(CandidateType, "OOOOOOO", c->event,
                                        CHANNEL_STR[c->channel ? 1 : 0],
                                        c->tag ? c->tag : Py_None,
                                        c->tampered ? Py_True : Py_False, links, name,
                                        c->followed ? Py_True : Py_False);
    Py_DECREF(links);
    return r;
}

/* ---- module init ----------------------------------------------------------------------------- */
static int slot_offsets(PyTypeObject *type, const char *const *names, int n, Py_ssize_t *off) {
    for (int i = 0; i < n; i++) {
        PyObject *d = PyObject_GetAttrString((PyObject *)type, names[i]);
        if (d == NULL) return -1;
        if (!Py_IS_TYPE(d, &PyMemberDescr_Type) ||
            ((PyMemberDescrObject *)d)->d_member->type != T_OBJECT_EX) {
            Py_DECREF(d);
            PyErr_Format(PyExc_TypeError, "%s.%s is not a slot", type->tp_name, names[i]);
            return -1;
        }
        off[i] = ((PyMemberDescrObject *)d)->d_member->offset;
        Py_DECREF(d);
    }
    return 0;
}

static PyObject *attr_of(const char *module, const char *name) {
    PyObject *m = PyImport_ImportModule(module);
    if (m == NULL) return NULL;
    PyObject *v = PyObject_GetAttrString(m, name);
    Py_DECREF(m);
    return v;
}

int objects_init(void) {
    if ((EventType = (PyTypeObject *)attr_of("sipguard.core.events", "Event")) == NULL) return -1;
    if ((OriginType = (PyTypeObject *)attr_of("sipguard.core.events", "Origin")) == NULL) return -1;
    if ((NO_ORIGIN = attr_of("sipguard.core.events", "NO_ORIGIN")) == NULL) return -1;
    if (!PyType_Check(EventType) || !PyType_Check(OriginType)) {
        PyErr_SetString(PyExc_TypeError, "Event and Origin must be classes");
        return -1;
    }
    if (slot_offsets(EventType, EVENT_FIELDS, NFIELDS, EV_OFF) < 0) return -1;
    if (slot_offsets(OriginType, ORIGIN_FIELDS, 3, OR_OFF) < 0) return -1;
    PyObject *kind = attr_of("sipguard.core.events", "Kind");
    PyObject *service = attr_of("sipguard.core.events", "Service");
    if (kind == NULL || service == NULL) return -1;
    for (int i = 0; i < NKINDS; i++)
        if ((KIND[i] = PyObject_GetAttrString(kind, KIND_ATTRS[i])) == NULL) return -1;
    for (int i = 0; i < NSERVICES; i++)
        if ((SERVICE[i] = PyObject_GetAttrString(service, SERVICE_ATTRS[i])) == NULL) return -1;
    Py_DECREF(kind);
    Py_DECREF(service);
    if ((CandidateType = attr_of("sipguard.core.asterisk.candidate", "Candidate")) == NULL) return -1;
    if ((parse_ip_fn = attr_of("sipguard.core.asterisk.addr", "parse_ip")) == NULL) return -1;
    if ((IPv4Type = (PyTypeObject *)attr_of("ipaddress", "IPv4Address")) == NULL) return -1;
    static const char *const ip_slot[1] = {"_ip"};
    if (!PyType_Check(IPv4Type) || slot_offsets(IPv4Type, ip_slot, 1, &IP4_OFF) < 0) return -1;
    if ((EMPTY = PyUnicode_FromString("")) == NULL) return -1;
    if ((ip_cache = PyDict_New()) == NULL || (str_cache = PyDict_New()) == NULL) return -1;
    if (grammar_init() < 0) return -1;
    if ((CHANNEL_STR[0] = PyUnicode_InternFromString("log")) == NULL) return -1;
    if ((CHANNEL_STR[1] = PyUnicode_InternFromString("security")) == NULL) return -1;
    for (int i = 0; i < NLINKS; i++)
        if ((LINK_STR[i] = PyUnicode_InternFromString(LINK_NAMES[i])) == NULL) return -1;
    return 0;
}
