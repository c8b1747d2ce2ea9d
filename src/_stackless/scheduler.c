/* The per-thread scheduler; see scheduler.h.
 *
 * Run queue: a circular doubly linked list through SlTasklet.next/prev whose head is the
 * running tasklet, so "schedule" is head = head->next and appending means inserting just
 * before the head. A tasklet that gives up the CPU never drops its own reference: the
 * reference travels with the switch and the next tasklet to run releases it, so a tasklet
 * that nobody references any more is finalised (killed) only once it is off the CPU.
 */
#include "scheduler.h"

#include "channel.h"
#include "module.h"
#include "pickling.h"
#include "preempt.h"
#include "switch/switch.h"

#include <pthread.h>
#include <pythread.h>
#include <stdint.h>
#include <string.h>

static _Thread_local SlThread *sl_tls;

/* The schedulers of the interpreter's live threads (changed and read under the GIL). */
static SlThread *sl_threads;

/* ---- thread state ----------------------------------------------------------------- */

SlThread *
sl_thread_peek(void)
{
    return sl_tls;
}

SlThread *
sl_thread_find(unsigned long id)
{
    for (SlThread *th = sl_threads; th != NULL; th = th->next_thread) {
        if (th->thread_id == id) {
            return th;
        }
    }
    return NULL;
}

void
sl_thread_incref(SlThread *th)
{
    th->nrefs++;
}

void
sl_thread_decref(SlThread *th)
{
    if (--th->nrefs == 0) {
        if (th->wake_lock != NULL) {
            PyThread_free_lock(th->wake_lock);
        }
        PyMem_RawFree(th->watchdogs);
        PyMem_RawFree(th->kills);
        PyMem_RawFree(th);
    }
}

#define SL_THREAD_KEY "_stackless.thread"

/* The thread state's dictionary is cleared when the thread ends: a capsule in it tells. */
static void
thread_capsule_gone(PyObject *capsule)
{
    SlThread *th = PyCapsule_GetPointer(capsule, SL_THREAD_KEY);
    if (th != NULL) {
        sl_thread_end(th);
    }
    else {
        PyErr_Clear();
    }
}

static int
watch_thread_end(SlThread *th)
{
    PyObject *dict = PyThreadState_GetDict();
    if (dict == NULL) {
        return 0; /* no dictionary, no notice: its tasklets will look alive after it ends */
    }
    PyObject *capsule = PyCapsule_New(th, SL_THREAD_KEY, thread_capsule_gone);
    if (capsule == NULL) {
        return -1;
    }
    int r = PyDict_SetItemString(dict, SL_THREAD_KEY, capsule);
    Py_DECREF(capsule);
    return r;
}

/* In the child of a fork only the forking thread lives on: the other schedulers' threads
   are gone without a word. Runs before any Python code in the child. */
static void
forget_other_threads_after_fork(void)
{
    SlThread **p = &sl_threads;
    while (*p != NULL) {
        SlThread *th = *p;
        if (th == sl_tls) {
            p = &th->next_thread;
            continue;
        }
        *p = th->next_thread;
        th->next_thread = NULL;
        th->dead = 1;
        th->sleeping = 0;
    }
}

