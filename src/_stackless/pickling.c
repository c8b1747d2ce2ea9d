/* Started tasklets as pickle data: the frames part of a tasklet's state (spec section 8).
 *
 * Owns: the "restored frames" object an unpickled tasklet runs instead of a function (the
 * driver that resumes its frames innermost first), and the conversion between a suspended
 * tasklet's frames and their pickled form: a tuple (cache tag, record, ...), outermost
 * frame first, each record (function, code or None, resume offset, locals, stack,
 * handled exception). What a record may hold is checked by stackless/_pickling.py (which
 * knows the bytecode); every interpreter structure is reached through pystate.c. It must
 * not switch tasklets or touch run and channel queues.
 */
#include "pickling.h"

#include "module.h"
#include "pystate.h"

/* stackless._pickling, loaded on first use (it imports dis, which is slow to import) */
static PyObject *helpers, *null_marker, *tagged_int;

static int
load_helpers(void)
{
    if (helpers != NULL) {
        return 0;
    }
    PyObject *m = PyImport_ImportModule("stackless._pickling");
    if (m == NULL) {
        return -1;
    }
    null_marker = PyObject_GetAttrString(m, "NULL");
    tagged_int = PyObject_GetAttrString(m, "TaggedInt");
    if (null_marker == NULL || tagged_int == NULL) {
        Py_CLEAR(null_marker);
        Py_CLEAR(tagged_int);
        Py_DECREF(m);
        return -1;
    }
    helpers = m;
    return 0;
}

/* ---- the restored frames --------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *frames; /* the pickled frames tuple, to pickle again before it runs */
    PyObject *shells; /* list, outermost first, of (kind, object, FOR_ITER offset or 0);
                         None once run */
    int started;
} SlRestored;

static PyTypeObject *restored_type;

int
sl_restored_check(PyObject *o)
{
    return restored_type != NULL && Py_IS_TYPE(o, restored_type);
}

PyObject *
sl_restored_frames(PyObject *o)
{
    return Py_NewRef(((SlRestored *)o)->frames);
}

/* One restored frame: a shell; a generator (a for loop's iterator, running when it was
   pickled); or the function of a frame that had C state. A shell whose frame iterated
   over the generator inside it knows where its FOR_ITER is, to run it again once that
   generator is exhausted. */
enum { ITEM_SHELL, ITEM_GENERATOR, ITEM_INVALID, ITEM_INIT };

static PyObject *
invalid_frame_error(PyObject *func)
{
    PyObject *name =
        PyUnicode_Check(func) ? Py_NewRef(func) : PyObject_GetAttrString(func, "__name__");
    PyErr_Clear();
    PyErr_Format(PyExc_RuntimeError,
                 "cannot execute invalid frame with '%S': frame had a C state that can't be "
                 "restored.",
                 name ? name : Py_None);
    Py_XDECREF(name);
    return NULL;
}

