/* What of the interpreter's thread state travels with a tasklet.
 *
 * Owns: every access to private CPython structures (PyThreadState fields, interpreter
 * frames, data-stack chunks, generator frame state). This is the only file pair that may
 * test PY_VERSION_HEX; everything else sees the small API below. It must not schedule,
 * switch stacks or know what a tasklet or channel is.
 *
 * State that follows a tasklet: the innermost interpreter frame (and on 3.11/3.12 the
 * _PyCFrame it hangs from), the frame data stack (chunk, top, limit), the Python and C
 * recursion depths, the handled-exception stack, the contextvars context, the trashcan
 * nesting, the tracing counter, the trace and profile functions and (3.14+) the optimizer's
 * current executor. Per OS thread and left alone: the raised exception, thread ids, async
 * exceptions, the trashcan's delete_later list. Also here: whether the cycle collector
 * runs, and the few public calls whose spelling differs between versions.
 */
#ifndef SL_PYSTATE_H
#define SL_PYSTATE_H

#include <Python.h>

/* References to release once the caller's own state is consistent again: a release may run
   arbitrary code, which may even switch tasklets. */
typedef struct SlRefs {
    PyObject **items;
    size_t n, capacity;
} SlRefs;

/* Take over a reference (NULL is ignored). Out of memory, the object leaks. */
void sl_refs_add(SlRefs *r, PyObject *o);

/* Release every reference taken over; empties r. */
void sl_refs_release(SlRefs *r);

/* A frame whose `previous` link was redirected past C-stack frames while its tasklet is
   suspended (3.12+), and the original link to put back before it runs again. */
typedef struct SlFrameLink {
    void *frame;
    void *previous;
} SlFrameLink;

typedef struct SlPyState {
    void *frame;    /* innermost interpreter frame (_PyInterpreterFrame *) */
    void *cframe;   /* 3.11/3.12: tstate->cframe, which lives on the C stack */
    void *executor; /* 3.14+: tstate->current_executor (JIT / tier 2 only) */
    void *chunk;    /* frame data stack: current chunk, top and limit */
    PyObject **chunk_top;
    PyObject **chunk_limit;
    void *root_chunk;       /* the tasklet's own first chunk (not the main tasklet's) */
    const void *chunk_code; /* code object its chunk was sized for (a key, not a reference) */
    void *exc_info;         /* tstate->exc_info, NULL when it is &tstate->exc_state */
    void *exc_previous;     /* tstate->exc_state.previous_item */
    PyObject *exc_value;    /* owned: tstate->exc_state.exc_value */
    PyObject *context;      /* owned: tstate->context */
    Py_tracefunc tracefunc, profilefunc; /* sys.settrace()/setprofile() of the tasklet */
    PyObject *traceobj, *profileobj;     /* owned: their objects */
    uint64_t instr_version; /* 3.12+: the interpreter's instrumentation version at save */
    PyObject **stack_top;   /* top of the innermost frame's value stack, if known */
    int call_items;         /* how many of those items the suspending call consumes */
    int direct;             /* it blocked in a call made by its innermost frame itself */
    int py_bonus;           /* Python depth it was resumed with beyond a lowered limit */
    int depth_offset;       /* recursion depth it started at for the C stack above its base */
    int py_depth;           /* Python recursion depth */
    int c_depth;            /* C recursion depth (3.12+) */
    int trash_nesting;
    int tracing;
    int recursion_headroom; /* tstate->recursion_headroom: it is reporting an overflow */
    int nexposed;           /* entries used in `exposed` */
    int exposed_capacity;
    int frames_unsafe;    /* exposing failed: never walk this tasklet's frames */
    SlFrameLink *exposed; /* exposed_one, or a heap array when more are needed */
    SlFrameLink exposed_one;
} SlPyState;

/* --- switching (no allocation through the Python allocators, no Python code) --- */

/* The Python-level call that suspends a tasklet, as the called C function received it:
   its self (module, channel or tasklet) and its vectorcall arguments, keyword values
   included. If the innermost frame made that call itself, the arguments are the top of
   its value stack. SL_CALLED_BY_FOR_ITER stands for a channel's __next__; NULL for a switch
   made from C (a finaliser, a callback). */
typedef struct SlCallSite {
    PyObject *self;
    PyObject *const *args;
    Py_ssize_t nargs; /* positional and keyword values */
    int with_kwnames; /* keywords were passed (their names tuple may top the stack) */
} SlCallSite;