SlThread *
sl_thread_get(void)
{
    SlThread *th = sl_tls;
    if (th != NULL) {
        return th;
    }
    static int fork_handler_installed;
    if (!fork_handler_installed) {
        fork_handler_installed = pthread_atfork(NULL, NULL, forget_other_threads_after_fork) == 0;
    }
    th = PyMem_RawCalloc(1, sizeof(SlThread));
    if (th == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    th->tstate = PyThreadState_Get();
    th->thread_id = PyThread_get_thread_ident();
    th->nrefs = 1; /* the thread's own */
    th->pickle_flags = sl_module->pickle_flags_default;
    th->wake_lock = PyThread_allocate_lock();
    if (th->wake_lock == NULL) {
        PyMem_RawFree(th);
        PyErr_NoMemory();
        return NULL;
    }
    PyThread_acquire_lock(th->wake_lock, WAIT_LOCK);
    /* No collection while the main tasklet is made: a finalizer asking for this thread's
       scheduler would find it half built. */
    int gc_was_enabled = PyGC_Disable();
    SlTasklet *main = sl_tasklet_new_main(th);
    if (gc_was_enabled) {
        PyGC_Enable();
    }
    if (main == NULL) {
        sl_thread_decref(th);
        return NULL;
    }
    th->main = main;
    th->current = main;
    sl_rq_append(th, main);
    sl_tls = th;
    th->next_thread = sl_threads;
    sl_threads = th;
    if (watch_thread_end(th) < 0) {
        sl_pystate_write_unraisable("while watching for the end of a thread", NULL);
    }
    if (sl_module != NULL && sl_module->schedule_callback != NULL) {
        PyObject *args[2] = {Py_None, (PyObject *)main};
        sl_run_callback(th, sl_module->schedule_callback, args, 2, "in the schedule callback");
    }
    return th;
}

/* ---- run queue -------------------------------------------------------------------- */

void
sl_rq_append(SlThread *th, SlTasklet *t)
{
    Py_INCREF(t);
    SlTasklet *h = th->head;
    if (h == NULL) {
        t->next = t->prev = t;
        th->head = t;
    }
    else {
        t->prev = h->prev;
        t->next = h;
        h->prev->next = t;
        h->prev = t;
    }
    t->in_runqueue = 1;
    th->runcount++;
}

void
sl_rq_insert_after(SlThread *th, SlTasklet *pos, SlTasklet *t)
{
    Py_INCREF(t);
    t->prev = pos;
    t->next = pos->next;
    pos->next->prev = t;
    pos->next = t;
    t->in_runqueue = 1;
    th->runcount++;
}

void
sl_rq_unlink(SlThread *th, SlTasklet *t)
{
    if (t->next == t) {
        th->head = NULL;
    }
    else {
        t->prev->next = t->next;
        t->next->prev = t->prev;
        if (th->head == t) {
            th->head = t->next;
        }
    }
    t->next = t->prev = NULL;
    t->in_runqueue = 0;
    th->runcount--;
}

static inline SlTasklet *
innermost_watchdog(SlThread *th)
{
    return th->nwatchdogs ? th->watchdogs[th->nwatchdogs - 1] : th->main;
}

static inline int
is_floating(SlTasklet *t)
{
    return sl_tasklet_alive(t) && !t->in_runqueue && t->channel == NULL;
}

static int gc_forbids_switch(SlThread *th);
static int interruptible(SlThread *th, SlTasklet *cur);
static void start_slice(SlThread *th, long long min_ns);
static int slice_over(SlThread *th);
static PyObject *interrupt(SlThread *th, SlTasklet *cur, int hard);

int
sl_check_switch(SlThread *th)
{
    if (gc_forbids_switch(th)) {
        PyErr_SetString(PyExc_RuntimeError,
                        "cannot switch tasklets during a garbage collection that runs inside a "
                        "tasklet");
        return -1;
    }
    if (th->in_callback) {
        PyErr_SetString(PyExc_RuntimeError,
                        "cannot switch tasklets inside a schedule or channel callback");
        return -1;
    }
    if (th->switch_trap) {
        PyErr_SetString(PyExc_RuntimeError, "switch_trap");
        return -1;
    }
    return 0;
}

PyObject *
sl_resume_value(SlTasklet *t)
{
    PyObject *v = t->tempval;
    t->tempval = NULL;
    if (v == NULL) {
        Py_RETURN_NONE;
    }
    if (sl_bomb_check(v)) {
        sl_bomb_explode(v);
        Py_DECREF(v);
        return NULL;
    }
    return v;
}

void
sl_run_callback(SlThread *th, PyObject *callback, PyObject *const *args, size_t n,
                const char *where)
{
    /* The guard stays up until the result is gone and any error is reported: a __del__
       run by either must not switch tasklets under the scheduler's half-done bookkeeping. */
    Py_INCREF(callback);
    th->in_callback++;
    PyObject *r = PyObject_Vectorcall(callback, args, n, NULL);
    if (r == NULL) {
        sl_pystate_write_unraisable(where, callback);
    }
    Py_XDECREF(r);
    th->in_callback--;
    Py_DECREF(callback);
}

/* Whether a tasklet may be switched to right now (no exception set either way). */
static int
can_switch(SlThread *th)
{
    return !th->in_callback && !th->switch_trap && !gc_forbids_switch(th);
}

/* ---- the switch ------------------------------------------------------------------- */

static void tasklet_main(void *arg);

/* The first switch of a thread goes from its main tasklet to a new one: from now on every
   tasklet runs below a base a little deeper than main is now, so that main at its usual
   depth, and whatever it keeps on its stack, stays above all tasklets' stacks (a garbage
   collection's working lists, for one; see sl_gc_started). The headroom is small next to
   the thread's stack, and taken from what the thread has left. */
#define SL_BASE_HEADROOM (64 * 1024)

__attribute__((noinline, cold)) static void
choose_stack_base(SlThread *th)
{
    char here;
    char *sp = &here;
    size_t headroom = SL_BASE_HEADROOM;
    pthread_attr_t attr;
    void *low = NULL;
    size_t size = 0;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        if (pthread_attr_getstack(&attr, &low, &size) != 0 || (char *)low >= sp) {
            low = NULL;
            size = 0;
        }
        pthread_attr_destroy(&attr);
    }
    if (size && headroom > (size_t)(sp - (char *)low) / 8) {
        headroom = (size_t)(sp - (char *)low) / 8;
    }
    th->stack_base = (char *)(((uintptr_t)(sp - headroom)) & ~(uintptr_t)15);
    th->c_depth_base = sl_pystate_c_depth(th->tstate);
    th->stack_used = size ? (double)((char *)low + size - th->stack_base) / (double)size : 0.0;
}

/* Runs on the outgoing stack: keep its bytes, then say where the target's stack is. */
static void *
on_save(void *ctx, void *sp)
{
    SlThread *th = ctx;
    SlTasklet *from = th->switch_from;
    if (th->switch_ends) {
        sl_stack_abandon(&from->stack, sp, th->stack_base);
    }
    else if (sl_stack_save(&from->stack, sp, th->stack_base) < 0) {
        Py_FatalError("stackless: out of memory while saving a tasklet's stack");
    }
    SlTasklet *to = th->switch_to;
    return to->stack.sp != NULL ? to->stack.sp : th->stack_base;
}

/* Runs on the target's stack, just below its saved stack pointer (or the stack base). */
static void *
on_restore(void *ctx, void *sp)
{
    (void)sp;
    SlThread *th = ctx;
    SlTasklet *to = th->switch_to;
    if (to->stack.sp == NULL) {
        sl_pystate_run_new(th->tstate, &to->pystate, to->func, th->c_depth_base, th->stack_used,
                           tasklet_main, th);
    }
    sl_stack_restore(&to->stack);
    return NULL;
}

/* Called by whichever tasklet runs after a switch: finish what the previous one left. */
static void
after_switch(SlThread *th)
{
    SlTasklet *ended = th->ended;
    PyObject *release = th->release;
    th->ended = NULL;
    th->release = NULL;
    if (ended != NULL) {
        sl_stack_release(&ended->stack);
        sl_forget_started(ended);
        ended->state = SL_NEW;
        sl_pystate_release(&ended->pystate);
        Py_DECREF(ended);
    }
    Py_XDECREF(release);
    if (th->nkills > 0) {
        sl_run_queued_kills(th);
    }
}

/* Cold paths stay out of line so that they do not widen the frames every suspended
   tasklet keeps on its saved stack. */
__attribute__((noinline, cold)) static void
call_schedule_callback(SlThread *th, SlTasklet *prev, SlTasklet *next)
{
    PyObject *args[2] = {(PyObject *)prev, (PyObject *)next};
    sl_run_callback(th, sl_module->schedule_callback, args, 2, "in the schedule callback");
}

/* Transfer control from the current tasklet to `next`, which must be in the run queue.
   The caller has put the current tasklet where it belongs (run queue, a channel queue,
   floating, or nowhere because it ends); `release` is a reference the next tasklet to run
   drops. Returns when the current tasklet is switched back to; never if it `ends`. */
