/* The _stackless module: its functions, its exception, its initialisation.
 *
 * Owns: argument parsing of the module-level functions, the module-wide settings
 * (callbacks, error handler, soft-switch flag, pickle flags), TaskletExit, and creating
 * the types. It forwards every scheduling request to the scheduler and never touches
 * queues or stacks itself.
 */
#include "channel.h"
#include "module.h"
#include "pickling.h"
#include "poller.h"
#include "preempt.h"
#include "scheduler.h"
#include "tasklet.h"

/* Process-wide: tasklet switching is per OS thread, so the module cannot be loaded by more
   than one interpreter; its state lives as long as the process. */
static SlModuleState sl_state;
SlModuleState *sl_module;
static PyInterpreterState *sl_interp;

/* ---- argument parsing -------------------------------------------------------------- */

int
sl_parse_args(const char *fname, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
              const char *const *names, int required, PyObject **out)
{
    Py_ssize_t max = 0;
    while (names[max] != NULL) {
        out[max++] = NULL;
    }
    if (nargs > max) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most %zd arguments (%zd given)", fname, max,
                     nargs);
        return -1;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        out[i] = args[i];
    }
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, k);
        Py_ssize_t j = 0;
        while (j < max && PyUnicode_CompareWithASCIIString(key, names[j]) != 0) {
            j++;
        }
        if (j == max) {
            PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%U'", fname,
                         key);
            return -1;
        }
        if (out[j] != NULL) {
            PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%s'", fname,
                         names[j]);
            return -1;
        }
        out[j] = args[nargs + k];
    }
    for (int i = 0; i < required; i++) {
        if (out[i] == NULL) {
            PyErr_Format(PyExc_TypeError, "%s() missing required argument '%s'", fname, names[i]);
            return -1;
        }
    }
    return 0;
}

int
sl_int_flag(PyObject *v, const char *message)
{
    if (v == NULL || !PyLong_Check(v)) {
        PyErr_SetString(PyExc_TypeError, message);
        return -1;
    }
    return PyObject_IsTrue(v);
}

/* ---- introspection ---------------------------------------------------------------- */

static PyObject *
mod_getcurrent(PyObject *m, PyObject *unused)
{
    SlThread *th = sl_thread_get();
    return th ? Py_NewRef(th->current) : NULL;
}

static PyObject *
mod_getmain(PyObject *m, PyObject *unused)
{
    SlThread *th = sl_thread_get();
    return th ? Py_NewRef(th->main) : NULL;
}

static PyObject *
mod_getruncount(PyObject *m, PyObject *unused)
{
    SlThread *th = sl_thread_get();
    return th ? PyLong_FromSsize_t(th->runcount) : NULL;
}

static PyObject *
mod_getcurrentid(PyObject *m, PyObject *unused)
{
    SlThread *th = sl_thread_get();
    if (th == NULL) {
        return NULL;
    }
    if (th->current == th->main) {
        return PyLong_FromUnsignedLong(th->thread_id);
    }
    return PyLong_FromVoidPtr(th->current);
}

/* The handler of the preemption signal (see preempt.h). */
static PyObject *
mod_preempt_signal(PyObject *m, PyObject *const *args, Py_ssize_t nargs)
{
    return sl_preempt_fired(sl_thread_peek());
}

static PyObject *
mod_getthreads(PyObject *m, PyObject *unused)
{
    return sl_pystate_thread_ids();
}

static PyObject *
mod_get_thread_info(PyObject *m, PyObject *args)
{
    long long id = -1, flags = 0;
    if (!PyArg_ParseTuple(args, "|LL:get_thread_info", &id, &flags)) {
        return NULL;
    }
    if (id < -1) {
        PyErr_SetString(PyExc_OverflowError, "thread id must not be negative");
        return NULL;
    }
    SlThread *th = sl_thread_get();
    if (th == NULL) {
        return NULL;
    }
    if (id == -1 || (unsigned long)id == th->thread_id) {
        return Py_BuildValue("(OOn)", th->main, th->current, th->runcount);
    }
    SlThread *other = sl_thread_find((unsigned long)id);
    if (other != NULL) {
        /* a thread asleep in its scheduler has no current tasklet */
        PyObject *cur = other->runcount ? (PyObject *)other->current : Py_None;
        return Py_BuildValue("(OOn)", other->main ? (PyObject *)other->main : Py_None, cur,
                             other->runcount);
    }
    int known = sl_thread_exists((unsigned long)id);
    if (known < 0) {
        return NULL;
    }
    if (!known) {
        PyErr_SetString(PyExc_RuntimeError, "Thread id not found");
        return NULL;
    }
    /* a thread that never used stackless */
    return Py_BuildValue("(OOi)", Py_None, Py_None, 0);
}

