/* module.c: the _fastlog module: the Normalizer type (LogNormalizer in C: scan.c, grammar*.c and
 * link*.c behind it), its run and Python fallback, and the Linker type the link tests drive.
 * The objects it makes and reads are objects.c's (see fast.h for the contract between files).
 */
#include "fast.h"

/* ---- the normalizer's run and fallback ---------------------------------------------------- */
static void count_out(fast_stats *st, PyObject *out, Py_ssize_t from) {
    Py_ssize_t n = PyList_GET_SIZE(out);
    st->events += n - from;
    for (Py_ssize_t i = from; i < n; i++)
        if (event_kind(PyList_GET_ITEM(out, i)) == K_LOG_TAMPERING) st->tampering++;
}

int ctx_run(fast_ctx *ctx, fast_cand *c) {
    if (ctx->lk == NULL) { /* debug: the candidates themselves */
        PyObject *pc = cand_to_py(c);
        cand_clear(c);
        if (pc == NULL) return -1;
        int rc = PyList_Append(ctx->out, pc);
        Py_DECREF(pc);
        return rc;
    }
    double now = event_time(c->event);
    Py_ssize_t from = PyList_GET_SIZE(ctx->out);
    if (linker_process(ctx->lk, c, ctx->out) < 0) return -1;
    if (linker_waiting(ctx->lk) && linker_release(ctx->lk, now, 0, ctx->out) < 0) return -1;
    count_out(&ctx->st, ctx->out, from);
    return 0;
}

int ctx_fallback(fast_ctx *ctx, const char *raw, Py_ssize_t n, Py_ssize_t line_no) {
    ctx->st.candidates++;
    PyObject *r = PyObject_CallFunction(ctx->fallback, "y#Ond", raw, n, ctx->source, line_no,
                                        ctx->last_time);
    if (r == NULL) return -1;
    if (!PyTuple_Check(r) || PyTuple_GET_SIZE(r) != 3) {
        Py_DECREF(r);
        PyErr_SetString(PyExc_TypeError, "fallback must return (candidate, malformed, time)");
        return -1;
    }
    PyObject *cand = PyTuple_GET_ITEM(r, 0);
    PyObject *t = PyTuple_GET_ITEM(r, 2);
    int rc = 0;
    if (cand == Py_None) {
        int bad = PyObject_IsTrue(PyTuple_GET_ITEM(r, 1));
        if (bad < 0) rc = -1;
        else if (bad) ctx->st.malformed++;
        Py_DECREF(r);
        return rc;
    }
    if (t != Py_None) {
        double tv = PyFloat_AsDouble(t);
        if (tv == -1.0 && PyErr_Occurred()) {
            Py_DECREF(r);
            return -1;
        }
        ctx->last_time = tv;
    }
    fast_cand c;
    rc = cand_from_py(cand, &c);
    Py_DECREF(r);
    if (rc < 0) return -1;
    return ctx_run(ctx, &c);
}

/* ---- the Normalizer type ------------------------------------------------------------------- */
typedef struct {
    PyObject_HEAD
    fast_ctx ctx;
} NormObject;

static int Norm_init(NormObject *self, PyObject *args, PyObject *kw) {
    static char *names[] = {"fallback", "link_window", "challenge_window", "link", "native", NULL};
    PyObject *fallback;
    double window = 2.0, challenge = 5.0;
    int link = 1, native = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|ddpp", names, &fallback, &window, &challenge,
                                     &link, &native))
        return -1;
    if (self->ctx.lk != NULL || self->ctx.fallback != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Normalizer already initialised");
        return -1;
    }
    Py_INCREF(fallback);
    self->ctx.fallback = fallback;
    self->ctx.native = native;
    self->ctx.last_time = 0.0;
    if (link) {
        self->ctx.lk = linker_new(&self->ctx.st, window, challenge);
        if (self->ctx.lk == NULL) {
            if (!PyErr_Occurred()) PyErr_NoMemory();
            return -1;
        }
    }
    return 0;
}

static int Norm_traverse(NormObject *self, visitproc visit, void *arg) {
    Py_VISIT(self->ctx.fallback);
    return 0;
}