static void
transfer(SlThread *th, SlTasklet *next, PyObject *release, int ends, const SlCallSite *site)
{
    SlTasklet *prev = th->current;
    th->head = next;
    if (sl_module->schedule_callback != NULL) {
        call_schedule_callback(th, prev, next);
    }
    PyThreadState *ts = th->tstate;
    sl_pystate_save(ts, &prev->pystate, site);
    th->switch_from = prev;
    th->switch_to = next;
    th->switch_ends = ends;
    th->release = release;
    th->ended = ends ? prev : NULL;
    th->current = next;
    if (th->stack_base == NULL) {
        choose_stack_base(th);
    }
    if (th->slice_owner != NULL && !th->slice_total) {
        th->interrupt_pending = 0; /* a new slice for whoever runs next */
        if (next->stack.sp != NULL) {
            start_slice(th, 0); /* (a new tasklet's starts when it has started) */
        }
    }
    sl_switch(th, on_save, on_restore);
    /* We are `prev` again, resumed by some other tasklet's transfer(). */
    int code_outdated = sl_pystate_restore(ts, &prev->pystate);
    after_switch(th);
    if (prev->hooks_pending) {
        sl_tasklet_apply_hooks(prev);
    }
    if (code_outdated) {
        sl_pystate_refresh_instrumentation(ts);
    }
}

void
sl_switch_to(SlThread *th, SlTasklet *next, const SlCallSite *site)
{
    transfer(th, next, NULL, 0, site);
}

/* ---- the life of a tasklet ------------------------------------------------------------ */

static void
remember_started(SlThread *th, SlTasklet *t)
{
    t->started_prev = th->started_last;
    t->started_next = NULL;
    if (th->started_last) {
        th->started_last->started_next = t;
    }
    else {
        th->started_first = t;
    }
    th->started_last = t;
}

void
sl_forget_started(SlTasklet *t)
{
    SlThread *th = t->thread;
    if (th == NULL || (t->started_prev == NULL && th->started_first != t)) {
        return;
    }
    if (t->started_prev) {
        t->started_prev->started_next = t->started_next;
    }
    else {
        th->started_first = t->started_next;
    }
    if (t->started_next) {
        t->started_next->started_prev = t->started_prev;
    }
    else {
        th->started_last = t->started_prev;
    }
    t->started_next = t->started_prev = NULL;
}

/* The text for a watchdog that is woken blocked on a channel when nothing else can run. */
static PyObject *
no_partner_error(SlTasklet *w)
{
    const char *msg = w->blocked > 0 ? "the main tasklet is sending without a receiver available."
                                     : "the main tasklet is receiving without a sender available.";
    PyObject *args = Py_BuildValue("(s)", msg);
    if (args == NULL) {
        return NULL;
    }
    PyObject *bomb = sl_bomb_new(PyExc_RuntimeError, args, NULL);
    Py_DECREF(args);
    return bomb;
}

/* Make w runnable (taking it off its channel if blocked) and give it `bomb` (stolen).
   Returns w's previous tempval, for the caller to release once the operation is complete:
   releasing it may run code that switches. */
static PyObject *
wake_with(SlThread *th, SlTasklet *w, PyObject *bomb)
{
    if (w->channel != NULL) {
        sl_channel_unblock(w);
        sl_rq_append(th, w);
        Py_DECREF(w); /* the channel's reference */
    }
    else if (!w->in_runqueue) {
        sl_rq_append(th, w);
    }
    if (bomb == NULL) {
        return NULL;
    }
    PyObject *old = w->tempval;
    w->tempval = bomb;
    return old;
}

/* Whether a started tasklet of th other than t waits on a channel. */
static int
others_wait_here(SlThread *th, SlTasklet *t)
{
    for (SlTasklet *s = th->started_first; s != NULL; s = s->started_next) {
        if (s != t && s->channel != NULL) {
            return 1;
        }
    }
    return 0;
}

/* The tasklet's function returned (result) or raised (NULL): settle the outcome, pick who
   runs next and leave for good. Runs on the dying tasklet's stack. */
__attribute__((noinline)) static void
end_current(SlThread *th, PyObject *result)
{
    SlTasklet *t = th->current;
    PyObject *bomb = NULL;
    if (th->bomb_waiting == t) {
        th->bomb_waiting = NULL;
        if (result != NULL && t->tempval != NULL) {
            /* killed or thrown into just before its function returned */
            Py_DECREF(result);
            result = sl_resume_value(t);
        }
    }
    if (result != NULL) {
        Py_DECREF(result);
    }
    else if (PyErr_ExceptionMatches(sl_module->TaskletExit) ||
             (PyErr_ExceptionMatches(PyExc_SystemExit) &&
              th->thread_id != sl_module->main_thread_id)) {
        PyErr_Clear();
    }
    else {
        if (sl_module->error_handler != NULL) {
            PyObject *exc = sl_pystate_fetch_error();
            PyObject *tb = PyException_GetTraceback(exc);
            PyObject *args[3] = {(PyObject *)Py_TYPE(exc), exc, tb ? tb : Py_None};
            PyObject *handler = Py_NewRef(sl_module->error_handler);
            PyObject *r = PyObject_Vectorcall(handler, args, 3, NULL);
            Py_DECREF(handler);
            Py_XDECREF(tb);
            Py_DECREF(exc);
            Py_XDECREF(r);
            if (r == NULL && PyErr_ExceptionMatches(sl_module->TaskletExit)) {
                PyErr_Clear(); /* the handler killed the tasklet: it ends quietly */
            }
        }
        if (PyErr_Occurred()) {
            bomb = sl_bomb_from_error();
            if (bomb == NULL) {
                sl_pystate_write_unraisable("while ending a tasklet", (PyObject *)t);
            }
        }
    }
    /* Release what the finished call held while still running as this tasklet: it may run
       finalizers, which may even switch. Then decide without running Python code. */
    Py_CLEAR(t->func);
    Py_CLEAR(t->args);
    Py_CLEAR(t->kwargs);
    Py_CLEAR(t->tempval);
    sl_pystate_drop_hooks(th->tstate);
    SlTasklet *w = innermost_watchdog(th);
    SlTasklet *next = NULL;
    if (bomb == NULL && t->next == t && w->channel != NULL && others_wait_here(th, t) &&
        sl_other_threads_can_help(th)) {
        /* Nothing here can run, but tasklets of this thread wait for other threads: wait
           with them (a signal handler's exception goes to the watchdog). */
        t->state = SL_NEW; /* dead already for anyone who looks meanwhile */
        sl_rq_unlink(th, t);
        next = sl_thread_sleep(th);
        if (next == NULL) {
            bomb = sl_bomb_from_error();
        }
        sl_rq_append(th, t); /* unlinked for good below */
        Py_DECREF(t);        /* (the queue's reference it kept while unlinked) */
    }
    if (next == NULL && bomb == NULL && t->next == t && w->channel != NULL) {
        /* Nothing else can run and the watchdog waits on a channel nobody will serve. */
        bomb = no_partner_error(w);
        if (bomb == NULL) {
            sl_pystate_write_unraisable("while ending a tasklet", (PyObject *)t);
        }
    }
    PyObject *replaced = NULL;
    if (next != NULL) {
        /* woken: run what another thread queued */
    }
    else if (bomb != NULL || t->next == t) {
        /* Deliver the exception to the innermost watchdog at once, or revive it because
           nothing else is runnable. */
        replaced = wake_with(th, w, bomb);
        next = w;
    }
    else {
        next = t->next;
    }
    sl_rq_unlink(th, t);
    /* It is dead from now on, also for a schedule callback running in the last switch. */
    t->state = SL_NEW;
    transfer(th, next, replaced, 1, NULL);
    Py_UNREACHABLE();
}