PyObject *
sl_restored_run(PyObject *o, PyObject *value)
{
    SlRestored *r = (SlRestored *)o;
    if (r->started) {
        PyErr_SetString(PyExc_RuntimeError, "restored frames can run only once");
        return NULL;
    }
    r->started = 1;
    PyThreadState *ts = PyThreadState_Get();
    PyObject *items = r->shells;
    Py_ssize_t n = PyList_GET_SIZE(items);
    /* chain each shell to the nearest shell outside it, so that f_back is natural */
    PyObject *outer = NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyList_GET_ITEM(items, i);
        if (PyLong_AsLong(PyTuple_GET_ITEM(item, 0)) == ITEM_SHELL) {
            sl_pystate_link_shell(ts, PyTuple_GET_ITEM(item, 1), outer);
            outer = PyTuple_GET_ITEM(item, 1);
        }
    }
    PyObject *v;
    if (value != NULL && sl_bomb_check(value)) {
        v = sl_bomb_explode(value);
    }
    else {
        v = Py_NewRef(value != NULL ? value : Py_None);
    }
    int exhausted = 0; /* the generator just run has returned, not yielded */
    for (Py_ssize_t i = n - 1; i >= 0; i--) {
        PyObject *item = Py_NewRef(PyList_GET_ITEM(items, i));
        PyList_SetItem(items, i, Py_NewRef(Py_None));
        long kind = PyLong_AsLong(PyTuple_GET_ITEM(item, 0));
        PyObject *obj = PyTuple_GET_ITEM(item, 1);
        int reexec = (int)PyLong_AsLong(PyTuple_GET_ITEM(item, 2));
        if (kind == ITEM_SHELL) {
            if (exhausted && v != NULL && reexec > 0) {
                Py_CLEAR(v); /* FOR_ITER runs again, finds the generator exhausted */
                v = sl_pystate_resume_shell(ts, obj, NULL, reexec, NULL);
            }
            else if (v == NULL && reexec > 0 && i == n - 1 &&
                     PyErr_ExceptionMatches(PyExc_StopIteration)) {
                /* `for x in channel` ended by StopIteration: the loop ends, as FOR_ITER
                   makes it end when its iterator is exhausted */
                PyErr_Clear();
                PyObject *empty = PyTuple_New(0);
                PyObject *done = empty ? PyObject_GetIter(empty) : NULL;
                Py_XDECREF(empty);
                v = done ? sl_pystate_resume_shell(ts, obj, NULL, reexec, done) : NULL;
                Py_XDECREF(done);
            }
            else {
                v = sl_pystate_resume_shell(ts, obj, v, 0, NULL);
            }
            exhausted = 0;
        }
        else if (kind == ITEM_GENERATOR) {
            PyObject *caller = NULL;
            for (Py_ssize_t j = i - 1; j >= 0 && caller == NULL; j--) {
                PyObject *up = PyList_GET_ITEM(items, j);
                if (PyLong_AsLong(PyTuple_GET_ITEM(up, 0)) == ITEM_SHELL) {
                    caller = PyTuple_GET_ITEM(up, 1);
                }
            }
            v = sl_pystate_resume_generator(ts, obj, caller, v, &exhausted);
        }
        else if (kind == ITEM_INIT) {
            /* what the class call returns once __init__ has (3.13+ runs it inline) */
            if (v != NULL && v != Py_None) {
                PyErr_Format(PyExc_TypeError, "__init__() should return None, not '%.200s'",
                             Py_TYPE(v)->tp_name);
                Py_CLEAR(v);
            }
            else if (v != NULL) {
                Py_SETREF(v, Py_NewRef(obj));
            }
            exhausted = 0;
        }
        else {
            /* an exception coming from inside becomes the new error's context */
            PyObject *inner = v == NULL ? sl_pystate_fetch_error() : NULL;
            Py_XDECREF(v);
            v = invalid_frame_error(obj);
            if (inner != NULL) {
                PyObject *err = sl_pystate_fetch_error();
                PyException_SetContext(err, inner);
                sl_pystate_restore_error(err);
            }
            exhausted = 0;
        }
        Py_DECREF(item);
    }
    return v;
}

static PyObject *
restored_call(PyObject *o, PyObject *args, PyObject *kwargs)
{
    if (PyTuple_GET_SIZE(args) != 0 || (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0)) {
        PyErr_SetString(PyExc_TypeError, "restored frames take no arguments");
        return NULL;
    }
    return sl_restored_run(o, NULL);
}

static int
restored_traverse(SlRestored *r, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(r));
    Py_VISIT(r->frames);
    Py_VISIT(r->shells);
    return 0;
}

static int
restored_clear(SlRestored *r)
{
    Py_CLEAR(r->frames);
    Py_CLEAR(r->shells);
    return 0;
}

static void
restored_dealloc(SlRestored *r)
{
    PyTypeObject *tp = Py_TYPE(r);
    PyObject_GC_UnTrack(r);
    restored_clear(r);
    tp->tp_free(r);
    Py_DECREF(tp);
}

static PyType_Slot restored_slots[] = {
    {Py_tp_call, restored_call},
    {Py_tp_traverse, restored_traverse},
    {Py_tp_clear, restored_clear},
    {Py_tp_dealloc, restored_dealloc},
    {Py_tp_doc, "The frames of an unpickled tasklet, waiting to be resumed."},
    {0, NULL},
};

static PyType_Spec restored_spec = {
    .name = "_stackless.restored_frames",
    .basicsize = sizeof(SlRestored),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = restored_slots,
};

/* ---- generators, coroutines and async generators (for stackless._pickling) ---------- */

static PyObject *
generator_record(PyObject *m, PyObject *gen)
{
    if (!PyGen_Check(gen) && !PyCoro_CheckExact(gen) && !PyAsyncGen_CheckExact(gen)) {
        PyErr_SetString(PyExc_TypeError, "not a generator, coroutine or async generator");
        return NULL;
    }
    if (load_helpers() < 0) {
        return NULL;
    }
    return sl_pystate_generator_record(gen, null_marker, tagged_int);
}

static PyObject *
new_generator(PyObject *m, PyObject *args)
{
    PyObject *func, *locals, *stack, *exc;
    int state, offset;
    if (!PyArg_ParseTuple(args, "OiiO!O!O:_new_generator", &func, &state, &offset, &PyTuple_Type,
                          &locals, &PyTuple_Type, &stack, &exc)) {
        return NULL;
    }
    if (exc != Py_None && !PyExceptionInstance_Check(exc)) {
        PyErr_SetString(PyExc_ValueError, "a generator's handled exception is not an exception");
        return NULL;
    }
    if (load_helpers() < 0) {
        return NULL;
    }
    return sl_pystate_new_generator(func, offset, locals, stack, state, exc, null_marker,
                                    tagged_int);
}