#define SL_CALL_SITE(self, args, nargs, kwnames)                                                   \
    (&(const SlCallSite){(PyObject *)(self), (args),                                               \
                         (nargs) + ((kwnames) ? PyTuple_GET_SIZE(kwnames) : 0),                    \
                         (kwnames) != NULL})

extern const SlCallSite sl_called_by_for_iter;
#define SL_CALLED_BY_FOR_ITER (&sl_called_by_for_iter)

/* Move the running context's state from the thread state into st (references are stolen)
   and make its frames safe to inspect while it is suspended. call_site: see above. */
void sl_pystate_save(PyThreadState *ts, SlPyState *st, const SlCallSite *call_site);

/* Put st back into the thread state. Call on the restored C stack, before Python runs.
   Returns 1 if sys.monitoring changed while the tasklet was suspended: then call
   sl_pystate_refresh_instrumentation() once Python code may run. */
int sl_pystate_restore(PyThreadState *ts, SlPyState *st);

/* --- the life of a tasklet --- */

/* The contextvars context a new tasklet will run in: a new reference to a copy of the
   calling context, or NULL while that is empty (a fresh empty one is made only if the
   tasklet uses one). Returns 0, or -1 with an exception set. */
int sl_pystate_copy_context(PyObject **out);

/* Install a fresh state for the tasklet whose stack we are now on and call body(arg), which
   must never return (a tasklet ends by switching away for good). The tasklet gets its own
   small frame data-stack chunk, sized for `callable`, and the recursion budget that fits
   the C stack left below its base: stack_used is the fraction of the thread's stack in use
   above the base, c_depth the C recursion depth there. */
void sl_pystate_run_new(PyThreadState *ts, SlPyState *st, PyObject *callable, int c_depth,
                        double stack_used, void (*body)(void *), void *arg);

/* In a tasklet that was just resumed after sys.monitoring (which sys.settrace() uses on
   3.12+) changed (Python code may run): bring the code of its frames up to date. CPython
   re-instruments the code of every frame it can reach from a thread state, and a
   generator's at its next RESUME; a suspended tasklet's frames are neither, and would go
   on running code instrumented for the old state. */
void sl_pystate_refresh_instrumentation(PyThreadState *ts);

/* The running context's C recursion depth (0 where the version has no separate counter). */
int sl_pystate_c_depth(PyThreadState *ts);

/* The context st belongs to runs on the thread's own state right now (or ended there):
   forget the stale copy its last switch left in st, which names CPython's own frames and
   chunks, so that releasing st later frees nothing of them. */
void sl_pystate_forget_running(SlPyState *st);

/* The running tasklet ends: its trace and profile functions end with it (through the API,
   so that 3.12+ stops instrumenting code for them once nothing traces). */
void sl_pystate_drop_hooks(PyThreadState *ts);

/* Free what a finished tasklet's state still holds. It may run Python code (DECREF). */
void sl_pystate_release(SlPyState *st);

/* Drop everything a tasklet's state holds, the frames of a suspended one included, without
   running any of its code (no finally, no TaskletExit). The references go to refs, for the
   caller to release; references held only by its C stack are leaked. */
void sl_pystate_discard(SlPyState *st, SlRefs *refs);

/* --- looking at a suspended (or the running) tasklet --- */

/* New reference to the innermost Python frame object, or NULL without error for none.
   ts is the calling thread's state; st is a suspended tasklet's state, or NULL to ask for
   the running context's frame. */
PyObject *sl_pystate_frame(PyThreadState *ts, SlPyState *st);

/* How many times C code re-entered the interpreter in the tasklet's frame chain (the
   tasklet's own start counts as one); plus one if a suspended tasklet blocked in a call
   made from C rather than by its innermost frame. st NULL: the running context. With
   restorable, a for loop resuming a generator through the generator's __next__ (3.11; and
   before the loop is specialised) does not count: a restore rebuilds it. */
int sl_pystate_c_boundaries(PyThreadState *ts, SlPyState *st, int restorable);

/* Whether the running context's innermost frame stands where the eval loop itself checks
   for signals (a function's start or a backward jump), rather than inside a call into C
   code that checks for signals on its own. */
int sl_pystate_at_loop_check(PyThreadState *ts);

/* Python call depth of the tasklet whose state is st: running, or suspended. */
int sl_pystate_recursion_depth(PyThreadState *ts, SlPyState *st, int running);

/* Visit the references a suspended tasklet's frames and state own. */
int sl_pystate_traverse(SlPyState *st, visitproc visit, void *arg);

/* --- the few public calls whose spelling differs between versions --- */

