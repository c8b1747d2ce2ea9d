/* The tasklet object; see tasklet.h.
 *
 * Methods validate their arguments and the tasklet's state, with the spec's exact error
 * messages, then ask the scheduler to act. Lifetime: a started tasklet that becomes
 * unreachable is killed (TaskletExit raised in it, so its finally blocks run) by its
 * finaliser; one that cannot be killed or survives is dropped without running its code.
 */
#include "tasklet.h"

#include "channel.h"
#include "module.h"
#include "pickling.h"
#include "scheduler.h"

#include <structmember.h>

int
sl_tasklet_set_atomic(SlTasklet *t, int flag)
{
    int old = t->atomic;
    t->atomic = flag ? 1 : 0;
    return old;
}

static SlTasklet *
alloc_tasklet(PyTypeObject *type, SlThread *th)
{
    SlTasklet *t = (SlTasklet *)type->tp_alloc(type, 0);
    if (t == NULL) {
        return NULL;
    }
    t->thread = th;
    sl_thread_incref(th);
    t->serial = th->next_serial++;
    return t;
}

int
sl_tasklet_alive(SlTasklet *t)
{
    return t->state != SL_NEW && sl_owner(t) != NULL;
}

SlTasklet *
sl_tasklet_new_main(SlThread *th)
{
    SlTasklet *t = alloc_tasklet(sl_module->tasklet_type, th);
    if (t != NULL) {
        t->is_main = 1;
        t->state = SL_STARTED;
    }
    return t;
}

/* Queue t (not in a queue; the queue takes a reference) in its own thread: at the end of
   the caller's run queue, or in another thread as the spec says, waking that thread. */
static void
queue_in_owner(SlThread *caller, SlTasklet *t)
{
    SlThread *owner = sl_owner(t);
    if (owner == caller) {
        sl_rq_append(owner, t);
    }
    else {
        sl_rq_insert_foreign(owner, t);
    }
}

/* The running tasklet of its thread (not while that thread sleeps with nothing to run). */
static int
is_current(SlTasklet *t)
{
    SlThread *owner = sl_owner(t);
    return owner != NULL && owner->current == t && !owner->sleeping;
}

/* ---- binding ------------------------------------------------------------------------ */

/* A call a tasklet is about to be set up with. It is prepared completely before the tasklet
   is touched (preparing allocates, and an allocation may run finalisers that look at or
   even re-bind the tasklet), then installed with plain pointer moves, and what the tasklet
   held before is released last. */
typedef struct {
    PyObject *func, *args, *kwargs, *context;
} Call;

static int
prepare_call(Call *c, PyObject *func, PyObject *args, PyObject *kwargs)
{
    c->func = Py_NewRef(func);
    c->args = args ? Py_NewRef(args) : PyTuple_New(0);
    c->kwargs = NULL;
    c->context = NULL;
    if (c->args == NULL) {
        return -1;
    }
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs) > 0 &&
        (c->kwargs = PyDict_Copy(kwargs)) == NULL) {
        return -1;
    }
    /* Each tasklet runs in its own contextvars context, copied from its creator's. */
    return sl_pystate_copy_context(&c->context);
}

static void
forget_call(Call *c)
{
    Py_XDECREF(c->func);
    Py_XDECREF(c->args);
    Py_XDECREF(c->kwargs);
    Py_XDECREF(c->context);
}

/* Empty the tasklet: its frames (if suspended), call, tempval and interpreter state go to
   old. It is new (not alive) afterwards. */
static void
empty_tasklet(SlTasklet *t, SlRefs *old)
{
    sl_discard(t, old);
    sl_refs_add(old, t->func);
    sl_refs_add(old, t->args);
    sl_refs_add(old, t->kwargs);
    sl_refs_add(old, t->tempval);
    sl_refs_add(old, t->new_hooks[0]);
    sl_refs_add(old, t->new_hooks[1]);
    t->new_hooks[0] = t->new_hooks[1] = NULL;
    t->hooks_pending = 0;
    t->func = t->args = t->kwargs = t->tempval = NULL;
    t->state = SL_NEW;
}

/* Install a prepared call (consumed): the tasklet becomes alive (set up, not started). */
static void
install_call(SlTasklet *t, Call *c)
{
    t->func = c->func;
    t->args = c->args;
    t->kwargs = c->kwargs;
    t->pystate.context = c->context;
    t->state = SL_PENDING;
}

/* The state checks of bind(), in the spec's order (after the argument checks). */
static int
check_rebindable(SlTasklet *t, int with_call, PyObject **callable)
{
    if (is_current(t)) {
        PyErr_SetString(PyExc_RuntimeError, "can't (re)bind the current tasklet");
        return -1;
    }
    if (sl_tasklet_scheduled(t)) {
        PyErr_SetString(PyExc_RuntimeError, "tasklet is scheduled");
        return -1;
    }
    if (sl_nesting_level(t) > 0 && !t->is_main) {
        PyErr_SetString(PyExc_RuntimeError, "tasklet has C state on its stack");
        return -1;
    }
    if (t->is_main) {
        PyErr_SetString(PyExc_RuntimeError, "can't unbind the main tasklet");
        return -1;
    }
    if (with_call && *callable == NULL) {
        if (t->tempval != NULL && t->state == SL_NEW && PyCallable_Check(t->tempval)) {
            *callable = t->tempval;
        }
        else {
            PyErr_SetString(PyExc_RuntimeError, "the tasklet was not bound to a function");
            return -1;
        }
    }
    if (with_call && sl_owner(t) == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "tasklet has no thread");
        return -1;
    }
    return 0;
}