/* The body of every tasklet but main: runs on a fresh stack at the thread's stack base. */
static void
tasklet_main(void *arg)
{
    SlThread *th = arg;
    SlTasklet *t = th->current;
    /* Started before anything runs here: releasing what the previous tasklet left may run
       finalizers that switch away from this tasklet already. */
    t->state = SL_STARTED;
    remember_started(th, t);
    after_switch(th);
    if (t->hooks_pending) {
        sl_tasklet_apply_hooks(t);
    }
    if (th->slice_owner != NULL && !th->slice_total) {
        /* Its first lines run cold (first calls specialise code, touch fresh memory):
           its first slice is longer, as a Stackless tick count would not see that. */
        start_slice(th, SL_FIRST_SLICE_NS);
    }
    PyObject *tv = t->tempval;
    t->tempval = NULL;
    PyObject *result;
    int restored = sl_restored_check(t->func);
    if (tv != NULL && sl_bomb_check(tv) && !restored) {
        /* thrown into before it ever ran: the function never starts */
        result = sl_bomb_explode(tv);
    }
    else {
        t->in_function = 1;
        /* an unpickled tasklet's frames receive the value (or exception) they waited for */
        result =
            restored ? sl_restored_run(t->func, tv) : PyObject_Call(t->func, t->args, t->kwargs);
        t->in_function = 0;
    }
    Py_XDECREF(tv);
    end_current(th, result);
}

static int
nesting(SlTasklet *t, int restorable)
{
    if (t->state != SL_STARTED || sl_owner(t) == NULL) {
        return 0;
    }
    SlThread *th = t->thread;
    if (th->current == t && th != sl_tls) {
        return 0; /* running in another thread: not inspectable from here yet */
    }
    int n = sl_pystate_c_boundaries(th->tstate, th->current == t ? NULL : &t->pystate, restorable);
    /* the tasklet's own start (main: the interpreter running the program) is no C state */
    n -= t->in_function || t->is_main;
    return n > 0 ? n : 0;
}

int
sl_nesting_level(SlTasklet *t)
{
    return nesting(t, 0);
}

int
sl_unrestorable_nesting(SlTasklet *t)
{
    return nesting(t, 1);
}

/* ---- scheduling operations ----------------------------------------------------------- */

/* schedule_remove() of the last runnable tasklet while the watchdog is blocked and another
   thread may still queue something here: the thread sleeps until it does. */
static PyObject *
remove_and_sleep(SlThread *th, PyObject *retval, const SlCallSite *site)
{
    SlTasklet *cur = th->current;
    if (sl_check_switch(th) < 0) {
        return NULL;
    }
    PyObject *replaced = cur->tempval;
    cur->tempval = Py_NewRef(retval);
    sl_rq_unlink(th, cur); /* the run queue's reference: released by whoever runs next */
    SlTasklet *next = sl_thread_sleep(th);
    if (next == NULL) {
        if (!cur->in_runqueue) { /* a signal handler raised: it runs on */
            sl_rq_append(th, cur);
            Py_DECREF(cur);
        }
        th->head = cur;
        Py_CLEAR(cur->tempval);
        Py_XDECREF(replaced);
        return NULL;
    }
    if (next == cur) {
        Py_DECREF(cur); /* queued again here: the new queue entry holds its own */
    }
    else {
        transfer(th, next, (PyObject *)cur, 0, site);
    }
    Py_XDECREF(replaced);
    return sl_resume_value(cur);
}

PyObject *
sl_schedule(SlThread *th, PyObject *retval, int remove, const SlCallSite *site)
{
    if (sl_safe_point(th) < 0) { /* even with nothing to yield to */
        return NULL;
    }
    SlTasklet *cur = th->current;
    if (th->slice_owner != NULL && cur != th->slice_owner && !remove &&
        (th->interrupt_pending || ((th->slice_soft || th->slice_total) && slice_over(th))) &&
        interruptible(th, cur)) {
        /* Its slice is over (the signal came where it could not interrupt, or, soft or
           totaltimeout, may come late: a loaded machine may run the timer thread late):
           back to the run() that owns the slice. Soft, the tasklet stays scheduled and run()
           returns None; hard, run() returns it, paused. */
        PyObject *replaced = cur->tempval;
        cur->tempval = Py_NewRef(retval);
        PyObject *r = interrupt(th, cur, !th->slice_soft);
        Py_XDECREF(replaced);
        return r;
    }
    SlTasklet *next = cur->next != cur ? cur->next : NULL;
    if (next == NULL && remove) {
        SlTasklet *w = innermost_watchdog(th);
        if (w != cur) {
            if (!is_floating(w)) {
                if (sl_other_threads_can_help(th)) {
                    return remove_and_sleep(th, retval, site);
                }
                PyErr_SetString(PyExc_RuntimeError,
                                "Deadlock: the last runnable tasklet cannot be blocked.");
                return NULL;
            }
            next = w;
        }
    }
    if (next != NULL && sl_check_switch(th) < 0) {
        return NULL;
    }
    PyObject *replaced = cur->tempval; /* released when the operation is complete */
    cur->tempval = Py_NewRef(retval);
    if (next != NULL && remove) {
        sl_rq_unlink(th, cur);
        if (!next->in_runqueue) {
            sl_rq_append(th, next);
        }
        transfer(th, next, (PyObject *)cur, 0, site);
    }
    else if (next != NULL) {
        transfer(th, next, NULL, 0, site);
    }
    Py_XDECREF(replaced);
    return sl_resume_value(cur);
}