/* Report the raised exception as unraisable, "Exception ignored <where>: <obj>"; clears it. */
void sl_pystate_write_unraisable(const char *where, PyObject *obj);

/* The raised exception as one normalised object with its traceback attached, cleared from
   the thread (new reference), or NULL if none is raised. */
PyObject *sl_pystate_fetch_error(void);

/* Raise exc again as it was fetched (steals the reference). */
void sl_pystate_restore_error(PyObject *exc);

/* The idents of all threads of the calling interpreter, oldest first (new list). */
PyObject *sl_pystate_thread_ids(void);

/* Whether a signal tripped from another thread with PyErr_SetInterruptEx() reaches the
   main thread's eval loop by itself (3.13+), rather than only once something else makes
   the loop look (3.11/3.12: a real signal must be sent to the main thread). */
int sl_pystate_foreign_trip_wakes_main(void);

/* Whether the cycle collector is running (in this interpreter). */
int sl_pystate_gc_collecting(void);

/* Whether the interpreter is being finalised (no more switching into tasklets). */
int sl_pystate_finalizing(void);

/* --- pickling: a suspended tasklet's frames as data, and frames rebuilt from data --- */

/* The frames of a suspended tasklet, outermost first, as a new list of records
   (function, code, resume offset, locals, value stack): the offset is where the frame goes
   on once it receives the value it waits for (the result of its pending call), in code
   units; locals and stack are tuples in which null_marker stands for an empty slot and
   tagged_int(n) for a 3.14+ tagged integer. A frame that waits for C code (C state) has
   offset -1 and None for locals and stack. Each record comes as (record, generator,
   exception): a frame of a generator running in the chain (the iterator of its caller's for
   loop) names the generator and the exception its frames handle, else None and None.
   depth_at(code, offset) tells the stack depth at an instruction where the frame did not
   store it. */
PyObject *sl_pystate_capture(SlPyState *st, PyObject *null_marker, PyObject *tagged_int,
                             PyObject *depth_at);

/* A "shell" for one record: a generator object owning a frame for func's code, filled from
   the record, not run yet (dropping it runs nothing). Checks what memory safety needs
   (sizes, offset range, cells where the code reads cells); the caller has validated the
   rest against the bytecode. New reference, or NULL with ValueError. */
PyObject *sl_pystate_new_shell(PyObject *func, int offset, PyObject *locals, PyObject *stack,
                               PyObject *null_marker, PyObject *tagged_int);

/* A generator, coroutine or async generator from a record (see sl_pystate_generator_record);
   state is one of these: */
enum { SL_GEN_CREATED, SL_GEN_SUSPENDED, SL_GEN_SUSPENDED_YIELD_FROM, SL_GEN_EXHAUSTED };
PyObject *sl_pystate_new_generator(PyObject *func, int offset, PyObject *locals, PyObject *stack,
                                   int state, PyObject *exc, PyObject *null_marker,
                                   PyObject *tagged_int);

/* A suspended generator, coroutine or async generator (o, of one of those types) as a record
   (function, state, resume offset, locals, stack, handled exception), or (None,
   SL_GEN_EXHAUSTED) for one that has finished; RuntimeError for a running one. */
PyObject *sl_pystate_generator_record(PyObject *o, PyObject *null_marker, PyObject *tagged_int);

/* Whether o is a shell. */
int sl_pystate_is_shell(PyObject *o);

/* Make outer (a shell, or NULL for the tasklet's start) the caller of shell inner. */
void sl_pystate_link_shell(PyThreadState *ts, PyObject *inner, PyObject *outer);

/* The exception a shell's frame is handling when it resumes (None: none). */
void sl_pystate_set_shell_exception(PyObject *shell, PyObject *exc);

/* Run a shell's frame to its end: it receives value (stolen) as the result of its pending
   call, or, with value NULL, the raised exception at that call; or, with at > 0, it goes
   on at offset `at` (a FOR_ITER to run again) with nothing pushed, the loop's iterator
   first replaced by `exhausted` unless that is NULL. Returns what the frame returns, or
   NULL with its exception. */
PyObject *sl_pystate_resume_shell(PyThreadState *ts, PyObject *shell, PyObject *value, int at,
                                  PyObject *exhausted);

/* Send value (stolen; NULL: throw the raised exception) into a restored generator whose
   caller is the shell `caller` (or the tasklet's start). Returns what it yielded, or with
   *returned set what it returned, or NULL with an exception. */
PyObject *sl_pystate_resume_generator(PyThreadState *ts, PyObject *gen, PyObject *caller,
                                      PyObject *value, int *returned);

#endif /* SL_PYSTATE_H */