static PyObject *
mod_getdebug(PyObject *m, PyObject *unused)
{
#if defined(Py_DEBUG) || !defined(NDEBUG)
    Py_RETURN_TRUE;
#else
    Py_RETURN_FALSE;
#endif
}

static PyObject *
mod_getuncollectables(PyObject *m, PyObject *unused)
{
    /* Every suspended tasklet here keeps a piece of C stack; list them. */
    SlThread *th = sl_thread_get();
    if (th == NULL) {
        return NULL;
    }
    PyObject *list = PyList_New(0);
    for (SlTasklet *t = th->started_first; list && t; t = t->started_next) {
        if (PyList_Append(list, (PyObject *)t) < 0) {
            Py_CLEAR(list);
        }
    }
    return list;
}

/* ---- scheduling ---------------------------------------------------------------------- */

static PyObject *
schedule_common(PyObject *m, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames, int remove)
{
    static const char *const names[] = {"retval", NULL};
    PyObject *retval;
    if (sl_parse_args(remove ? "schedule_remove" : "schedule", args, nargs, kwnames, names, 0,
                      &retval) < 0) {
        return NULL;
    }
    SlThread *th = sl_thread_get();
    if (th == NULL) {
        return NULL;
    }
    return sl_schedule(th, retval ? retval : (PyObject *)th->current, remove,
                       SL_CALL_SITE(m, args, nargs, kwnames));
}

static PyObject *
mod_schedule(PyObject *m, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    return schedule_common(m, args, nargs, kwnames, 0);
}

static PyObject *
mod_schedule_remove(PyObject *m, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    return schedule_common(m, args, nargs, kwnames, 1);
}

static PyObject *
mod_run(PyObject *m, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const names[] = {"timeout",        "threadblock",  "soft",
                                        "ignore_nesting", "totaltimeout", NULL};
    PyObject *a[5];
    if (sl_parse_args("run", args, nargs, kwnames, names, 0, a) < 0) {
        return NULL;
    }
    long timeout = 0;
    if (a[0] != NULL) {
        if (!PyLong_Check(a[0])) {
            PyErr_Format(PyExc_TypeError, "run() argument 'timeout' must be int, not %s",
                         Py_TYPE(a[0])->tp_name);
            return NULL;
        }
        timeout = PyLong_AsLong(a[0]);
        if (timeout == -1 && PyErr_Occurred()) {
            return NULL;
        }
    }
    int on[5] = {0, 0, 0, 0, 0};
    for (int i = 1; i < 5; i++) {
        if (a[i] != NULL && (on[i] = PyObject_IsTrue(a[i])) < 0) {
            return NULL;
        }
    }
    /* threadblock (a[1]) only matters with a timeout in 3.7.5 too, and is ignored */
    int flags = (on[2] ? SL_RUN_SOFT : 0) | (on[3] ? SL_RUN_IGNORE_NESTING : 0) |
                (on[4] ? SL_RUN_TOTAL : 0);
    SlThread *th = sl_thread_get();
    if (th == NULL) {
        return NULL;
    }
    if (timeout > 0) {
        if (th->thread_id != sl_module->main_thread_id) {
            PyErr_SetString(PyExc_RuntimeError,
                            "run(timeout) can preempt tasklets only in the main thread");
            return NULL;
        }
        if (sl_preempt_setup(m) < 0) {
            return NULL;
        }
    }
    return sl_run_watchdog(th, timeout, flags, SL_CALL_SITE(m, args, nargs, kwnames));
}