static int Norm_clear(NormObject *self) {
    Py_CLEAR(self->ctx.fallback);
    return 0;
}

static void Norm_dealloc(NormObject *self) {
    PyObject_GC_UnTrack(self);
    Norm_clear(self);
    if (self->ctx.lk) linker_free(self->ctx.lk);
    if (self->ctx.scan_state) scan_state_free(self->ctx.scan_state);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Norm_feed_chunk(NormObject *self, PyObject *args) {
    Py_buffer view;
    PyObject *source;
    Py_ssize_t first;
    if (!PyArg_ParseTuple(args, "y*Un", &view, &source, &first)) return NULL;
    PyObject *out = PyList_New(0);
    if (out == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    self->ctx.source = source;
    self->ctx.out = out;
    int rc = scan_chunk(&self->ctx, (const char *)view.buf, view.len, first);
    self->ctx.source = NULL;
    self->ctx.out = NULL;
    PyBuffer_Release(&view);
    if (rc < 0) {
        Py_DECREF(out);
        return NULL;
    }
    return out;
}

static PyObject *Norm_accept(NormObject *self, PyObject *cand) {
    fast_cand c;
    if (cand_from_py(cand, &c) < 0) return NULL;
    PyObject *out = PyList_New(0);
    if (out == NULL) {
        cand_clear(&c);
        return NULL;
    }
    self->ctx.out = out;
    int rc = ctx_run(&self->ctx, &c);
    self->ctx.out = NULL;
    if (rc < 0) {
        Py_DECREF(out);
        return NULL;
    }
    return out;
}

static int release_into(linker *lk, fast_stats *st, PyObject *now, PyObject *out) {
    if (lk == NULL) return 0;
    int all = now == Py_None;
    double t = all ? 0.0 : PyFloat_AsDouble(now);
    if (!all && t == -1.0 && PyErr_Occurred()) return -1;
    if (linker_release(lk, t, all, out) < 0) return -1;
    count_out(st, out, 0);
    return 0;
}

static PyObject *Norm_release(NormObject *self, PyObject *now) {
    PyObject *out = PyList_New(0);
    if (out == NULL) return NULL;
    if (release_into(self->ctx.lk, &self->ctx.st, now, out) < 0) {
        Py_DECREF(out);
        return NULL;
    }
    return out;
}

static PyObject *stats_tuple(const fast_stats *s) {
    return Py_BuildValue("(LLLLLLLLLL)", s->lines, s->candidates, s->events, s->duplicates,
                         s->malformed, s->too_long, s->binary, s->tampering, s->unlinked,
                         s->evicted);
}

static PyObject *Norm_stats(NormObject *self, PyObject *unused) {
    (void)unused;
    return stats_tuple(&self->ctx.st);
}

static PyObject *Norm_get_waiting(NormObject *self, void *closure) {
    (void)closure;
    return PyBool_FromLong(self->ctx.lk != NULL && linker_waiting(self->ctx.lk));
}

static PyObject *Norm_get_last_time(NormObject *self, void *closure) {
    (void)closure;
    return PyFloat_FromDouble(self->ctx.last_time);
}

static PyMethodDef Norm_methods[] = {
    {"feed_chunk", (PyCFunction)Norm_feed_chunk, METH_VARARGS,
     "feed_chunk(data, source, first_line_no) -> list of Events (Candidates when link=False)"},
    {"accept", (PyCFunction)Norm_accept, METH_O, "accept(candidate) -> list of Events"},
    {"release", (PyCFunction)Norm_release, METH_O, "release(now or None) -> list of Events"},
    {"stats", (PyCFunction)Norm_stats, METH_NOARGS, "the counters, in fast_stats order"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Norm_getset[] = {
    {"waiting", (getter)Norm_get_waiting, NULL, "anything held for linking or an answer", NULL},
    {"last_time", (getter)Norm_get_last_time, NULL, "time of the last timed candidate", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject NormType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "sipguard.core.asterisk._fastlog.Normalizer",
    .tp_basicsize = sizeof(NormObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Norm_init,
    .tp_dealloc = (destructor)Norm_dealloc,
    .tp_traverse = (traverseproc)Norm_traverse,
    .tp_clear = (inquiry)Norm_clear,
    .tp_methods = Norm_methods,
    .tp_getset = Norm_getset,
    .tp_doc = "LogNormalizer.feed_chunk in C (see fast.py)",
};

/* ---- the Linker type (tests: link.c against linker.Linker) ---------------------------------- */
typedef struct {
    PyObject_HEAD
    fast_stats st;
    linker *lk;
} LinkObject;

static int Link_init(LinkObject *self, PyObject *args, PyObject *kw) {
    static char *names[] = {"link_window", "challenge_window", NULL};
    double window = 2.0, challenge = 5.0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|dd", names, &window, &challenge)) return -1;
    if (self->lk != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Linker already initialised");
        return -1;
    }
    self->lk = linker_new(&self->st, window, challenge);
    if (self->lk == NULL) {
        if (!PyErr_Occurred()) PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static void Link_dealloc(LinkObject *self) {
    if (self->lk) linker_free(self->lk);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Link_process(LinkObject *self, PyObject *cand) {
    if (self->lk == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Linker not initialised");
        return NULL;
    }
    fast_cand c;
    if (cand_from_py(cand, &c) < 0) return NULL;
    PyObject *out = PyList_New(0);
    if (out == NULL) {
        cand_clear(&c);
        return NULL;
    }
    if (linker_process(self->lk, &c, out) < 0) {
        Py_DECREF(out);
        return NULL;
    }
    return out;
}

static PyObject *Link_release(LinkObject *self, PyObject *now) {
    PyObject *out = PyList_New(0);
    if (out == NULL) return NULL;
    int all = now == Py_None;
    double t = all ? 0.0 : PyFloat_AsDouble(now);
    if ((!all && t == -1.0 && PyErr_Occurred()) || self->lk == NULL ||
        linker_release(self->lk, t, all, out) < 0) {
        if (self->lk == NULL && !PyErr_Occurred())
            PyErr_SetString(PyExc_RuntimeError, "Linker not initialised");
        Py_DECREF(out);
        return NULL;
    }
    return out;
}

static PyObject *Link_stats(LinkObject *self, PyObject *unused) {
    (void)unused;
    return stats_tuple(&self->st);
}

static PyObject *Link_get_waiting(LinkObject *self, void *closure) {
    (void)closure;
    return PyBool_FromLong(self->lk != NULL && linker_waiting(self->lk));
}

static PyMethodDef Link_methods[] = {
    {"process", (PyCFunction)Link_process, METH_O, "Linker.process(candidate) -> list"},
    {"release", (PyCFunction)Link_release, METH_O, "Linker.release(now or None) -> list"},
    {"stats", (PyCFunction)Link_stats, METH_NOARGS, "the counters, in fast_stats order"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Link_getset[] = {
    {"waiting", (getter)Link_get_waiting, NULL, "Linker.waiting", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject LinkType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "sipguard.core.asterisk._fastlog.Linker",
    .tp_basicsize = sizeof(LinkObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Link_init,
    .tp_dealloc = (destructor)Link_dealloc,
    .tp_methods = Link_methods,
    .tp_getset = Link_getset,
    .tp_doc = "linker.Linker in C, for tests",
};

static struct PyModuleDef fastlog_module = {
    PyModuleDef_HEAD_INIT, "_fastlog",
    "LogNormalizer in C for sipguard scan (the Python normalizer is the reference)", -1, NULL,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fastlog(void) {
    if (objects_init() < 0) return NULL;
    if (PyType_Ready(&NormType) < 0 || PyType_Ready(&LinkType) < 0) return NULL;
    PyObject *m = PyModule_Create(&fastlog_module);
    if (m == NULL) return NULL;
    Py_INCREF(&NormType);
    Py_INCREF(&LinkType);
    if (PyModule_AddObject(m, "Normalizer", (PyObject *)&NormType) < 0 ||
        PyModule_AddObject(m, "Linker", (PyObject *)&LinkType) < 0 ||
        PyModule_AddIntConstant(m, "MAX_LINE", FAST_MAX_LINE) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