static int
push_watchdog(SlThread *th, SlTasklet *t)
{
    if (th->nwatchdogs == th->watchdogs_capacity) {
        Py_ssize_t cap = th->watchdogs_capacity ? th->watchdogs_capacity * 2 : 8;
        SlTasklet **w = PyMem_RawRealloc(th->watchdogs, sizeof(SlTasklet *) * (size_t)cap);
        if (w == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        th->watchdogs = w;
        th->watchdogs_capacity = cap;
    }
    th->watchdogs[th->nwatchdogs++] = (SlTasklet *)Py_NewRef(t);
    return 0;
}

/* W resumed inside run(): pop the watchdog stack down to and including W; inner
   watchdogs popped on the way that nobody scheduled are queued, so their run() returns. */
static void
pop_watchdogs(SlThread *th, SlTasklet *w)
{
    Py_ssize_t i = th->nwatchdogs;
    while (i > 0 && th->watchdogs[i - 1] != w) {
        i--;
    }
    if (i == 0) {
        return; /* someone popped W already */
    }
    while (th->nwatchdogs >= i) {
        SlTasklet *inner = th->watchdogs[--th->nwatchdogs];
        if (inner != w && is_floating(inner)) {
            sl_rq_append(th, inner);
        }
        Py_DECREF(inner);
    }
}

PyObject *
sl_run_watchdog(SlThread *th, long timeout, int flags, const SlCallSite *site)
{
    if (sl_safe_point(th) < 0) {
        return NULL;
    }
    SlTasklet *w = th->current;
    SlTasklet *next = w->next != w ? w->next : NULL;
    if (next != NULL && sl_check_switch(th) < 0) {
        return NULL;
    }
    if (push_watchdog(th, w) < 0) {
        return NULL;
    }
    /* an outer run() with a timeout keeps preempting; this one's timeout does nothing */
    int owns_slice = next != NULL && timeout > 0 && th->slice_owner == NULL;
    if (owns_slice) {
        th->slice_owner = w;
        th->slice_ns = (long long)timeout * SL_TICK_NS;
        if (th->slice_ns < SL_MIN_SLICE_NS) {
            th->slice_ns = SL_MIN_SLICE_NS;
        }
        th->slice_total = (flags & SL_RUN_TOTAL) != 0;
        th->slice_soft = (flags & SL_RUN_SOFT) != 0;
        th->slice_ignore_nesting = (flags & SL_RUN_IGNORE_NESTING) != 0;
        th->interrupt_pending = 0;
        start_slice(th, 0);
    }
    if (next != NULL) {
        sl_rq_unlink(th, w);
        transfer(th, next, (PyObject *)w, 0, site);
    }
    PyObject *interrupted = NULL;
    if (owns_slice) {
        sl_preempt_disarm();
        th->slice_owner = NULL;
        th->interrupt_pending = 0;
        interrupted = (PyObject *)th->interrupted;
        th->interrupted = NULL;
    }
    pop_watchdogs(th, w);
    PyObject *r = sl_resume_value(w);
    if (r == NULL) {
        Py_XDECREF(interrupted);
        return NULL;
    }
    Py_DECREF(r);
    return interrupted != NULL ? interrupted : Py_NewRef(Py_None);
}

/* ---- preemption ----------------------------------------------------------------------- */

/* What slices are measured with: per-tasklet slices start at every switch, so they use the
   cheap monotonic clock (and the handler tells an idle thread from a busy one); the one
   budget of a totaltimeout run is the thread's CPU time. */
static inline long long
slice_clock(SlThread *th)
{
    return th->slice_total ? sl_preempt_cpu_ns() : sl_preempt_now_ns();
}

/* Whether the running tasklet has used up its slice (the timer may not have told yet). */
static int
slice_over(SlThread *th)
{
    long long slice = th->slice_ns > th->slice_min ? th->slice_ns : th->slice_min;
    return slice_clock(th) - th->slice_start >= slice;
}

/* A time slice (or, totaltimeout, the run's budget) starts now; it lasts at least
   min_ns. */
static void
start_slice(SlThread *th, long long min_ns)
{
    th->slice_start = slice_clock(th);
    th->slice_seq++;
    th->slice_min = min_ns;
    sl_preempt_arm(th->slice_ns > min_ns ? th->slice_ns : min_ns);
}

/* Whether the running tasklet may be taken off the CPU where it is now. */
static int
interruptible(SlThread *th, SlTasklet *cur)
{
    return !cur->atomic && !th->switch_trap && !th->in_callback && !gc_forbids_switch(th) &&
           (th->slice_ignore_nesting || cur->ignore_nesting || sl_nesting_level(cur) == 0);
}

/* Take the running tasklet off the CPU and back to the run() that owns the time slice:
   hard, it is removed from the run queue and that run() returns it; soft, it stays
   scheduled and run() returns None. Returns what the tasklet resumes with, later (its
   tempval, which the caller has set). */
static PyObject *
interrupt(SlThread *th, SlTasklet *cur, int hard)
{
    SlTasklet *w = th->slice_owner;
    th->interrupt_pending = 0;
    if (!w->in_runqueue) {
        /* where the interrupted tasklet is: what comes after it runs after run() returns */
        sl_rq_insert_after(th, cur, w);
    }
    if (hard) {
        sl_rq_unlink(th, cur); /* the queue's reference becomes run()'s result */
        Py_XSETREF(th->interrupted, cur);
    }
    transfer(th, w, NULL, 0, NULL);
    return sl_resume_value(cur);
}

/* A hard interrupt of the running tasklet, from between two of its bytecodes. */
static PyObject *
interrupt_running(SlThread *th, SlTasklet *cur)
{
    PyObject *old = cur->tempval;
    cur->tempval = NULL;
    PyObject *r = interrupt(th, cur, 1);
    Py_XDECREF(old);
    return r;
}

PyObject *
sl_preempt_fired(SlThread *th)
{
    if (th == NULL || th->slice_owner == NULL || th->current == th->slice_owner || th->sleeping) {
        Py_RETURN_NONE;
    }
    long long used = slice_clock(th) - th->slice_start;
    long long slice = th->slice_ns > th->slice_min ? th->slice_ns : th->slice_min;
    if (!th->interrupt_pending && used < slice) {
        sl_preempt_arm(slice - used);
        Py_RETURN_NONE;
    }
    if (!th->interrupt_pending && !th->slice_total) {
        /* A per-tasklet slice is measured on the cheap monotonic clock, which also runs
           while the process is descheduled. Ticks are meant as work done: before an
           interrupt the tasklet must be seen using the CPU for a short while more in the
           same slice (one that switches meanwhile was not busy). */
        long long cpu = sl_preempt_cpu_ns();
        if (th->confirm_seq != th->slice_seq || cpu - th->confirm_cpu < SL_CONFIRM_NS / 2) {
            th->confirm_seq = th->slice_seq;
            th->confirm_cpu = cpu;
            sl_preempt_arm(SL_CONFIRM_NS);
            Py_RETURN_NONE;
        }
    }
    SlTasklet *cur = th->current;
    if (th->slice_soft) {
        th->interrupt_pending = 1; /* at its next schedule() */
        Py_RETURN_NONE;
    }
    if (!interruptible(th, cur) || !sl_pystate_at_loop_check(th->tstate)) {
        /* atomic (the atomic section's end asks again), or in a callback, with C state,
           or inside C code that checks for signals itself: look again soon */
        th->interrupt_pending = 1;
        if (!cur->atomic) {
            sl_preempt_arm(SL_PREEMPT_RETRY_NS);
        }
        Py_RETURN_NONE;
    }
    return interrupt_running(th, cur);
}

void
sl_preempt_check(SlThread *th)
{
    if (th != NULL && th->interrupt_pending && th->slice_owner != NULL && !th->slice_soft &&
        th->current != th->slice_owner && !th->current->atomic) {
        sl_preempt_arm(SL_PREEMPT_RETRY_NS); /* soon, at a bytecode boundary */
    }
}

PyObject *
sl_run_tasklet(SlThread *th, SlTasklet *t, int pause_caller, const SlCallSite *site)
{
    SlTasklet *cur = th->current;
    if (sl_check_switch(th) < 0) {
        return NULL;
    }
    if (!t->in_runqueue) {
        sl_rq_append(th, t);
    }
    if (pause_caller) {
        sl_rq_unlink(th, cur);
        transfer(th, t, (PyObject *)cur, 0, site);
    }
    else {
        transfer(th, t, NULL, 0, site);
    }
    return sl_resume_value(cur);
}

/* sl_throw() to another tasklet, except that what the caller finds in its own tempval
   when it resumes stays there. 0, or -1 with an exception if it may not switch now. */
static int
throw_to(SlThread *th, SlTasklet *t, PyObject *bomb, int pending, const SlCallSite *site)
{
    if (!pending && sl_check_switch(th) < 0) {
        return -1;
    }
    PyObject *replaced = wake_with(th, t, Py_NewRef(bomb));
    if (!pending) {
        transfer(th, t, NULL, 0, site);
    }
    Py_XDECREF(replaced);
    return 0;
}

PyObject *
sl_throw(SlThread *th, SlTasklet *t, PyObject *bomb, int pending, const SlCallSite *site)
{
    SlTasklet *cur = th->current;
    if (t == cur) {
        return sl_bomb_explode(bomb);
    }
    if (throw_to(th, t, bomb, pending, site) < 0) {
        return NULL;
    }
    if (pending) {
        Py_RETURN_NONE;
    }
    return sl_resume_value(cur);
}

int
sl_block_would_deadlock(SlThread *th)
{
    SlTasklet *cur = th->current;
    if (cur->next != cur) {
        return 0;
    }
    SlTasklet *w = innermost_watchdog(th);
    return w == cur || !is_floating(w);
}

SlTasklet *
sl_block_leave(SlThread *th)
{
    SlTasklet *cur = th->current;
    SlTasklet *next = cur->next != cur ? cur->next : innermost_watchdog(th);
    sl_rq_unlink(th, cur);
    if (!next->in_runqueue) {
        sl_rq_append(th, next);
    }
    return next;
}

/* ---- between threads ------------------------------------------------------------------ */

static void
wake(SlThread *th)
{
    if (th->sleeping) {
        th->sleeping = 0;
        PyThread_release_lock(th->wake_lock);
    }
}

void
sl_rq_insert_foreign(SlThread *owner, SlTasklet *t)
{
    if (owner->head == NULL) {
        sl_rq_append(owner, t); /* it sleeps: t becomes its current */
    }
    else {
        SlTasklet *cur = owner->current;
        sl_rq_insert_after(owner, cur->in_runqueue ? cur : owner->head, t);
    }
    wake(owner);
}

int
sl_other_threads_can_help(SlThread *th)
{
    PyInterpreterState *interp = PyThreadState_GetInterpreter(th->tstate);
    for (PyThreadState *ts = PyInterpreterState_ThreadHead(interp); ts != NULL;
         ts = PyThreadState_Next(ts)) {
        if (ts == th->tstate) {
            continue;
        }
        SlThread *other = sl_threads;
        while (other != NULL && other->tstate != ts) {
            other = other->next_thread;
        }
        if (other == NULL || !other->sleeping) {
            return 1;
        }
    }
    return 0;
}

SlTasklet *
sl_thread_sleep(SlThread *th)
{
    while (th->head == NULL) {
        th->sleeping = 1;
        PyLockStatus r;
        Py_BEGIN_ALLOW_THREADS r = PyThread_acquire_lock_timed(th->wake_lock, -1, 1);
        Py_END_ALLOW_THREADS if (r == PY_LOCK_INTR)
        {
            if (!th->sleeping) {
                /* woken meanwhile: take the lock back so that it stays held */
                PyThread_acquire_lock(th->wake_lock, WAIT_LOCK);
            }
            th->sleeping = 0;
            if (PyErr_CheckSignals() < 0) {
                return NULL;
            }
        }
    }
    th->sleeping = 0;
    return th->head;
}

static void
unlink_thread(SlThread *th)
{
    for (SlThread **p = &sl_threads; *p != NULL; p = &(*p)->next_thread) {
        if (*p == th) {
            *p = th->next_thread;
            break;
        }
    }
    th->next_thread = NULL;
}

void
sl_thread_end(SlThread *th)
{
    if (th->dead) {
        return;
    }
    PyThreadState *ts = PyThreadState_Get();
    if (ts != th->tstate || sl_pystate_finalizing() || th->current != th->main) {
        /* Ended from elsewhere (the interpreter clears the states of threads it gives
           up on) or during finalisation: no code of its tasklets can run any more. */
        th->dead = 1;
        unlink_thread(th);
        return;
    }
    PyObject *exc = sl_pystate_fetch_error();
    /* Tasklets with C state on this thread's stack cannot outlive it: kill them. */
    if (sl_kill_leftovers(th) < 0) {
        sl_pystate_write_unraisable("while killing the tasklets of an ending thread", NULL);
    }
    th->dead = 1;
    unlink_thread(th);
    /* Whatever is still queued will never run: the run queue lets go of it. */
    SlRefs refs = {NULL, 0, 0};
    while (th->head != NULL) {
        SlTasklet *t = th->head;
        sl_rq_unlink(th, t);
        sl_refs_add(&refs, (PyObject *)t);
    }
    for (Py_ssize_t i = 0; i < th->nwatchdogs; i++) {
        sl_refs_add(&refs, (PyObject *)th->watchdogs[i]);
    }
    th->nwatchdogs = 0;
    if (sl_tls == th) {
        sl_tls = NULL;
    }
    SlTasklet *main = th->main;
    th->main = NULL;
    main->is_main = 0;
    main->state = SL_NEW; /* the thread's own context, which ends now */
    sl_pystate_forget_running(&main->pystate);
    sl_refs_add(&refs, (PyObject *)main);
    sl_refs_release(&refs);
    sl_pystate_restore_error(exc);
    sl_thread_decref(th); /* the thread's own reference */
}

PyObject *
sl_throw_foreign(SlTasklet *t, PyObject *bomb)
{
    SlThread *owner = sl_owner(t);
    if (t->channel != NULL) {
        sl_channel_unblock(t);
        sl_rq_insert_foreign(owner, t);
        Py_DECREF(t); /* the channel's reference */
    }
    else if (!t->in_runqueue) {
        sl_rq_insert_foreign(owner, t);
    }
    else if (owner->current == t) {
        owner->bomb_waiting = t; /* it runs there now: raised at its next safe point */
    }
    PyObject *replaced = t->tempval;
    t->tempval = Py_NewRef(bomb);
    Py_XDECREF(replaced);
    Py_RETURN_NONE;
}

/* ---- dropping a suspended tasklet ------------------------------------------------------ */

void
sl_discard(SlTasklet *t, SlRefs *refs)
{
    SlThread *th = t->thread;
    t->state = SL_NEW;
    sl_forget_started(t);
    if (t->channel != NULL) {
        sl_channel_unblock(t);
        sl_refs_add(refs, (PyObject *)t);
    }
    if (t->in_runqueue && th != NULL) {
        sl_rq_unlink(th, t);
        sl_refs_add(refs, (PyObject *)t);
    }
    for (Py_ssize_t i = 0; th != NULL && i < th->nwatchdogs; i++) {
        if (th->watchdogs[i] == t) {
            memmove(&th->watchdogs[i], &th->watchdogs[i + 1],
                    sizeof(SlTasklet *) * (size_t)(th->nwatchdogs - i - 1));
            th->nwatchdogs--;
            sl_refs_add(refs, (PyObject *)t);
            break;
        }
    }
    sl_stack_release(&t->stack);
    sl_pystate_discard(&t->pystate, refs);
}

int
sl_thread_exists(unsigned long id)
{
    PyObject *ids = sl_pystate_thread_ids();
    if (ids == NULL) {
        return -1;
    }
    PyObject *key = PyLong_FromUnsignedLong(id);
    int found = key ? PySequence_Contains(ids, key) : -1;
    Py_XDECREF(key);
    Py_DECREF(ids);
    return found;
}

/* ---- garbage collection ---------------------------------------------------------------- */

/* CPython's collector links the objects it works on into lists whose heads are locals of
   its C frames, and the objects point back at those heads. A tasklet that runs while such a
   frame lies in the stack region tasklets share would overwrite the heads, and anything it
   does to those objects would corrupt the lists. So if a collection starts near or below
   the stack base, no tasklet may run until it ends: finalisers queue their kills instead,
   and the queue is drained when the collection stops. A collection started by the main
   tasklet at its usual depth is well above the base and may switch freely. */
#define SL_GC_MARGIN (16 * 1024)

/* Whether the running collection announced itself through the hook in gc.callbacks; the
   hook then told its thread whether it collects too close to the base (gc_unsafe). */
static int gc_start_seen;

/* A collection the hook did not announce (the hook was removed, or CPython collects
   without callbacks while it shuts down) could be running in this very tasklet: then only
   the depth of the stack tells, and switching is refused near the base. */
static int
gc_forbids_switch(SlThread *th)
{
    if (!sl_pystate_gc_collecting()) {
        th->gc_unsafe = 0; /* a collection whose "stop" the hook missed */
        gc_start_seen = 0;
        return 0;
    }
    if (th->gc_unsafe) {
        return 1;
    }
    if (gc_start_seen || th->stack_base == NULL) {
        return 0;
    }
    char here;
    return &here < th->stack_base + SL_GC_MARGIN;
}

void
sl_gc_started(void)
{
    SlThread *th = sl_tls;
    gc_start_seen = 1;
    if (th != NULL && th->stack_base != NULL) {
        char here;
        th->gc_unsafe = &here < th->stack_base + SL_GC_MARGIN;
    }
}

/* Kill t now, from wherever the current tasklet is. Its tempval is kept for the operation
   it is in the middle of; but if something was delivered to it meanwhile (it was thrown
   into, or killed, while it waited for t), that wins and is raised when it resumes. */
static void
kill_now(SlThread *th, SlTasklet *t)
{
    SlTasklet *cur = th->current;
    PyObject *kept = cur->tempval;
    cur->tempval = NULL;
    /* It may catch TaskletExit and suspend again; try a few times. */
    for (int attempt = 0;
         attempt < 10 && t->state == SL_STARTED && t != th->current && cur->tempval == NULL;
         attempt++) {
        PyObject *bomb = sl_bomb_new(sl_module->TaskletExit, NULL, NULL);
        int err = bomb ? throw_to(th, t, bomb, 0, NULL) : -1;
        Py_XDECREF(bomb);
        if (err < 0) {
            sl_pystate_write_unraisable("while killing an unreachable tasklet", (PyObject *)t);
            break;
        }
    }
    if (cur->tempval == NULL) {
        cur->tempval = kept;
    }
    else {
        Py_XDECREF(kept);
        th->bomb_waiting = cur; /* for a caller that cannot raise it now */
    }
}

/* A finaliser may run anywhere: inside a collection whose working lists are on this
   tasklet's stack, inside a callback, under the switch trap. It kills at once only when
   it runs well above the stack base (the main tasklet at its usual depth) and nothing
   forbids switching; otherwise the kill waits in a queue for the next safe point. */
void
sl_kill_unreachable(SlThread *th, SlTasklet *t)
{
    char here;
    if (can_switch(th) && th->stack_base != NULL && &here >= th->stack_base + SL_GC_MARGIN) {
        kill_now(th, t);
        return;
    }
    if (th->nkills == th->kills_capacity) {
        Py_ssize_t cap = th->kills_capacity ? th->kills_capacity * 2 : 16;
        SlTasklet **k = PyMem_RawRealloc(th->kills, sizeof(SlTasklet *) * (size_t)cap);
        if (k == NULL) {
            return; /* it will be dropped without running instead */
        }
        th->kills = k;
        th->kills_capacity = cap;
    }
    th->kills[th->nkills++] = (SlTasklet *)Py_NewRef(t); /* resurrected until then */
}

int
sl_run_queued_kills(SlThread *th)
{
    SlTasklet *cur = th->current;
    if (!can_switch(th) || cur->tempval != NULL) {
        return 0;
    }
    PyObject *saved = sl_pystate_fetch_error();
    /* Stop as soon as something is delivered to the current tasklet: it must see that. */
    while (th->nkills > 0 && can_switch(th) && cur->tempval == NULL) {
        SlTasklet *t = th->kills[--th->nkills];
        if (t->state == SL_STARTED && t->thread == th && !t->is_main && t != cur) {
            kill_now(th, t);
        }
        Py_DECREF(t);
    }
    sl_pystate_restore_error(saved);
    return cur->tempval != NULL ? -1 : 0;
}
int
sl_safe_point_slow(SlThread *th)
{
    SlTasklet *cur = th->current;
    /* (the mark outlives a bomb the interrupted operation raised itself: tempval is empty) */
    int delivered = th->bomb_waiting == cur && cur->tempval != NULL;
    th->bomb_waiting = NULL;
    if (!delivered && th->nkills > 0) {
        delivered = sl_run_queued_kills(th) < 0;
    }
    if (!delivered) {
        return 0;
    }
    /* Only a bomb can have been delivered; anything else is a leftover of the tempval
       attribute, which the operation would replace anyway. */
    PyObject *v = sl_resume_value(cur);
    if (v == NULL) {
        return -1;
    }
    Py_DECREF(v);
    return 0;
}

void
sl_gc_stopped(void)
{
    /* The collector's lists are gone by now: the queued kills may run here. */
    SlThread *th = sl_tls;
    if (th != NULL) {
        th->gc_unsafe = 0;
        sl_run_queued_kills(th);
    }
    gc_start_seen = 0;
}

/* ---- interpreter exit --------------------------------------------------------------- */

static int
by_serial(const void *a, const void *b)
{
    uint64_t x = (*(SlTasklet *const *)a)->serial, y = (*(SlTasklet *const *)b)->serial;
    return x < y ? -1 : x > y;
}

int
sl_kill_leftovers(SlThread *th)
{
    sl_run_queued_kills(th);
    Py_ssize_t n = 0;
    for (SlTasklet *t = th->started_first; t; t = t->started_next) {
        n++;
    }
    if (n == 0) {
        return 0;
    }
    SlTasklet **victims = PyMem_Malloc(sizeof(SlTasklet *) * (size_t)n);
    if (victims == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t i = 0;
    for (SlTasklet *t = th->started_first; t && i < n; t = t->started_next) {
        victims[i++] = (SlTasklet *)Py_NewRef(t);
    }
    qsort(victims, (size_t)i, sizeof(SlTasklet *), by_serial);
    PyObject *exit_bomb = sl_bomb_new(sl_module->TaskletExit, NULL, NULL);
    for (Py_ssize_t k = 0; k < i; k++) {
        SlTasklet *t = victims[k];
        if (exit_bomb != NULL && sl_tasklet_alive(t) && t != th->current && t->thread == th) {
            PyObject *r = sl_throw(th, t, exit_bomb, 0, NULL);
            if (r == NULL) {
                sl_pystate_write_unraisable("while killing a tasklet at exit", (PyObject *)t);
            }
            Py_XDECREF(r);
        }
        Py_DECREF(t);
    }
    Py_XDECREF(exit_bomb);
    PyMem_Free(victims);
    return 0;
}