static PyObject *
mod_switch_trap(PyObject *m, PyObject *args)
{
    int change = 0;
    if (!PyArg_ParseTuple(args, "|i:switch_trap", &change)) {
        return NULL;
    }
    SlThread *th = sl_thread_get();
    if (th == NULL) {
        return NULL;
    }
    int old = th->switch_trap;
    th->switch_trap += change;
    if (th->switch_trap == 0 && sl_safe_point(th) < 0) {
        /* the kills a finaliser could not do while switching was off ran, and meanwhile
           this tasklet was thrown into */
        return NULL;
    }
    return PyLong_FromLong(old);
}

static PyObject *
mod_enable_softswitch(PyObject *m, PyObject *flag)
{
    int old = sl_state.softswitch;
    if (flag != Py_None) {
        int on = PyObject_IsTrue(flag);
        if (on < 0) {
            return NULL;
        }
        sl_state.softswitch = on;
    }
    return PyBool_FromLong(old);
}

/* ---- callbacks ------------------------------------------------------------------------ */

static PyObject *
swap_callback(PyObject **slot, PyObject *callable, const char *message)
{
    if (callable != Py_None && !PyCallable_Check(callable)) {
        PyErr_SetString(PyExc_TypeError, message);
        return NULL;
    }
    PyObject *old = *slot;
    *slot = callable == Py_None ? NULL : Py_NewRef(callable);
    return old ? old : Py_NewRef(Py_None);
}

static PyObject *
mod_set_channel_callback(PyObject *m, PyObject *callable)
{
    return swap_callback(&sl_state.channel_callback, callable, "channel callback must be callable");
}

static PyObject *
mod_get_channel_callback(PyObject *m, PyObject *unused)
{
    return Py_NewRef(sl_state.channel_callback ? sl_state.channel_callback : Py_None);
}

static PyObject *
mod_set_schedule_callback(PyObject *m, PyObject *callable)
{
    return swap_callback(&sl_state.schedule_callback, callable,
                         "schedule callback must be callable");
}

static PyObject *
mod_get_schedule_callback(PyObject *m, PyObject *unused)
{
    return Py_NewRef(sl_state.schedule_callback ? sl_state.schedule_callback : Py_None);
}

static PyObject *
mod_set_error_handler(PyObject *m, PyObject *args)
{
    PyObject *handler = Py_None;
    if (!PyArg_ParseTuple(args, "|O:set_error_handler", &handler)) {
        return NULL;
    }
    PyObject *old = sl_state.error_handler;
    sl_state.error_handler = handler == Py_None ? NULL : Py_NewRef(handler);
    return old ? old : Py_NewRef(Py_None);
}

/* ---- pickle flags ------------------------------------------------------------------- */

static PyObject *
update_flags(int *slot, PyObject *args, const char *fmt)
{
    long value = -1, mask = -1;
    if (!PyArg_ParseTuple(args, fmt, &value, &mask)) {
        return NULL;
    }
    int old = *slot;
    if (value != -1) {
        if (value < -1 || (value & mask) > 7) {
            PyErr_SetString(PyExc_ValueError, "you must not set an undefined pickle-flag");
            return NULL;
        }
        *slot = (int)((old & ~mask) | (value & mask));
    }
    return PyLong_FromLong(old);
}

/* Per thread; a thread starts with the interpreter's default. */
static PyObject *
mod_pickle_flags(PyObject *m, PyObject *args)
{
    SlThread *th = sl_thread_get();
    return th ? update_flags(&th->pickle_flags, args, "|ll:pickle_flags") : NULL;
}

static PyObject *
mod_pickle_flags_default(PyObject *m, PyObject *args)
{
    return update_flags(&sl_state.pickle_flags_default, args, "|ll:pickle_flags_default");
}

/* ---- garbage collection ---------------------------------------------------------------- */

static PyObject *
mod_gc_callback(PyObject *m, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs >= 1 && PyUnicode_Check(args[0])) {
        if (PyUnicode_CompareWithASCIIString(args[0], "start") == 0) {
            sl_gc_started();
        }
        else {
            sl_gc_stopped();
        }
    }
    Py_RETURN_NONE;
}

/* ---- interpreter exit -------------------------------------------------------------- */