static PyObject *
do_bind(SlTasklet *t, PyObject *func, PyObject *args, PyObject *kwargs)
{
    if (func == Py_None) {
        func = NULL;
    }
    if (args == Py_None) {
        args = NULL;
    }
    if (kwargs == Py_None) {
        kwargs = NULL;
    }
    if (func != NULL && !PyCallable_Check(func)) {
        PyErr_SetString(PyExc_TypeError, "tasklet function must be a callable or None");
        return NULL;
    }
    if (args != NULL && !PyTuple_Check(args)) {
        PyErr_SetString(PyExc_TypeError, "args must be a tuple");
        return NULL;
    }
    if (kwargs != NULL && !PyDict_Check(kwargs)) {
        PyErr_SetString(PyExc_TypeError, "kwargs must be a dict");
        return NULL;
    }
    int with_call = args != NULL || kwargs != NULL;
    PyObject *callable = func;
    if (check_rebindable(t, with_call, &callable) < 0) {
        return NULL;
    }
    Call c = {NULL, NULL, NULL, NULL};
    if (with_call) {
        if (prepare_call(&c, callable, args, kwargs) < 0) {
            forget_call(&c);
            return NULL;
        }
        /* preparing may have run code that changed the tasklet: look again */
        callable = func;
        if (check_rebindable(t, with_call, &callable) < 0) {
            forget_call(&c);
            return NULL;
        }
    }
    PyObject *bound = with_call ? NULL : Py_XNewRef(callable);
    SlRefs old = {NULL, 0, 0};
    empty_tasklet(t, &old);
    if (with_call) {
        install_call(t, &c);
    }
    else {
        t->tempval = bound;
    }
    sl_refs_release(&old);
    return Py_NewRef(t);
}

static PyObject *
tasklet_bind(SlTasklet *t, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"func", "args", "kwargs", NULL};
    PyObject *func = NULL, *a = NULL, *k = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OOO:bind", kwlist, &func, &a, &k)) {
        return NULL;
    }
    return do_bind(t, func, a, k);
}

static PyObject *
tasklet_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    SlThread *th = sl_thread_get();
    if (th == NULL) {
        return NULL;
    }
    return (PyObject *)alloc_tasklet(type, th);
}

static int
tasklet_init(SlTasklet *t, PyObject *args, PyObject *kwds)
{
    PyObject *r = tasklet_bind(t, args, kwds);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

/* The state checks of setup(); 0, or -1 with the spec's error. */
static int
check_settable(SlTasklet *t)
{
    if (sl_tasklet_alive(t) || is_current(t)) {
        PyErr_SetString(PyExc_RuntimeError, "tasklet is alive");
        return -1;
    }
    PyObject *func = t->state == SL_NEW ? t->tempval : NULL;
    if (func == NULL || !PyCallable_Check(func)) {
        PyErr_SetString(PyExc_RuntimeError, "the tasklet was not bound to a function");
        return -1;
    }
    if (sl_owner(t) == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "tasklet has no thread");
        return -1;
    }
    return 0;
}

static PyObject *
tasklet_setup(SlTasklet *t, PyObject *args, PyObject *kwds)
{
    if (check_settable(t) < 0) {
        return NULL;
    }
    Call c = {NULL, NULL, NULL, NULL};
    if (prepare_call(&c, t->tempval, args, kwds) < 0 || check_settable(t) < 0) {
        forget_call(&c);
        return NULL;
    }
    SlThread *th = sl_thread_get();
    if (th == NULL) {
        forget_call(&c);
        return NULL;
    }
    PyObject *bound = t->tempval; /* the callable, now in c.func */
    t->tempval = NULL;
    install_call(t, &c);
    queue_in_owner(th, t);
    Py_DECREF(bound);
    return Py_NewRef(t);
}

/* ---- queue operations ---------------------------------------------------------------- */

/* The checks insert() and run() share. 0: fine, -1: error set. */
static int
check_runnable(SlTasklet *t)
{
    if (t->channel != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "You cannot run a blocked tasklet");
        return -1;
    }
    if (t->in_runqueue) {
        return 0;
    }
    if (sl_owner(t) == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Target thread isn't initialized");
        return -1;
    }
    if (!sl_tasklet_alive(t)) {
        PyErr_SetString(PyExc_RuntimeError, "You cannot run an unbound(dead) tasklet");
        return -1;
    }
    return 0;
}

static PyObject *
tasklet_insert(SlTasklet *t, PyObject *unused)
{
    if (check_runnable(t) < 0) {
        return NULL;
    }
    if (!t->in_runqueue) {
        SlThread *th = sl_thread_get();
        if (th == NULL) {
            return NULL;
        }
        queue_in_owner(th, t);
    }
    return Py_NewRef(t);
}

