/* The per-thread scheduler: run queue, watchdogs, and the one function that transfers
 * control from one tasklet to another.
 *
 * Owns: the thread's main and current tasklet, the run queue and runcount, the stack of
 * tasklets waiting in run(), the switch trap, the stack base all tasklets of the thread run
 * below, and every switch. It implements the scheduling rules of the spec (who runs next,
 * reviving the watchdog, the deadlock errors, delivering uncaught exceptions). It does not
 * parse arguments or know channel flags; channels call it to block and to hand over.
 */
#ifndef SL_SCHEDULER_H
#define SL_SCHEDULER_H

#include <Python.h>
#include <pythread.h>

#include "tasklet.h"

typedef struct SlThread {
    PyThreadState *tstate;
    unsigned long thread_id;
    SlTasklet *main;       /* owned */
    SlTasklet *current;    /* the running tasklet */
    SlTasklet *head;       /* first in the run queue: current, unless it is leaving */
    Py_ssize_t runcount;   /* tasklets in the run queue (it owns a reference to each) */
    SlTasklet **watchdogs; /* tasklets inside run(), innermost last (owned) */
    Py_ssize_t nwatchdogs, watchdogs_capacity;
    int switch_trap;
    int pickle_flags;  /* stackless.pickle_flags(): the interpreter's default when made */
    int in_callback;   /* a schedule or channel callback is running: no switching */
    char *stack_base;  /* every tasklet's C stack lies below this address */
    int c_depth_base;  /* the C recursion depth at the stack base: where tasklets start */
    double stack_used; /* fraction of the thread\'s stack in use above the stack base */
    int gc_unsafe;     /* a collection runs with its lists near or below the stack base */
    SlTasklet **kills; /* owned: unreachable tasklets to kill at the next safe point */
    Py_ssize_t nkills, kills_capacity;
    /* a tasklet whose tempval may hold a bomb delivered while it ran, by a kill done where
       nothing could be raised (a finaliser, a collector's hook): see sl_safe_point() */
    SlTasklet *bomb_waiting;
    /* the switch in progress, read by the stack hooks and by the tasklet switched to */
    SlTasklet *switch_from, *switch_to;
    int switch_ends;   /* switch_from has ended and will not resume */
    SlTasklet *ended;  /* owned: to be cleaned up by the next tasklet to run */
    PyObject *release; /* owned: to be released by the next tasklet to run */
    /* started, unfinished tasklets (not main), in start order, for killing at exit */
    SlTasklet *started_first, *started_last;
    uint64_t next_serial;
    /* between threads (all under the GIL) */
    struct SlThread *next_thread; /* the interpreter's schedulers of live threads */
    PyThread_type_lock wake_lock; /* held while nobody has woken the thread */
    int sleeping;     /* nothing runnable: it waits for another thread to queue a tasklet */
    int dead;         /* its OS thread has ended: its tasklets have no thread */
    Py_ssize_t nrefs; /* tasklets that name it, plus one while its thread lives */
    /* preemption: a run(timeout) in progress (main thread only) */
    SlTasklet *slice_owner; /* the watchdog whose run() has the timeout; NULL: none */
    long long slice_ns;     /* each tasklet's time slice (totaltimeout: the whole run's) */
    long long slice_start;  /* when the slice started (monotonic clock) */
    uint64_t slice_seq;     /* counts the slices started */
    uint64_t confirm_seq;   /* the slice seen over once, at CPU time confirm_cpu */
    long long confirm_cpu;
    long long slice_min; /* this slice lasts at least that long */
    uint8_t slice_total, slice_soft, slice_ignore_nesting;
    uint8_t interrupt_pending; /* the slice ended where its tasklet could not be interrupted */
    SlTasklet *interrupted;    /* owned: the tasklet an interrupt took off the CPU, for run() */
} SlThread;

/* The scheduler of the live thread `id`, or NULL (never created there, or ended). */
SlThread *sl_thread_find(unsigned long id);

/* t's thread if it is alive, else NULL. */
static inline SlThread *
sl_owner(SlTasklet *t)
{
    return t->thread != NULL && !t->thread->dead ? t->thread : NULL;
}

/* A tasklet starts or stops naming th (t->thread): SlThreads live while they are named. */
void sl_thread_incref(SlThread *th);
void sl_thread_decref(SlThread *th);

/* Make t (not in any queue; the caller's reference is taken over) runnable in its thread
   `owner`, which is not the calling thread: as its current if it sleeps, else right after
   its current, and wake it. */
void sl_rq_insert_foreign(SlThread *owner, SlTasklet *t);

/* Whether some other thread could make a tasklet of th runnable: one that is not asleep
   in its scheduler. */
int sl_other_threads_can_help(SlThread *th);

/* Nothing of th is runnable: release the GIL and sleep until another thread queues a
   tasklet here. Returns the tasklet to run, or NULL with an exception (a signal handler
   raised). */
SlTasklet *sl_thread_sleep(SlThread *th);

/* throw()/kill() into t, a tasklet of another live thread: the bomb (not stolen) is parked
   in t, which becomes runnable there (or, if it runs there now, raises it at its next
   safe point). Returns None. */
PyObject *sl_throw_foreign(SlTasklet *t, PyObject *bomb);

/* The thread ends: kill its started tasklets, and its tasklets have no thread from now on. */
void sl_thread_end(SlThread *th);

/* The calling thread's scheduler, created on first use (NULL with an exception set). */
SlThread *sl_thread_get(void);

/* The calling thread's scheduler if it exists, else NULL (no exception). */
SlThread *sl_thread_peek(void);