static PyObject *
mod_kill_leftovers(PyObject *m, PyObject *unused)
{
    SlThread *th = sl_thread_peek();
    if (th != NULL && sl_kill_leftovers(th) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"getcurrent", mod_getcurrent, METH_NOARGS, "getcurrent() -> the running tasklet"},
    {"getmain", mod_getmain, METH_NOARGS, "getmain() -> this thread's main tasklet"},
    {"getruncount", mod_getruncount, METH_NOARGS, "getruncount() -> runnable tasklets"},
    {"getcurrentid", mod_getcurrentid, METH_NOARGS,
     "getcurrentid() -> an id of the current tasklet"},
    {"getthreads", mod_getthreads, METH_NOARGS, "getthreads() -> idents of all threads"},
    {"_preempt_signal", (PyCFunction)(void (*)(void))mod_preempt_signal, METH_FASTCALL,
     "the handler of the signal run(timeout) preempts with (internal)"},
    {"get_thread_info", mod_get_thread_info, METH_VARARGS,
     "get_thread_info(thread_id) -> (main, current, runcount)"},
    {"getdebug", mod_getdebug, METH_NOARGS, "getdebug() -> whether this is a debug build"},
    {"getuncollectables", mod_getuncollectables, METH_NOARGS,
     "getuncollectables() -> tasklets holding C stack"},
    {"schedule", (PyCFunction)(void (*)(void))mod_schedule, METH_FASTCALL | METH_KEYWORDS,
     "schedule(retval=current): let the next runnable tasklet run"},
    {"schedule_remove", (PyCFunction)(void (*)(void))mod_schedule_remove,
     METH_FASTCALL | METH_KEYWORDS, "schedule_remove(retval=current): pause and let others run"},
    {"run", (PyCFunction)(void (*)(void))mod_run, METH_FASTCALL | METH_KEYWORDS,
     "run(timeout=0, threadblock=False, soft=False, ignore_nesting=False, totaltimeout=False):\n"
     "run the runnable tasklets until none is left"},
    {"switch_trap", mod_switch_trap, METH_VARARGS,
     "switch_trap(change=0) -> previous level; switching raises while it is non-zero"},
    {"enable_softswitch", mod_enable_softswitch, METH_O,
     "enable_softswitch(flag) -> previous flag (None only queries)"},
    {"set_channel_callback", mod_set_channel_callback, METH_O, NULL},
    {"get_channel_callback", mod_get_channel_callback, METH_NOARGS, NULL},
    {"set_schedule_callback", mod_set_schedule_callback, METH_O, NULL},
    {"get_schedule_callback", mod_get_schedule_callback, METH_NOARGS, NULL},
    {"set_error_handler", mod_set_error_handler, METH_VARARGS, NULL},
    {"pickle_flags", mod_pickle_flags, METH_VARARGS, NULL},
    {"pickle_flags_default", mod_pickle_flags_default, METH_VARARGS, NULL},
    {"_kill_leftovers", mod_kill_leftovers, METH_NOARGS,
     "kill the started tasklets still alive (run at interpreter exit)"},
    {"_gc_callback", (PyCFunction)(void (*)(void))mod_gc_callback, METH_FASTCALL,
     "entry in gc.callbacks: tells the scheduler when collections start and stop"},
    {NULL},
};

/* ---- initialisation ------------------------------------------------------------------ */

static PyObject *
get_taskletexit(void)
{
    PyObject *builtins = PyEval_GetBuiltins(); /* borrowed */
    PyObject *exc = PyDict_GetItemString(builtins, "TaskletExit");
    if (exc != NULL && PyExceptionClass_Check(exc)) {
        return Py_NewRef(exc);
    }
    exc = PyErr_NewExceptionWithDoc("builtins.TaskletExit",
                                    "Raised in a tasklet to kill it; not caught by "
                                    "'except Exception'.",
                                    PyExc_SystemExit, NULL);
    if (exc == NULL || PyDict_SetItemString(builtins, "TaskletExit", exc) < 0) {
        Py_XDECREF(exc);
        return NULL;
    }
    return exc;
}