static PyObject *
tasklet_remove(SlTasklet *t, PyObject *unused)
{
    if (sl_owner(t) == NULL) {
        return Py_NewRef(t);
    }
    if (t->channel != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "You cannot remove a blocked tasklet.");
        return NULL;
    }
    if (is_current(t)) {
        PyErr_SetString(PyExc_RuntimeError, "The current tasklet cannot be removed.");
        return NULL;
    }
    if (!t->in_runqueue) {
        return Py_NewRef(t);
    }
    SlThread *th = sl_owner(t);
    if (th->in_callback) {
        PyErr_SetString(PyExc_RuntimeError, "cannot remove a tasklet inside a callback");
        return NULL;
    }
    sl_rq_unlink(th, t);
    return (PyObject *)t; /* the run queue's reference becomes the result */
}

static PyObject *
run_or_switch(SlTasklet *t, PyObject *const *args, Py_ssize_t nargs, int pause_caller)
{
    if (nargs != 0) {
        PyErr_Format(PyExc_TypeError, "%s() takes no arguments (%zd given)",
                     pause_caller ? "switch" : "run", nargs);
        return NULL;
    }
    if (sl_owner(t) == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "tasklet has no thread");
        return NULL;
    }
    SlThread *th = sl_thread_get();
    if (th == NULL) {
        return NULL;
    }
    if (t == th->current) {
        Py_RETURN_NONE;
    }
    /* before the checks: what runs here may change t */
    if (sl_safe_point(th) < 0 || check_runnable(t) < 0) {
        return NULL;
    }
    if (sl_owner(t) != th) {
        if (pause_caller) {
            PyErr_SetString(PyExc_RuntimeError, "can't switch to a different thread.");
            return NULL;
        }
        /* queued in its own thread (which is woken); the caller goes on */
        if (t->in_runqueue) {
            sl_rq_unlink(sl_owner(t), t);
            Py_DECREF(t);
        }
        queue_in_owner(th, t);
        Py_RETURN_NONE;
    }
    return sl_run_tasklet(th, t, pause_caller, SL_CALL_SITE(t, args, nargs, NULL));
}

static PyObject *
tasklet_run(SlTasklet *t, PyObject *const *args, Py_ssize_t nargs)
{
    return run_or_switch(t, args, nargs, 0);
}

static PyObject *
tasklet_switch(SlTasklet *t, PyObject *const *args, Py_ssize_t nargs)
{
    return run_or_switch(t, args, nargs, 1);
}

/* ---- exceptions into tasklets ------------------------------------------------------- */

/* Deliver `bomb` (stolen) to t: throw(), raise_exception() and kill() end here. args,
   nargs and kwnames are the method's arguments (they tell where the caller made the call). */
static PyObject *
throw_bomb(SlTasklet *t, PyObject *bomb, int pending, PyObject *const *args, Py_ssize_t nargs,
           PyObject *kwnames)
{
    if (bomb == NULL) {
        return NULL;
    }
    PyObject *r = NULL;
    SlThread *th = sl_thread_get();
    if (th == NULL) {
        goto done;
    }
    if (t == th->current) {
        r = sl_bomb_explode(bomb);
        goto done;
    }
    if (!pending && sl_safe_point(th) < 0) { /* before the checks: it may change t */
        goto done;
    }
    if (!sl_tasklet_alive(t)) {
        if (sl_bomb_is_taskletexit(bomb)) {
            r = Py_NewRef(Py_None);
        }
        else {
            PyErr_SetString(PyExc_RuntimeError, sl_owner(t) == NULL
                                                    ? "tasklet has no thread"
                                                    : "You cannot throw to a dead tasklet");
        }
        goto done;
    }
    if (sl_owner(t) != th) {
        /* parked in the tasklet, which becomes runnable in its own thread */
        r = sl_throw_foreign(t, bomb);
    }
    else {
        r = sl_throw(th, t, bomb, pending, SL_CALL_SITE(t, args, nargs, kwnames));
    }
done:
    Py_DECREF(bomb);
    return r;
}

static PyObject *
tasklet_throw(SlTasklet *t, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const names[] = {"exc", "val", "tb", "pending", NULL};
    PyObject *a[4];
    if (sl_parse_args("throw", args, nargs, kwnames, names, 1, a) < 0) {
        return NULL;
    }
    int pending = 0;
    if (a[3] != NULL && (pending = PyObject_IsTrue(a[3])) < 0) {
        return NULL;
    }
    PyObject *bomb = sl_bomb_from_raise_args(a[0], a[1], a[2]);
    return throw_bomb(t, bomb, pending, args, nargs, kwnames);
}

static PyObject *
tasklet_raise_exception(SlTasklet *t, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *bomb = sl_bomb_from_class_args("tasklet.raise_exception", args, nargs);
    return throw_bomb(t, bomb, 0, args, nargs, NULL);
}

static PyObject *
tasklet_kill(SlTasklet *t, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const names[] = {"pending", NULL};
    PyObject *a[1];
    if (sl_parse_args("kill", args, nargs, kwnames, names, 0, a) < 0) {
        return NULL;
    }
    int pending = 0;
    if (a[0] != NULL && (pending = PyObject_IsTrue(a[0])) < 0) {
        return NULL;
    }
    PyObject *bomb = sl_bomb_new(sl_module->TaskletExit, NULL, NULL);
    return throw_bomb(t, bomb, pending, args, nargs, kwnames);
}