/* --- run queue (the queue owns a reference to each tasklet in it) --- */
void sl_rq_append(SlThread *th, SlTasklet *t);
void sl_rq_insert_after(SlThread *th, SlTasklet *pos, SlTasklet *t);
/* Unlink without dropping the queue's reference: it passes to the caller. */
void sl_rq_unlink(SlThread *th, SlTasklet *t);

/* --- scheduling operations; each returns a new reference or NULL with an exception ---
   `site` tells where the calling Python code made the call that may switch: SL_CALL_SITE()
   of the method's self and arguments, SL_CALLED_BY_FOR_ITER, or NULL (see SlCallSite). It only describes the caller to introspection and the GC. */

/* Raise RuntimeError if the calling thread may not switch now (switch trap, callback). */
int sl_check_switch(SlThread *th);

/* schedule(retval) / schedule_remove(retval). */
PyObject *sl_schedule(SlThread *th, PyObject *retval, int remove, const SlCallSite *site);

/* stackless.run(): run the other tasklets until none is runnable. With timeout > 0 (ticks,
   see preempt.h; main thread only, and only if no outer run() has one) the running
   tasklet is interrupted when its slice (totaltimeout: the whole run's) is over and
   returned. flags: SL_RUN_*. */
#define SL_RUN_SOFT 1           /* interrupt only at the next voluntary switch */
#define SL_RUN_IGNORE_NESTING 2 /* interrupt even with C state on the stack */
#define SL_RUN_TOTAL 4          /* one budget for the whole run */
PyObject *sl_run_watchdog(SlThread *th, long timeout, int flags, const SlCallSite *site);

/* The preemption signal arrived (in the main thread, between bytecodes of the current
   tasklet): interrupt it, or note that its slice is over. */
PyObject *sl_preempt_fired(SlThread *th);

/* A tasklet left an atomic section: an interrupt it was spared meanwhile comes at the
   next bytecode boundary. */
void sl_preempt_check(SlThread *th);

/* t.run() (caller stays runnable) or t.switch() (caller is paused). t is alive, not
   blocked, of this thread and not current, as checked after sl_safe_point(). */
PyObject *sl_run_tasklet(SlThread *th, SlTasklet *t, int pause_caller, const SlCallSite *site);

/* Deliver an exception (a bomb) to tasklet t: raise it in the caller if t is current,
   else park it in t and make t runnable, switching to it unless pending. Unless pending,
   the caller checked t after sl_safe_point(). */
PyObject *sl_throw(SlThread *th, SlTasklet *t, PyObject *bomb, int pending, const SlCallSite *site);

/* The current tasklet leaves the run queue to block on a channel. Returns the tasklet to
   switch to: the next runnable one, or the watchdog, revived. The run queue's reference to
   the current tasklet passes to the caller (the channel queue keeps it). Check
   sl_block_would_deadlock() and sl_check_switch() first. */
SlTasklet *sl_block_leave(SlThread *th);

/* Would blocking the current tasklet deadlock? (checked before it joins a channel) */
int sl_block_would_deadlock(SlThread *th);

/* After a hand-over: switch from the current tasklet (which stays runnable) to `next`,
   which is in the run queue. */
void sl_switch_to(SlThread *th, SlTasklet *next, const SlCallSite *site);

/* The value the current tasklet resumes with: its tempval (reset to None), or the
   exception carried by a bomb raised. */
PyObject *sl_resume_value(SlTasklet *t);

/* Call a schedule or channel callback with switching forbidden; an error it raises is
   reported as unraisable (`where` says which callback) and does not propagate. */
void sl_run_callback(SlThread *th, PyObject *callback, PyObject *const *args, size_t n,
                     const char *where);

/* Kill every started, unfinished tasklet of the calling thread, in creation order
   (interpreter exit). */
int sl_kill_leftovers(SlThread *th);

/* A garbage collection starts / stopped in the calling thread (gc.callbacks). */
void sl_gc_started(void);
void sl_gc_stopped(void);

/* Kill an unreachable suspended tasklet (its finaliser): now if that is safe, else as soon
   as it is (queued until the next switch, the end of a collection or callback). */
void sl_kill_unreachable(SlThread *th, SlTasklet *t);

/* Run the kills queued by sl_kill_unreachable() if switching is possible now. Returns -1
   if meanwhile something was delivered to the current tasklet (it was thrown into or
   killed): a caller that can raise should then return sl_resume_value(th->current). */
int sl_run_queued_kills(SlThread *th);

/* Every switching operation starts here: the queued kills run, and a bomb delivered to
   the current tasklet since it last switched is raised instead of doing the operation.
   Returns 0, or -1 with that exception set. Inline: usually there is nothing to do. */
int sl_safe_point_slow(SlThread *th);

static inline int
sl_safe_point(SlThread *th)
{
    return th->nkills == 0 && th->bomb_waiting == NULL ? 0 : sl_safe_point_slow(th);
}

/* C-level re-entries of the interpreter in t's frames beyond its own start: 0 means its
   frames are all Python's (it could be pickled and resumed). */
int sl_nesting_level(SlTasklet *t);

/* The same, leaving out the re-entries a restore rebuilds (a for loop resuming a generator
   through its __next__): 0 means t is restorable. */
int sl_unrestorable_nesting(SlTasklet *t);

/* Forget a tasklet's frames and C stack, if it has any, without running any of its code
   (re-binding, or a tasklet that cannot be killed): it leaves every queue and the watchdog
   stack and is not alive any more. The references it held go to refs. */
void sl_discard(SlTasklet *t, SlRefs *refs);

/* Whether a thread of the calling interpreter has ident `id` (-1 with an exception set). */
int sl_thread_exists(unsigned long id);

/* Tasklet bookkeeping for the object layer. */
void sl_forget_started(SlTasklet *t);

#endif /* SL_SCHEDULER_H */