static int
init_state(PyObject *module)
{
    if (sl_module != NULL) {
        return 0;
    }
    sl_state.softswitch = 1;
    sl_state.tasklet_type =
        (PyTypeObject *)PyType_FromModuleAndSpec(module, &sl_tasklet_spec, NULL);
    sl_state.channel_type =
        (PyTypeObject *)PyType_FromModuleAndSpec(module, &sl_channel_spec, NULL);
    sl_state.atomic_type = (PyTypeObject *)PyType_FromModuleAndSpec(module, &sl_atomic_spec, NULL);
    sl_state.bomb_type = (PyTypeObject *)PyType_FromModuleAndSpec(module, &sl_bomb_spec, NULL);
    if (!sl_state.tasklet_type || !sl_state.channel_type || !sl_state.atomic_type ||
        !sl_state.bomb_type || sl_pickling_init(module) < 0) {
        return -1;
    }
    sl_state.TaskletExit = get_taskletexit();
    if (sl_state.TaskletExit == NULL) {
        return -1;
    }
    PyObject *threading = PyImport_ImportModule("threading");
    PyObject *main = threading ? PyObject_CallMethod(threading, "main_thread", NULL) : NULL;
    PyObject *ident = main ? PyObject_GetAttrString(main, "ident") : NULL;
    Py_XDECREF(threading);
    Py_XDECREF(main);
    if (ident == NULL) {
        return -1;
    }
    sl_state.main_thread_id = PyLong_AsUnsignedLong(ident);
    Py_DECREF(ident);
    if (PyErr_Occurred()) {
        return -1;
    }
    sl_module = &sl_state;
    return 0;
}

static int
register_hooks(PyObject *module)
{
    PyObject *atexit = PyImport_ImportModule("atexit");
    PyObject *hook = PyObject_GetAttrString(module, "_kill_leftovers");
    PyObject *r = atexit && hook ? PyObject_CallMethod(atexit, "register", "O", hook) : NULL;
    Py_XDECREF(atexit);
    Py_XDECREF(hook);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    PyObject *gc = PyImport_ImportModule("gc");
    PyObject *callbacks = gc ? PyObject_GetAttrString(gc, "callbacks") : NULL;
    PyObject *cb = PyObject_GetAttrString(module, "_gc_callback");
    int err = callbacks && cb && PyList_Check(callbacks) ? PyList_Append(callbacks, cb) : -1;
    if (err < 0 && !PyErr_Occurred()) {
        PyErr_SetString(PyExc_TypeError, "gc.callbacks is not a list");
    }
    Py_XDECREF(gc);
    Py_XDECREF(callbacks);
    Py_XDECREF(cb);
    return err;
}

static int
module_exec(PyObject *module)
{
    PyInterpreterState *interp = PyInterpreterState_Get();
    if (sl_interp != NULL && sl_interp != interp) {
        PyErr_SetString(PyExc_ImportError,
                        "_stackless can be loaded by one interpreter per process only");
        return -1;
    }
    sl_interp = interp;
    if (init_state(module) < 0) {
        return -1;
    }
    if (PyModule_AddObjectRef(module, "tasklet", (PyObject *)sl_state.tasklet_type) < 0 ||
        PyModule_AddObjectRef(module, "channel", (PyObject *)sl_state.channel_type) < 0 ||
        PyModule_AddObjectRef(module, "atomic", (PyObject *)sl_state.atomic_type) < 0 ||
        PyModule_AddObjectRef(module, "bomb", (PyObject *)sl_state.bomb_type) < 0 ||
        PyModule_AddObjectRef(module, "TaskletExit", sl_state.TaskletExit) < 0 ||
        PyModule_AddIntConstant(module, "PICKLEFLAGS_PRESERVE_TRACING_STATE", 1) < 0 ||
        PyModule_AddIntConstant(module, "PICKLEFLAGS_PRESERVE_AG_FINALIZER", 2) < 0 ||
        PyModule_AddIntConstant(module, "PICKLEFLAGS_RESET_AG_FINALIZER", 4) < 0 ||
        sl_poller_init(module) < 0) {
        return -1;
    }
    return register_hooks(module);
}

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_stackless",
    .m_doc = "Tasklets, channels and a cooperative scheduler for CPython (stack slicing).",
    .m_size = 0,
    .m_methods = module_methods,
    .m_slots = module_slots,
};

PyMODINIT_FUNC
PyInit__stackless(void)
{
    return PyModuleDef_Init(&module_def);
}