/* ---- flags --------------------------------------------------------------------------- */

static PyObject *
tasklet_set_atomic(SlTasklet *t, PyObject *flag)
{
    int on = sl_int_flag(flag, "set_atomic needs exactly one bool or integer");
    if (on < 0) {
        return NULL;
    }
    int old = sl_tasklet_set_atomic(t, on);
    /* an interrupt that waited for the atomic section to end is taken now */
    SlThread *th = sl_thread_peek();
    if (!on && th != NULL && th->current == t) {
        sl_preempt_check(th);
    }
    return PyBool_FromLong(old);
}

static PyObject *
tasklet_set_ignore_nesting(SlTasklet *t, PyObject *flag)
{
    int on = sl_int_flag(flag, "set_ignore_nesting needs exactly one bool or integer");
    if (on < 0) {
        return NULL;
    }
    int old = t->ignore_nesting;
    t->ignore_nesting = (uint8_t)on;
    return PyBool_FromLong(old);
}

/* ---- threads ---------------------------------------------------------------------- */

static PyObject *
tasklet_bind_thread(SlTasklet *t, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs > 1) {
        PyErr_Format(PyExc_TypeError, "bind_thread() takes at most 1 argument (%zd given)", nargs);
        return NULL;
    }
    SlThread *th = sl_thread_get();
    if (th == NULL) {
        return NULL;
    }
    long long id = -1;
    if (nargs == 1) {
        if (!PyLong_Check(args[0])) {
            PyErr_SetString(PyExc_TypeError, "thread id must be an integer");
            return NULL;
        }
        id = PyLong_AsLongLong(args[0]);
        if (id == -1 && PyErr_Occurred()) {
            return NULL;
        }
        if (id < -1) {
            PyErr_SetString(PyExc_OverflowError, "thread id must not be negative");
            return NULL;
        }
    }
    if (nargs == 0 && sl_owner(t) == th) {
        Py_RETURN_NONE;
    }
    if (t->in_runqueue) {
        PyErr_SetString(PyExc_RuntimeError, "can't (re)bind a runnable tasklet");
        return NULL;
    }
    if (sl_nesting_level(t) > 0) {
        PyErr_SetString(PyExc_RuntimeError, "tasklet has C state on its stack");
        return NULL;
    }
    unsigned long target = id == -1 ? th->thread_id : (unsigned long)id;
    /* A thread that never used stackless has no scheduler to adopt the tasklet. */
    SlThread *to = target == th->thread_id ? th : sl_thread_find(target);
    if (to == NULL) {
        PyErr_SetString(PyExc_ValueError, "bad thread");
        return NULL;
    }
    if (t->state == SL_STARTED && sl_owner(t) != to) {
        /* Its C stack lies at addresses of its own thread's stack: it can only resume there. */
        PyErr_SetString(PyExc_RuntimeError, "tasklet has C state on its stack");
        return NULL;
    }
    if (t->thread != to) {
        SlThread *old = t->thread;
        sl_thread_incref(to);
        t->thread = to;
        sl_thread_decref(old);
    }
    Py_RETURN_NONE;
}

/* ---- pickling (spec section 8; the frames of a started tasklet: pickling.c) ------------ */

static PyObject *
tasklet_reduce(SlTasklet *t, PyObject *unused)
{
    if (is_current(t)) {
        PyErr_SetString(PyExc_RuntimeError, "You cannot __reduce__ the tasklet which is current.");
        return NULL;
    }
    int flags = (t->blocked & 3) | (t->atomic ? 4 : 0) | (t->ignore_nesting ? 8 : 0) |
                (t->block_trap ? 32 : 0);
    PyObject *frames;
    if (t->state == SL_STARTED) {
        if (sl_owner(t) != sl_thread_get()) {
            PyErr_SetString(PyExc_RuntimeError, "cannot pickle a tasklet of another thread");
            return NULL;
        }
        frames = sl_frames_reduce(&t->pystate, t->func);
    }
    else if (t->state == SL_PENDING && sl_restored_check(t->func)) {
        frames = sl_restored_frames(t->func); /* unpickled, not run since */
    }
    else if (t->state == SL_PENDING) {
        frames = Py_BuildValue("(OOO)", t->func, t->args, t->kwargs ? t->kwargs : Py_None);
    }
    else {
        frames = PyTuple_New(0);
    }
    if (frames == NULL) {
        return NULL;
    }
    /* The handled exception goes without its traceback, which names live frames. */
    PyObject *exc = t->state == SL_STARTED && t->pystate.exc_value ? t->pystate.exc_value : NULL;
    PyObject *exc_type = exc ? (PyObject *)Py_TYPE(exc) : Py_None;
    PyObject *r =
        Py_BuildValue("O()(iOiNOOOO)", Py_TYPE(t), flags, t->tempval ? t->tempval : Py_None, 0,
                      frames, exc_type, exc ? exc : Py_None, Py_None, Py_None);
    SlThread *th = sl_thread_get();
    if (r != NULL && th != NULL && (th->pickle_flags & 1) && sl_tasklet_alive(t)) {
        /* PICKLEFLAGS_PRESERVE_TRACING_STATE: its trace and profile functions, appended */
        PyObject *trace = PyObject_GetAttrString((PyObject *)t, "trace_function");
        PyObject *profile =
            trace ? PyObject_GetAttrString((PyObject *)t, "profile_function") : NULL;
        PyObject *hooks = profile ? Py_BuildValue("((NN))", trace, profile) : NULL;
        PyObject *longer = hooks ? PySequence_Concat(PyTuple_GET_ITEM(r, 2), hooks) : NULL;
        Py_XDECREF(hooks);
        if (longer == NULL) {
            if (profile == NULL) {
                Py_XDECREF(trace);
            }
            Py_DECREF(r);
            return NULL;
        }
        Py_SETREF(r, Py_BuildValue("OON", PyTuple_GET_ITEM(r, 0), PyTuple_GET_ITEM(r, 1), longer));
    }
    return r;
}