static PyMethodDef pickling_functions[] = {
    {"_generator_record", generator_record, METH_O,
     "the state of a generator, coroutine or async generator (for pickling)"},
    {"_new_generator", new_generator, METH_VARARGS,
     "rebuild one from its state; the caller validated it against the bytecode"},
    {NULL},
};

int
sl_pickling_init(PyObject *module)
{
    if (PyModule_AddFunctions(module, pickling_functions) < 0) {
        return -1;
    }
    restored_type = (PyTypeObject *)PyType_FromModuleAndSpec(module, &restored_spec, NULL);
    return restored_type != NULL ? 0 : -1;
}

/* ---- frames out ------------------------------------------------------------------------ */

PyObject *
sl_frames_reduce(SlPyState *st, PyObject *start)
{
    if (load_helpers() < 0) {
        return NULL;
    }
    PyObject *depth_at = PyObject_GetAttrString(helpers, "depth_at");
    if (depth_at == NULL) {
        return NULL;
    }
    PyObject *raw = sl_pystate_capture(st, null_marker, tagged_int, depth_at);
    Py_DECREF(depth_at);
    if (raw == NULL) {
        return NULL;
    }
    PyObject *exc = st->exc_value != NULL ? st->exc_value : Py_None;
    PyObject *records =
        PyObject_CallMethod(helpers, "frames_state", "NOO", raw, exc, start ? start : Py_None);
    if (records == NULL) {
        return NULL;
    }
    PyObject *tag = PyObject_GetAttrString(helpers, "CACHE_TAG");
    PyObject *head = tag ? PyTuple_Pack(1, tag) : NULL;
    Py_XDECREF(tag);
    PyObject *tail = head ? PySequence_Tuple(records) : NULL;
    PyObject *frames = tail ? PySequence_Concat(head, tail) : NULL;
    Py_XDECREF(head);
    Py_XDECREF(tail);
    Py_DECREF(records);
    return frames;
}

/* ---- frames in ------------------------------------------------------------------------- */

int
sl_frames_are_started(PyObject *frames)
{
    return PyTuple_Check(frames) && PyTuple_GET_SIZE(frames) > 0 &&
           PyUnicode_Check(PyTuple_GET_ITEM(frames, 0));
}

PyObject *
sl_frames_restore(PyObject *frames)
{
    if (load_helpers() < 0) {
        return NULL;
    }
    PyObject *name = PyUnicode_FromString("check_frames");
    PyObject *records = name ? PyObject_CallMethodOneArg(helpers, name, frames) : NULL;
    Py_XDECREF(name);
    if (records == NULL) {
        return NULL;
    }
    PyObject *shells = NULL;
    SlRestored *r = NULL;
    if (!PyList_Check(records) || PyList_GET_SIZE(records) == 0) {
        PyErr_SetString(PyExc_ValueError, "a started tasklet without frames");
        goto error;
    }
    Py_ssize_t n = PyList_GET_SIZE(records);
    shells = PyList_New(n);
    if (shells == NULL) {
        goto error;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *func, *locals, *stack, *exc;
        int offset, reexec;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(records, i), "OiOOOi", &func, &offset, &locals,
                              &stack, &exc, &reexec)) {
            goto error;
        }
        PyObject *obj;
        int kind;
        if (offset == -1) {
            kind = ITEM_INVALID;
            obj = Py_NewRef(func);
        }
        else if (offset == -2) {
            kind = ITEM_GENERATOR; /* checked: a suspended generator */
            obj = Py_NewRef(func);
        }
        else if (offset == -3) {
            kind = ITEM_INIT; /* checked: the stack is (the new object,) */
            obj = Py_NewRef(PyTuple_GET_ITEM(stack, 0));
        }
        else {
            kind = ITEM_SHELL;
            obj = sl_pystate_new_shell(func, offset, locals, stack, null_marker, tagged_int);
            if (obj == NULL) {
                goto error;
            }
            sl_pystate_set_shell_exception(obj, exc);
        }
        PyObject *item = Py_BuildValue("(iNi)", kind, obj, reexec);
        if (item == NULL) {
            goto error;
        }
        PyList_SET_ITEM(shells, i, item);
    }
    r = PyObject_GC_New(SlRestored, restored_type);
    if (r == NULL) {
        goto error;
    }
    r->frames = Py_NewRef(frames);
    r->shells = shells;
    r->started = 0;
    PyObject_GC_Track(r);
    Py_DECREF(records);
    return (PyObject *)r;
error:
    Py_XDECREF(shells);
    Py_DECREF(records);
    return NULL;
}