static PyObject *
tasklet_reduce_ex(SlTasklet *t, PyObject *proto)
{
    return tasklet_reduce(t, NULL);
}

/* An unpickled started tasklet: it runs its restored frames. Also a tasklet that its
   channel's state already queued there (pickle order does not matter). */
static PyObject *
restore_started(SlTasklet *t, PyObject *frames)
{
    if (t->state != SL_NEW || t->is_main || sl_owner(t) == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "frames can only be restored into a new tasklet");
        return NULL;
    }
    PyObject *restored = sl_frames_restore(frames);
    if (restored == NULL) {
        return NULL;
    }
    Call c = {NULL, NULL, NULL, NULL};
    if (prepare_call(&c, restored, NULL, NULL) < 0) {
        forget_call(&c);
        Py_DECREF(restored);
        return NULL;
    }
    Py_DECREF(restored);
    SlRefs old = {NULL, 0, 0};
    sl_refs_add(&old, t->func);
    sl_refs_add(&old, t->args);
    sl_refs_add(&old, t->kwargs);
    sl_refs_add(&old, t->pystate.context);
    t->func = t->args = t->kwargs = t->pystate.context = NULL;
    install_call(t, &c);
    sl_refs_release(&old);
    return Py_NewRef(t);
}

static PyObject *
tasklet_setstate(SlTasklet *t, PyObject *state)
{
    int flags, nesting;
    PyObject *tempval, *call, *e1, *e2, *e3, *e4, *hooks = NULL;
    if (!PyArg_ParseTuple(state, "iOiOOOOO|O!:__setstate__", &flags, &tempval, &nesting, &call, &e1,
                          &e2, &e3, &e4, &PyTuple_Type, &hooks)) {
        return NULL;
    }
    if (hooks != NULL && PyTuple_GET_SIZE(hooks) != 2) {
        PyErr_SetString(PyExc_ValueError, "bad tracing state");
        return NULL;
    }
    if (!PyTuple_Check(call)) {
        PyErr_SetString(PyExc_ValueError, "bad tasklet state");
        return NULL;
    }
    PyObject *r;
    if (sl_frames_are_started(call)) {
        r = restore_started(t, call);
    }
    else if (PyTuple_GET_SIZE(call) == 3) {
        r = do_bind(t, PyTuple_GET_ITEM(call, 0), PyTuple_GET_ITEM(call, 1),
                    PyTuple_GET_ITEM(call, 2));
    }
    else if (PyTuple_GET_SIZE(call) == 0) {
        r = Py_NewRef(t);
    }
    else {
        PyErr_SetString(PyExc_ValueError, "bad tasklet state");
        return NULL;
    }
    if (r == NULL) {
        return NULL;
    }
    Py_DECREF(r);
    Py_XSETREF(t->tempval, tempval == Py_None ? NULL : Py_NewRef(tempval));
    t->atomic = (flags & 4) != 0;
    t->ignore_nesting = (flags & 8) != 0;
    t->block_trap = (flags & 32) != 0;
    if (hooks != NULL && sl_tasklet_alive(t) &&
        (PyObject_SetAttrString((PyObject *)t, "trace_function", PyTuple_GET_ITEM(hooks, 0)) < 0 ||
         PyObject_SetAttrString((PyObject *)t, "profile_function", PyTuple_GET_ITEM(hooks, 1)) <
             0)) {
        return NULL;
    }
    return Py_NewRef(t);
}

/* ---- attributes ---------------------------------------------------------------------- */

static PyObject *
get_alive(SlTasklet *t, void *c)
{
    return PyBool_FromLong(sl_tasklet_alive(t));
}

static PyObject *
get_scheduled(SlTasklet *t, void *c)
{
    return PyBool_FromLong(sl_owner(t) != NULL && sl_tasklet_scheduled(t));
}

static PyObject *
get_blocked(SlTasklet *t, void *c)
{
    return PyBool_FromLong(t->channel != NULL);
}

static PyObject *
get_paused(SlTasklet *t, void *c)
{
    return PyBool_FromLong(sl_tasklet_alive(t) && !sl_tasklet_scheduled(t));
}

/* Nesting level 0, and a started tasklet must wait in a Python frame of its own (one that
   waits in the C function it was started with has nothing to resume). */
static PyObject *
get_restorable(SlTasklet *t, void *c)
{
    if (sl_unrestorable_nesting(t) > 0) {
        Py_RETURN_FALSE;
    }
    if (t->state == SL_STARTED && !is_current(t) && sl_owner(t) == sl_thread_get()) {
        PyObject *f = sl_pystate_frame(PyThreadState_Get(), &t->pystate);
        if (f == NULL) {
            if (PyErr_Occurred()) {
                return NULL;
            }
            Py_RETURN_FALSE;
        }
        Py_DECREF(f);
    }
    Py_RETURN_TRUE;
}

static PyObject *
get_nesting_level(SlTasklet *t, void *c)
{
    return PyLong_FromLong(sl_nesting_level(t));
}

static PyObject *
get_is_main(SlTasklet *t, void *c)
{
    return PyBool_FromLong(t->is_main && sl_owner(t) != NULL);
}

static PyObject *
get_is_current(SlTasklet *t, void *c)
{
    return PyBool_FromLong(is_current(t));
}

/* next/prev: neighbours in the run queue (wrapping) or a channel queue (None at the ends). */
static PyObject *
get_next(SlTasklet *t, void *c)
{
    return Py_NewRef(t->next ? (PyObject *)t->next : Py_None);
}

static PyObject *
get_prev(SlTasklet *t, void *c)
{
    return Py_NewRef(t->prev ? (PyObject *)t->prev : Py_None);
}

static PyObject *
get_tempval(SlTasklet *t, void *c)
{
    return Py_NewRef(t->tempval ? t->tempval : Py_None);
}

static int
set_tempval(SlTasklet *t, PyObject *v, void *c)
{
    Py_XSETREF(t->tempval, v == NULL || v == Py_None ? NULL : Py_NewRef(v));
    return 0;
}

static PyObject *
get_atomic(SlTasklet *t, void *c)
{
    return PyBool_FromLong(t->atomic);
}

static PyObject *
get_ignore_nesting(SlTasklet *t, void *c)
{
    return PyBool_FromLong(t->ignore_nesting);
}

static PyObject *
get_block_trap(SlTasklet *t, void *c)
{
    return PyBool_FromLong(t->block_trap);
}

static int
set_block_trap(SlTasklet *t, PyObject *v, void *c)
{
    if (v == NULL) {
        PyErr_SetString(PyExc_TypeError, "block_trap cannot be deleted");
        return -1;
    }
    int on = sl_int_flag(v, "block_trap must be set to a bool or integer");
    if (on < 0) {
        return -1;
    }
    t->block_trap = (uint8_t)on;
    return 0;
}

static PyObject *
get_thread_id(SlTasklet *t, void *c)
{
    if (sl_owner(t) == NULL) {
        return PyLong_FromLong(-1);
    }
    return PyLong_FromUnsignedLong(t->thread->thread_id);
}

static PyObject *
get_frame(SlTasklet *t, void *c)
{
    if (t->state != SL_STARTED || sl_owner(t) == NULL) {
        Py_RETURN_NONE;
    }
    SlThread *th = sl_thread_peek();
    if (t->thread != th) {
        Py_RETURN_NONE; /* running in another thread: not inspectable from here yet */
    }
    PyObject *f = sl_pystate_frame(th->tstate, th->current == t ? NULL : &t->pystate);
    return f ? f : Py_NewRef(Py_None);
}

static PyObject *
get_recursion_depth(SlTasklet *t, void *c)
{
    if (t->state != SL_STARTED || sl_owner(t) == NULL) {
        return PyLong_FromLong(0);
    }
    if (is_current(t)) {
        if (t->thread != sl_thread_peek()) {
            return PyLong_FromLong(0); /* running in another thread: not inspectable yet */
        }
        return PyLong_FromLong(sl_pystate_recursion_depth(PyThreadState_Get(), &t->pystate, 1));
    }
    return PyLong_FromLong(sl_pystate_recursion_depth(NULL, &t->pystate, 0));
}

static PyObject *
get_channel(SlTasklet *t, void *c)
{
    return Py_NewRef(t->channel ? (PyObject *)t->channel : Py_None);
}

static PyObject *
get_stack_bytes(SlTasklet *t, void *c)
{
    return PyLong_FromSize_t(t->stack.sp ? t->stack.size : 0);
}

static PyObject *
get_cstate(SlTasklet *t, void *c)
{
    Py_RETURN_NONE; /* compat: no separate C-stack object here */
}

/* Trace and profile functions follow the thread for now; per-tasklet tracing state comes
   with the debugging work. These keep the spec's errors for tasklets that are not alive. */
static PyObject *
call_sys(const char *name, PyObject *arg)
{
    PyObject *sys = PyImport_ImportModule("sys");
    if (sys == NULL) {
        return NULL;
    }
    PyObject *r =
        arg ? PyObject_CallMethod(sys, name, "O", arg) : PyObject_CallMethod(sys, name, NULL);
    Py_DECREF(sys);
    return r;
}

static PyObject *
get_trace_hook(SlTasklet *t, void *profile)
{
    int i = profile ? 1 : 0;
    if (is_current(t)) {
        if (sl_owner(t) == sl_thread_peek()) {
            return call_sys(profile ? "getprofile" : "gettrace", NULL);
        }
        PyThreadState *ts = sl_owner(t)->tstate; /* running in another thread */
        return Py_NewRef(i ? (ts->c_profileobj ? ts->c_profileobj : Py_None)
                           : (ts->c_traceobj ? ts->c_traceobj : Py_None));
    }
    if (t->hooks_pending & (1 << i)) {
        return Py_NewRef(t->new_hooks[i]);
    }
    PyObject *saved = i ? t->pystate.profileobj : t->pystate.traceobj;
    return Py_NewRef(saved ? saved : Py_None);
}

void
sl_tasklet_apply_hooks(SlTasklet *t)
{
    for (int i = 0; i < 2; i++) {
        if (!(t->hooks_pending & (1 << i))) {
            continue;
        }
        t->hooks_pending &= (uint8_t) ~(1 << i);
        PyObject *f = t->new_hooks[i];
        t->new_hooks[i] = NULL;
        PyObject *r = call_sys(i ? "setprofile" : "settrace", f);
        if (r == NULL) {
            sl_pystate_write_unraisable("while installing a tasklet's trace function",
                                        (PyObject *)t);
        }
        Py_XDECREF(r);
        Py_DECREF(f);
    }
}

static int
set_trace_hook(SlTasklet *t, PyObject *v, void *profile)
{
    if (v == NULL) {
        PyErr_SetString(PyExc_TypeError, "cannot delete a tasklet's trace or profile function");
        return -1;
    }
    if (!sl_tasklet_alive(t)) {
        if (v == Py_None) {
            return 0;
        }
        PyErr_SetString(PyExc_RuntimeError, "tasklet is not alive");
        return -1;
    }
    if (is_current(t) && sl_owner(t) != sl_thread_peek()) {
        PyErr_Format(PyExc_RuntimeError,
                     "You cannot set the %s function of the current tasklet of another thread",
                     profile ? "profile" : "trace");
        return -1;
    }
    if (!is_current(t)) {
        /* installed by sys.settrace()/setprofile() as soon as the tasklet runs again */
        int i = profile ? 1 : 0;
        Py_XSETREF(t->new_hooks[i], Py_NewRef(v));
        t->hooks_pending |= (uint8_t)(1 << i);
        return 0;
    }
    PyObject *r = call_sys(profile ? "setprofile" : "settrace", v);
    Py_XDECREF(r);
    return r ? 0 : -1;
}

static PyGetSetDef tasklet_getsets[] = {
    {"alive", (getter)get_alive, NULL, "has frames (set up or running) and a live thread"},
    {"scheduled", (getter)get_scheduled, NULL, "in the run queue or a channel queue"},
    {"blocked", (getter)get_blocked, NULL, "waiting in a channel queue"},
    {"paused", (getter)get_paused, NULL, "alive but in no queue"},
    {"restorable", (getter)get_restorable, NULL, "no C state between its start and its frames"},
    {"nesting_level", (getter)get_nesting_level, NULL, "C-level interpreter re-entries"},
    {"is_main", (getter)get_is_main, NULL, "the main tasklet of its thread"},
    {"is_current", (getter)get_is_current, NULL, "the running tasklet of its thread"},
    {"next", (getter)get_next, NULL, "next tasklet in the same queue"},
    {"prev", (getter)get_prev, NULL, "previous tasklet in the same queue"},
    {"tempval", (getter)get_tempval, (setter)set_tempval, "value for the next resume"},
    {"atomic", (getter)get_atomic, NULL, "never preempted while set"},
    {"ignore_nesting", (getter)get_ignore_nesting, NULL, "preemptible even with C state"},
    {"block_trap", (getter)get_block_trap, (setter)set_block_trap,
     "blocking channel operations raise RuntimeError"},
    {"thread_id", (getter)get_thread_id, NULL, "ident of the owning thread, -1 if it ended"},
    {"frame", (getter)get_frame, NULL, "innermost frame, None if not running"},
    {"recursion_depth", (getter)get_recursion_depth, NULL, "Python call depth"},
    {"trace_function", (getter)get_trace_hook, (setter)set_trace_hook, NULL, NULL},
    {"profile_function", (getter)get_trace_hook, (setter)set_trace_hook, NULL, (void *)1},
    {"cstate", (getter)get_cstate, NULL, NULL},
    {"_stack_bytes", (getter)get_stack_bytes, NULL, "bytes of C stack saved while suspended"},
    {"_channel", (getter)get_channel, NULL, "the channel it waits on"},
    {NULL},
};

static PyMethodDef tasklet_methods[] = {
    {"bind", (PyCFunction)(void (*)(void))tasklet_bind, METH_VARARGS | METH_KEYWORDS,
     "bind(func=None, args=None, kwargs=None) -> self"},
    {"setup", (PyCFunction)(void (*)(void))tasklet_setup, METH_VARARGS | METH_KEYWORDS,
     "setup(*args, **kwargs) -> self: call func(*args, **kwargs) when the tasklet runs"},
    {"insert", (PyCFunction)tasklet_insert, METH_NOARGS, "append to the run queue -> self"},
    {"remove", (PyCFunction)tasklet_remove, METH_NOARGS, "take out of the run queue -> self"},
    {"run", (PyCFunction)(void (*)(void))tasklet_run, METH_FASTCALL, "switch to it now"},
    {"switch", (PyCFunction)(void (*)(void))tasklet_switch, METH_FASTCALL,
     "switch to it now and pause the caller"},
    {"kill", (PyCFunction)(void (*)(void))tasklet_kill, METH_FASTCALL | METH_KEYWORDS,
     "kill(pending=False): raise TaskletExit in it"},
    {"throw", (PyCFunction)(void (*)(void))tasklet_throw, METH_FASTCALL | METH_KEYWORDS,
     "throw(exc, val=None, tb=None, pending=False)"},
    {"raise_exception", (PyCFunction)(void (*)(void))tasklet_raise_exception, METH_FASTCALL,
     "raise_exception(exc_class, *args)"},
    {"set_atomic", (PyCFunction)tasklet_set_atomic, METH_O, "set_atomic(flag) -> old flag"},
    {"set_ignore_nesting", (PyCFunction)tasklet_set_ignore_nesting, METH_O,
     "set_ignore_nesting(flag) -> old flag"},
    {"bind_thread", (PyCFunction)(void (*)(void))tasklet_bind_thread, METH_FASTCALL,
     "bind_thread(thread_id=-1)"},
    {"__reduce__", (PyCFunction)tasklet_reduce, METH_NOARGS, NULL},
    {"__reduce_ex__", (PyCFunction)tasklet_reduce_ex, METH_O, NULL},
    {"__setstate__", (PyCFunction)tasklet_setstate, METH_O, NULL},
    {NULL},
};

/* ---- lifetime --------------------------------------------------------------------- */

static int
is_suspended(SlTasklet *t)
{
    return t->state == SL_STARTED && !t->is_main && !is_current(t);
}

static int
tasklet_traverse(SlTasklet *t, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(t));
    Py_VISIT(t->tempval);
    Py_VISIT(t->func);
    Py_VISIT(t->args);
    Py_VISIT(t->kwargs);
    Py_VISIT(t->new_hooks[0]);
    Py_VISIT(t->new_hooks[1]);
    if (is_suspended(t)) {
        return sl_pystate_traverse(&t->pystate, visit, arg);
    }
    Py_VISIT(t->pystate.context); /* the copy a tasklet that has not started will run in */
    return 0;
}

static int
tasklet_clear(SlTasklet *t)
{
    if (t->state == SL_STARTED && !is_suspended(t)) {
        Py_CLEAR(t->tempval); /* running (or main): its frames are not ours to drop */
        return 0;
    }
    SlRefs old = {NULL, 0, 0};
    empty_tasklet(t, &old);
    sl_refs_release(&old);
    return 0;
}

/* An unreachable started tasklet is killed: TaskletExit is raised in it so that its
   finally blocks run (see sl_kill_unreachable). */
static void
tasklet_finalize(SlTasklet *t)
{
    SlThread *th = sl_thread_peek();
    if (!is_suspended(t) || th == NULL || t->thread != th || sl_pystate_finalizing()) {
        return;
    }
    PyObject *saved = sl_pystate_fetch_error();
    sl_kill_unreachable(th, t);
    sl_pystate_restore_error(saved);
}

static void
tasklet_dealloc(SlTasklet *t)
{
    PyTypeObject *tp = Py_TYPE(t);
    if (is_suspended(t)) {
        if (PyObject_CallFinalizerFromDealloc((PyObject *)t) < 0) {
            return; /* resurrected */
        }
    }
    PyObject_GC_UnTrack(t);
    if (t->weakreflist != NULL) {
        PyObject_ClearWeakRefs((PyObject *)t);
    }
    /* No queue holds it (it would hold a reference), so nothing but its own state is left. */
    SlRefs old = {NULL, 0, 0};
    empty_tasklet(t, &old);
    sl_refs_release(&old);
    if (t->thread != NULL) {
        sl_thread_decref(t->thread);
    }
    tp->tp_free(t);
    Py_DECREF(tp);
}

static PyObject *
tasklet_call(SlTasklet *t, PyObject *args, PyObject *kwds)
{
    return tasklet_setup(t, args, kwds);
}

static PyMemberDef tasklet_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(SlTasklet, weakreflist), READONLY},
    {NULL},
};

static PyType_Slot tasklet_slots[] = {
    {Py_tp_doc, "tasklet(func=None, args=None, kwargs=None)\n\n"
                "A microthread. tasklet(func)(*args) queues func(*args) to run."},
    {Py_tp_new, tasklet_new},
    {Py_tp_init, tasklet_init},
    {Py_tp_call, tasklet_call},
    {Py_tp_dealloc, tasklet_dealloc},
    {Py_tp_finalize, tasklet_finalize},
    {Py_tp_traverse, tasklet_traverse},
    {Py_tp_clear, tasklet_clear},
    {Py_tp_methods, tasklet_methods},
    {Py_tp_getset, tasklet_getsets},
    {Py_tp_members, tasklet_members},
    {0, NULL},
};

PyType_Spec sl_tasklet_spec = {
    .name = "_stackless.tasklet",
    .basicsize = sizeof(SlTasklet),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .slots = tasklet_slots,
};
