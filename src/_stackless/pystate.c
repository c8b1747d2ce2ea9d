/* What of the interpreter's thread state travels with a tasklet; see pystate.h.
 *
 * The only file that reads private CPython structures and tests PY_VERSION_HEX. Each
 * difference between 3.11, 3.12, 3.13, 3.14 and 3.15 is resolved in the accessors at the
 * top (docs/design.md lists them); the functions below them are written once.
 */
/* Compiled as core code (Py_BUILD_CORE from the start, so that the internal headers agree
   with the public ones); it references only symbols libpython exports. */
#define Py_BUILD_CORE 1
#include <Python.h>
#include "internal/pycore_frame.h"
#include "internal/pycore_gc.h"
#include "internal/pycore_interp.h"
#include "opcode.h"

#if PY_VERSION_HEX >= 0x03100000
#error "stackless: CPython 3.16+ is not supported by this build yet"
#elif PY_VERSION_HEX >= 0x030F0000
#define SL_PY315 1
#elif PY_VERSION_HEX >= 0x030E0000
#define SL_PY314 1
#elif PY_VERSION_HEX >= 0x030D0000
#define SL_PY313 1
#elif PY_VERSION_HEX >= 0x030C0000
#define SL_PY312 1
#elif PY_VERSION_HEX >= 0x030B0000
#define SL_PY311 1
#else
#error "stackless: CPython 3.11 or newer is required"
#endif

/* What the versions differ in, named once:
   SL_CFRAME      3.11-3.12: the innermost frame hangs from a _PyCFrame on the C stack
   SL_C_COUNTER   3.12-3.13: C recursion is counted (3.14+ compares the stack pointer)
   SL_STACKREFS   3.14+: frames hold tagged _PyStackRef values, not PyObject pointers
   SL_BASE_FRAME  3.15+: every thread's frame chain ends in a sentinel frame of its own */
#if defined(SL_PY311) || defined(SL_PY312)
#define SL_CFRAME 1
#endif
#if defined(SL_PY312) || defined(SL_PY313)
#define SL_C_COUNTER 1
#endif
#if defined(SL_PY314) || defined(SL_PY315)
#define SL_STACKREFS 1
#include "internal/pycore_genobject.h"
#include "internal/pycore_interpframe.h"
#include "internal/pycore_stackref.h"
#include "internal/pycore_tstate.h"
#endif
#if defined(SL_PY315)
#define SL_BASE_FRAME 1
#endif

#include "pystate.h"

#include <stdlib.h>
#include <string.h>

typedef _PyInterpreterFrame Frame;

/* ---- version accessors ------------------------------------------------------------ */

/* One slot of a frame: a local, a cell, a value-stack entry, or the function and code
   references. Before 3.14 it is an owned PyObject pointer or NULL. From 3.14 on it is a
   _PyStackRef, whose low bits say whether it owns its reference: an untagged pointer
   does; a tagged one borrows (immortal objects, or LOAD_FAST_BORROW's copy of a local),
   is the null reference, or holds a small integer the interpreter keeps on the stack. */
#if defined(SL_STACKREFS)
typedef _PyStackRef Slot;

/* The object a slot owns a reference to, or NULL if it owns none. */
static inline PyObject *
slot_owned(Slot s)
{
    return (s.bits & Py_TAG_BITS) == 0 ? (PyObject *)s.bits : NULL;
}

/* The object a slot names, owned or borrowed, or NULL. */
static inline PyObject *
slot_object(Slot s)
{
    if (PyStackRef_IsNull(s) || PyStackRef_IsTaggedInt(s)) {
        return NULL;
    }
    return PyStackRef_AsPyObjectBorrow(s);
}

#define SLOT_NULL PyStackRef_NULL

/* Give the slot a reference of its own to what it names. */
static inline void
slot_make_owned(Slot *s)
{
    PyObject *o = slot_object(*s);
    if (o != NULL && slot_owned(*s) == NULL) {
        *s = PyStackRef_FromPyObjectNew(o);
    }
    else if (o != NULL) {
        Py_INCREF(o);
    }
}
#else
typedef PyObject *Slot;

static inline PyObject *
slot_owned(Slot s)
{
    return s;
}

static inline PyObject *
slot_object(Slot s)
{
    return s;
}

#define SLOT_NULL NULL

static inline void
slot_make_owned(Slot *s)
{
    Py_XINCREF(*s);
}
#endif

static inline PyCodeObject *
frame_code(Frame *f)
{
#if defined(SL_PY311) || defined(SL_PY312)
    return f->f_code;
#else
    PyObject *executable = slot_object(f->f_executable);
    return executable != NULL && PyCode_Check(executable) ? (PyCodeObject *)executable : NULL;
#endif
}

/* Strong references every live interpreter frame holds besides its locals and stack. */
static inline Slot *
frame_func_slot(Frame *f)
{
#if defined(SL_PY311)
    return (Slot *)&f->f_func;
#else
    return (Slot *)&f->f_funcobj;
#endif
}

static inline Slot *
frame_code_slot(Frame *f)
{
#if defined(SL_PY311) || defined(SL_PY312)
    return (Slot *)&f->f_code;
#else
    return (Slot *)&f->f_executable;
#endif
}

/* Where frame f's value stack ends, if the frame stored it (it made a Python call, or
   is a suspended generator; from 3.14 on also before every call that may escape to C);
   -1 if unknown. */
static inline int
frame_stored_stacktop(Frame *f)
{
#if defined(SL_STACKREFS)
    return f->stackpointer != NULL ? (int)(f->stackpointer - f->localsplus) : -1;
#else
    return f->stacktop;
#endif
}

static inline void
frame_set_stacktop(Frame *f, int n)
{
#if defined(SL_STACKREFS)
    f->stackpointer = f->localsplus + n;
#else
    f->stacktop = n;
#endif
}

/* Whether a generator's frame visits its own locals and stack in the collector's walk
   even while it executes; before 3.14 only while it has a stored stack top. */
static inline int
running_gen_frame_traverses_itself(Frame *f)
{
    return frame_stored_stacktop(f) >= 0;
}

static inline PyGenObject *
frame_generator(Frame *f)
{
#if defined(SL_STACKREFS)
    return _PyGen_GetGeneratorFromFrame(f);
#else
    return _PyFrame_GetGenerator(f);
#endif
}

/* Whether clearing a generator's frame also drops the frame's code reference. On 3.12+ a
   generator keeps its code only in its frame, and gen_dealloc releases it even after the
   frame was cleared; 3.11 generators hold their own reference (gi_code). */
static inline int
cleared_gen_frame_keeps_code(void)
{
#if defined(SL_PY311)
    return 0;
#else
    return 1;
#endif
}

/* A frame that lives inside an eval-loop activation on the C stack (3.12+). 3.14 calls it
   owned by the interpreter (or by the C stack); 3.15 also gives that owner to the
   thread's sentinel base frame, which is not on the C stack and ends every chain. */
static inline int
frame_on_c_stack(Frame *f)
{
#if defined(SL_PY311)
    (void)f;
    return 0;
#elif defined(SL_PY312) || defined(SL_PY313)
    return f->owner == FRAME_OWNED_BY_CSTACK;
#elif defined(SL_BASE_FRAME)
    return f->owner >= FRAME_OWNED_BY_INTERPRETER && f->previous != NULL;
#else
    return f->owner >= FRAME_OWNED_BY_INTERPRETER;
#endif
}

/* A frame that starts an eval-loop activation: on 3.12+ the C-stack entry frame, on 3.11
   the first frame of the activation (which lives in the data stack). */
static inline int
frame_is_c_boundary(Frame *f)
{
#if defined(SL_PY311)
    return f->is_entry;
#else
    return frame_on_c_stack(f);
#endif
}

/* The Python frame a C boundary found by frame_is_c_boundary() entered: on 3.11 the flagged
   frame itself, on 3.12+ the frame above the entry frame (inner, the one walked before). */
static inline Frame *
frame_entered_at(Frame *boundary, Frame *inner)
{
#if defined(SL_PY311)
    (void)inner;
    return boundary;
#else
    (void)boundary;
    return inner;
#endif
}

/* Stack slots a for loop keeps above its iterator: 3.14+ keep the index of a list or tuple
   iterated in place (or NULL) there. */
#if defined(SL_STACKREFS)
#define FOR_ITER_SLOTS_ABOVE_ITERATOR 1
#else
#define FOR_ITER_SLOTS_ABOVE_ITERATOR 0
#endif

/* The instruction frame f executes (or is about to). */
static inline _Py_CODEUNIT *
frame_instr(Frame *f)
{
#if defined(SL_PY311) || defined(SL_PY312)
    return f->prev_instr;
#else
    return f->instr_ptr;
#endif
}

static inline Frame *
ts_frame(PyThreadState *ts)
{
#if defined(SL_CFRAME)
    return ts->cframe->current_frame;
#else
    return ts->current_frame;
#endif
}

static inline void
ts_set_frame(PyThreadState *ts, Frame *f)
{
#if defined(SL_CFRAME)
    ts->cframe->current_frame = f;
#else
    ts->current_frame = f;
#endif
}

/* The frame a new tasklet's chain starts from (what `previous` of its first frame is). */
static inline Frame *
ts_chain_root(PyThreadState *ts)
{
#if defined(SL_BASE_FRAME)
    return ts->base_frame;
#else
    (void)ts;
    return NULL;
#endif
}

static inline int
ts_py_depth(PyThreadState *ts)
{
#if defined(SL_PY311)
    return ts->recursion_limit - ts->recursion_remaining;
#else
    return ts->py_recursion_limit - ts->py_recursion_remaining;
#endif
}

static inline int
ts_py_limit(PyThreadState *ts)
{
#if defined(SL_PY311)
    return ts->recursion_limit;
#else
    return ts->py_recursion_limit;
#endif
}

/* The C recursion budget of a whole thread stack (0: not counted). 3.11 counts C calls
   in its one Python counter; 3.14+ compares the machine stack pointer with limits of the
   thread's stack, which stack slicing leaves right because every tasklet runs on it. */
#if defined(SL_PY312)
#define SL_C_LIMIT C_RECURSION_LIMIT
#elif defined(SL_PY313)
#define SL_C_LIMIT Py_C_RECURSION_LIMIT
#else
#define SL_C_LIMIT 0
#endif

static inline void
ts_set_depths(PyThreadState *ts, int py_depth, int c_depth)
{
#if defined(SL_PY311)
    ts->recursion_remaining = ts->recursion_limit - py_depth;
#else
    ts->py_recursion_remaining = ts->py_recursion_limit - py_depth;
#endif
#if defined(SL_C_COUNTER)
    ts->c_recursion_remaining = SL_C_LIMIT - c_depth;
#else
    (void)c_depth;
#endif
}

static inline int
ts_c_depth(PyThreadState *ts)
{
#if defined(SL_C_COUNTER)
    return SL_C_LIMIT - ts->c_recursion_remaining;
#else
    (void)ts;
    return 0;
#endif
}

static inline int *
ts_trash_nesting(PyThreadState *ts)
{
#if defined(SL_PY311)
    return &ts->trash_delete_nesting;
#elif defined(SL_PY312)
    return &ts->trash.delete_nesting;
#else
    (void)ts; /* 3.13+ bound trashcan nesting by the C recursion limit */
    return NULL;
#endif
}

/* The optimizer's executor a tasklet runs in (3.14+, only with the JIT or tier 2 on). */
static inline void *
ts_executor(PyThreadState *ts)
{
#if defined(SL_STACKREFS)
    return ts->current_executor;
#else
    (void)ts;
    return NULL;
#endif
}

static inline void
ts_set_executor(PyThreadState *ts, void *executor)
{
#if defined(SL_STACKREFS)
    ts->current_executor = executor;
#else
    (void)ts;
    (void)executor;
#endif
}

/* 3.11 keeps "is anyone tracing" in a byte of each eval activation's _PyCFrame; the
   incoming tasklet's cframe must learn the thread's current setting. */
/* The interpreter's instrumentation version (sys.monitoring state), 0 before 3.12. */
static inline uint64_t
ts_instrumentation_version(PyThreadState *ts)
{
#if defined(SL_PY311)
    (void)ts;
    return 0;
#elif defined(SL_PY312)
    return ts->interp->monitoring_version;
#else
    return ts->interp->ceval.instrumentation_version;
#endif
}

static inline uint64_t
code_instrumentation_version(PyCodeObject *code)
{
#if defined(SL_PY311)
    (void)code;
    return 0;
#else
    return code->_co_instrumentation_version;
#endif
}

static inline void
ts_refresh_tracing(PyThreadState *ts)
{
#if defined(SL_PY311)
    int on = ts->tracing == 0 && (ts->c_tracefunc != NULL || ts->c_profilefunc != NULL);
    ts->cframe->use_tracing = on ? 255 : 0;
#else
    (void)ts;
#endif
}

/* ---- exposing frames (3.12+) -------------------------------------------------------- */

/* On 3.12+ every eval-loop activation keeps an "entry frame" in its C stack frame, and the
   first Python frame of the activation links to it. While a tasklet is suspended its C
   stack is on the heap and those addresses hold another tasklet's bytes, so f_back, or
   anything else walking `previous`, would read garbage. At switch-out each such link is
   redirected past the C-stack frames (the same thing PyFrame_GetBack() does when it skips
   them) and put back before the tasklet runs again. The walk also counts the C
   boundaries, which is the tasklet's nesting level. On 3.11 the entry marker is a flag
   on a heap frame, so nothing needs redirecting. */
#if !defined(SL_PY311)
static int
remember_link(SlPyState *st, Frame *f, Frame *previous)
{
    if (st->nexposed == st->exposed_capacity) {
        int cap = st->exposed_capacity ? st->exposed_capacity * 2 : 4;
        SlFrameLink *links = malloc(sizeof(SlFrameLink) * (size_t)cap);
        if (links == NULL) {
            return -1;
        }
        if (st->nexposed) {
            memcpy(links, st->exposed, sizeof(SlFrameLink) * (size_t)st->nexposed);
        }
        if (st->exposed != &st->exposed_one) {
            free(st->exposed);
        }
        st->exposed = links;
        st->exposed_capacity = cap;
    }
    st->exposed[st->nexposed].frame = f;
    st->exposed[st->nexposed].previous = previous;
    st->nexposed++;
    return 0;
}

static void
expose_frames(SlPyState *st)
{
    st->nexposed = 0;
    st->frames_unsafe = 0;
    if (st->exposed == NULL) {
        st->exposed = &st->exposed_one;
        st->exposed_capacity = 1;
    }
    for (Frame *f = st->frame; f != NULL;) {
        Frame *prev = f->previous;
        if (prev != NULL && frame_on_c_stack(prev)) {
            Frame *beyond = prev;
            while (beyond != NULL && frame_on_c_stack(beyond)) {
                beyond = beyond->previous;
            }
            if (remember_link(st, f, prev) < 0) {
                st->frames_unsafe = 1;
                return;
            }
            f->previous = beyond;
            prev = beyond;
        }
        f = prev;
    }
}

static void
unexpose_frames(SlPyState *st)
{
    for (int i = st->nexposed - 1; i >= 0; i--) {
        ((Frame *)st->exposed[i].frame)->previous = st->exposed[i].previous;
    }
    st->nexposed = 0;
}
#endif

/* The first frame of a suspended chain that a frame object can be made for. */
static Frame *
first_complete(SlPyState *st)
{
    if (st->frames_unsafe) {
        return NULL;
    }
    Frame *f = st->frame;
    while (f != NULL &&
           (frame_code(f) == NULL || frame_on_c_stack(f) || _PyFrame_IsIncomplete(f))) {
        f = f->previous;
    }
    return f;
}

/* ---- switching ---------------------------------------------------------------------- */

static void learn_chunk_size(SlPyState *st);

/* The opcode frame f executes (as stored, perhaps specialised), or -1 if unknown. */
static int
frame_opcode(Frame *f)
{
    PyCodeObject *code = f != NULL ? frame_code(f) : NULL;
    if (code == NULL) {
        return -1;
    }
    _Py_CODEUNIT *instr = frame_instr(f);
    _Py_CODEUNIT *first = _PyCode_CODE(code);
    if (instr < first || instr >= first + Py_SIZE(code)) {
        return -1;
    }
    return _Py_OPCODE(*instr);
}

/* Whether frame f is executing a FOR_ITER instruction (so a __next__ it called came
   straight from the eval loop). */
static int
frame_in_for_iter(Frame *f)
{
    int op = frame_opcode(f);
#if defined(SL_PY311)
    return op == FOR_ITER;
#else
    return op == FOR_ITER || op == INSTRUMENTED_FOR_ITER;
#endif
}

const SlCallSite sl_called_by_for_iter = {NULL, NULL, 0, 0};

/* Whether the innermost frame f made the call described by site itself. Before 3.14 the
   eval loop passes the arguments straight from the frame's value stack, so their address
   tells, and the end of them is where the frame's live stack ends. From 3.14 on they are
   copied out of the tagged stack references first, but the frame stores its stack pointer
   before every call that may escape to C: the top of its stack must hold the callable (a
   builtin whose self is site->self) or that self, then the same arguments, then perhaps
   the tuple of keyword names. */
static int
frame_made_call(SlPyState *st, Frame *f, PyCodeObject *code, const SlCallSite *site)
{
    Slot *base = f->localsplus + code->co_nlocalsplus;
#if defined(SL_STACKREFS)
    Slot *top = f->stackpointer;
    if (top == NULL || top < base || top > base + code->co_stacksize) {
        return 0;
    }
    for (int names_on_top = 0; names_on_top <= site->with_kwnames; names_on_top++) {
        Slot *first = top - names_on_top - site->nargs;
        if (first - 2 < base) {
            continue;
        }
        Py_ssize_t i = 0;
        while (i < site->nargs && slot_object(first[i]) == site->args[i]) {
            i++;
        }
        if (i < site->nargs) {
            continue;
        }
        PyObject *self = slot_object(first[-1]);
        PyObject *callable = slot_object(first[-2]);
        if (self == site->self ||
            (self == NULL && callable != NULL && PyCFunction_Check(callable) &&
             PyCFunction_GET_SELF(callable) == site->self)) {
            st->stack_top = (PyObject **)top;
            st->call_items = (int)(names_on_top + site->nargs + 2);
            return 1;
        }
    }
    return 0;
#else
    PyObject **end = (PyObject **)site->args + site->nargs;
    if (site->args != NULL && end >= base && end <= base + code->co_stacksize) {
        st->stack_top = end;
        /* callable, self or NULL, and the arguments (3.13's keyword names lie above) */
        st->call_items = (int)site->nargs + 2;
        return 1;
    }
    return 0;
#endif
}

/* Record where the suspending call was made (see SlCallSite). */
static void
note_call_site(SlPyState *st, const SlCallSite *call_site)
{
    Frame *f = st->frame;
    PyCodeObject *code = f ? frame_code(f) : NULL;
    st->stack_top = NULL;
    st->direct = 0;
    if (code == NULL || call_site == NULL) {
        return;
    }
    if (call_site == SL_CALLED_BY_FOR_ITER) {
        st->direct = frame_in_for_iter(f);
        return;
    }
    st->direct = frame_made_call(st, f, code, call_site);
}

void
sl_pystate_save(PyThreadState *ts, SlPyState *st, const SlCallSite *call_site)
{
    st->frame = ts_frame(ts);
#if defined(SL_CFRAME)
    st->cframe = ts->cframe;
#endif
    st->executor = ts_executor(ts);
    st->chunk = ts->datastack_chunk;
    st->chunk_top = ts->datastack_top;
    st->chunk_limit = ts->datastack_limit;
    st->exc_info = ts->exc_info == &ts->exc_state ? NULL : ts->exc_info;
    st->exc_value = ts->exc_state.exc_value;
    st->exc_previous = ts->exc_state.previous_item;
    ts->exc_state.exc_value = NULL;
    ts->exc_state.previous_item = NULL;
    st->context = ts->context;
    ts->context = NULL;
    st->py_depth = ts_py_depth(ts) + st->py_bonus;
    note_call_site(st, call_site);
    st->c_depth = ts_c_depth(ts);
    int *trash = ts_trash_nesting(ts);
    st->trash_nesting = trash ? *trash : 0;
    st->tracing = ts->tracing;
    /* Trace and profile functions follow the tasklet that set them. The fields are moved
       as they are: sys.settrace() keeps the interpreter's count of tracing threads (3.12+:
       which instruments code), and a function that is absent here is simply not called. */
    st->instr_version = ts_instrumentation_version(ts);
    st->tracefunc = ts->c_tracefunc;
    st->traceobj = ts->c_traceobj;
    st->profilefunc = ts->c_profilefunc;
    st->profileobj = ts->c_profileobj;
    ts->c_tracefunc = NULL;
    ts->c_traceobj = NULL;
    ts->c_profilefunc = NULL;
    ts->c_profileobj = NULL;
    st->recursion_headroom = ts->recursion_headroom;
    if (st->chunk_code != NULL) {
        learn_chunk_size(st);
    }
#if !defined(SL_PY311)
    expose_frames(st);
#endif
}

int
sl_pystate_restore(PyThreadState *ts, SlPyState *st)
{
#if !defined(SL_PY311)
    unexpose_frames(st);
#endif
#if defined(SL_CFRAME)
    ts->cframe = st->cframe;
#else
    ts->current_frame = st->frame;
#endif
    ts_set_executor(ts, st->executor);
    ts->datastack_chunk = st->chunk;
    ts->datastack_top = st->chunk_top;
    ts->datastack_limit = st->chunk_limit;
    ts->exc_info = st->exc_info ? st->exc_info : &ts->exc_state;
    ts->exc_state.exc_value = st->exc_value;
    ts->exc_state.previous_item = st->exc_previous;
    st->exc_value = NULL;
    ts->context = st->context;
    ts->context_ver++;
    st->context = NULL;
    /* If the recursion limit was lowered below the depth this tasklet sleeps at, resume it
       with room for one call, so that it gets a RecursionError rather than the fatal
       "cannot recover from stack overflow"; the bonus is taken back when it is saved. */
    int limit = ts_py_limit(ts);
    st->py_bonus = st->py_depth >= limit ? st->py_depth - limit + 1 : 0;
    ts_set_depths(ts, st->py_depth - st->py_bonus, st->c_depth);
    int *trash = ts_trash_nesting(ts);
    if (trash) {
        *trash = st->trash_nesting;
    }
    ts->tracing = st->tracing;
    ts->c_tracefunc = st->tracefunc;
    ts->c_traceobj = st->traceobj;
    ts->c_profilefunc = st->profilefunc;
    ts->c_profileobj = st->profileobj;
    st->tracefunc = st->profilefunc = NULL;
    st->traceobj = st->profileobj = NULL;
    ts_refresh_tracing(ts);
    ts->recursion_headroom = st->recursion_headroom;
    st->stack_top = NULL;
    st->direct = 0;
    return ts_instrumentation_version(ts) != st->instr_version;
}

/* ---- the life of a tasklet ---------------------------------------------------------- */

/* A tasklet's own data-stack chunk holds its frames while they fit; deeper calls overflow
   into 16 KiB chunks of CPython's own, which CPython frees again when they return. A
   small chunk keeps a blocked tasklet small, an overflow makes it big: so the size comes
   from how many words earlier tasklets running the same code needed, measured at every
   switch-out and kept in a small table keyed by code object (a stale or colliding entry
   only misguides a size). The first tasklet of a function gets its frame plus room for
   about three small calls. Calls that overflowed and returned before the switch-out count
   too (each one costs CPython an mmap and munmap), but only up to 4 KiB. */
#define SL_CHUNK_SLACK_WORDS 48
#define SL_CHUNK_MARGIN_WORDS 8
#define SL_CHUNK_MAX_WORDS 2048 /* CPython's own chunk is better beyond 16 KiB */
#define SL_CHUNK_RETURNED_MAX_WORDS 512
#define SL_HINT_SLOTS 512

typedef struct {
    const void *code;
    unsigned words;
} ChunkHint;

static ChunkHint chunk_hints[SL_HINT_SLOTS];

static inline ChunkHint *
chunk_hint(const void *code)
{
    return &chunk_hints[((uintptr_t)code >> 4) & (SL_HINT_SLOTS - 1)];
}

/* The chunk header and the skipped data[0] (see sl_pystate_run_new), in words. */
#define SL_CHUNK_OVERHEAD_WORDS ((offsetof(_PyStackChunk, data) / sizeof(PyObject *)) + 1)

static void
learn_chunk_size(SlPyState *st)
{
    _PyStackChunk *root = st->root_chunk;
    size_t used;
    if (st->chunk == root && root->top == 0) {
        used = (size_t)(st->chunk_top - (PyObject **)root);
    }
    else {
        /* It overflowed, now or since the last switch: when CPython moves on to a chunk of
           its own it notes in root->top where to come back to, and leaves that behind when
           it returns (and frees the chunk: an mmap and munmap for every overflowing call).
           Try twice as much. */
        used = 2 * root->size / sizeof(PyObject *);
        if (st->chunk == root) {
            root->top = 0; /* read only when returning from a chunk above, which is gone */
            /* A call that overflowed and returned is not what the tasklet needs while it
               waits: grow for it only so far, so that waiting tasklets stay small. */
            if (used > SL_CHUNK_RETURNED_MAX_WORDS) {
                used = SL_CHUNK_RETURNED_MAX_WORDS;
            }
        }
    }
    used += SL_CHUNK_MARGIN_WORDS;
    if (used > SL_CHUNK_MAX_WORDS) {
        used = SL_CHUNK_MAX_WORDS;
    }
    ChunkHint *h = chunk_hint(st->chunk_code);
    if (h->code != st->chunk_code || h->words < used) {
        h->code = st->chunk_code;
        h->words = (unsigned)used;
    }
}

static PyCodeObject *
callable_code(PyObject *callable)
{
    if (PyMethod_Check(callable)) {
        callable = PyMethod_GET_FUNCTION(callable);
    }
    return PyFunction_Check(callable) ? (PyCodeObject *)PyFunction_GET_CODE(callable) : NULL;
}

/* The tasklet's own first chunk, sized for `callable`; NULL if out of memory (CPython then
   allocates a chunk of its own when the first frame is pushed). */
static _PyStackChunk *
new_root_chunk(SlPyState *st, PyObject *callable)
{
    PyCodeObject *code = callable_code(callable);
    size_t words;
    ChunkHint *h = code ? chunk_hint(code) : NULL;
    if (h != NULL && h->code == code) {
        words = h->words;
    }
    else {
        size_t frame = code ? (size_t)FRAME_SPECIALS_SIZE + (size_t)code->co_nlocalsplus +
                                  (size_t)code->co_stacksize
                            : 0;
        words = SL_CHUNK_OVERHEAD_WORDS + frame + SL_CHUNK_SLACK_WORDS;
    }
    size_t size = (words * sizeof(PyObject *) + 15) & ~(size_t)15;
    _PyStackChunk *chunk = PyMem_RawMalloc(size);
    if (chunk != NULL) {
        chunk->previous = NULL;
        chunk->size = size;
        chunk->top = 0;
        st->chunk_code = code;
    }
    st->root_chunk = chunk;
    return chunk;
}

int
sl_pystate_copy_context(PyObject **out)
{
    PyObject *ctx = PyThreadState_Get()->context;
    *out = NULL;
    if (ctx != NULL) {
        Py_ssize_t n = PyMapping_Size(ctx);
        if (n < 0) {
            return -1;
        }
        if (n > 0 && (*out = PyContext_Copy(ctx)) == NULL) {
            return -1;
        }
    }
    return 0;
}

int
sl_pystate_c_depth(PyThreadState *ts)
{
    return ts_c_depth(ts);
}

/* CPython's recursion limits assume the whole thread stack: a tasklet whose stack starts
   below a base that already has `used` of it in use gets that share of the limits spent. */
static void
set_start_depths(PyThreadState *ts, SlPyState *st, int c_depth, double used)
{
    /* reported recursion depths leave this offset out */
    st->depth_offset = (int)(ts_py_limit(ts) * used);
    int share = (int)(SL_C_LIMIT * used);
    c_depth = c_depth > share ? c_depth : share;
    st->py_bonus = 0;
    ts_set_depths(ts, st->depth_offset, c_depth);
    /* The extra calls CPython allows while it reports a RecursionError belong to the
       tasklet that overflowed, not to a new one. */
    ts->recursion_headroom = 0;
}
void
sl_pystate_run_new(PyThreadState *ts, SlPyState *st, PyObject *callable, int c_depth,
                   double stack_used, void (*body)(void *), void *arg)
{
#if !defined(SL_CFRAME)
    ts->current_frame = ts_chain_root(ts);
#else
    /* The tasklet's eval loops chain their _PyCFrames to this one, which lives in this
       function's frame on the tasklet's own stack for as long as the tasklet runs. */
    _PyCFrame cframe;
    memset(&cframe, 0, sizeof(cframe));
    cframe.current_frame = NULL;
    cframe.previous = &ts->root_cframe;
    ts->cframe = &cframe;
#endif
    _PyStackChunk *chunk = new_root_chunk(st, callable);
    if (chunk != NULL) {
        /* A root chunk's first frame starts at data[1], so CPython never pops (frees) it. */
        ts->datastack_chunk = chunk;
        ts->datastack_top = &chunk->data[1];
        ts->datastack_limit = (PyObject **)((char *)chunk + chunk->size);
    }
    else {
        ts->datastack_chunk = NULL;
        ts->datastack_top = NULL;
        ts->datastack_limit = NULL;
    }
    ts->exc_info = &ts->exc_state;
    ts->exc_state.exc_value = NULL;
    ts->exc_state.previous_item = NULL;
    ts->context = st->context;
    st->context = NULL;
    ts->context_ver++;
    set_start_depths(ts, st, c_depth, stack_used);
    int *trash = ts_trash_nesting(ts);
    if (trash) {
        *trash = 0;
    }
    ts->tracing = 0;
    /* a new tasklet starts without trace and profile functions */
    ts->c_tracefunc = ts->c_profilefunc = NULL;
    ts->c_traceobj = ts->c_profileobj = NULL;
    ts_refresh_tracing(ts);
    ts_set_executor(ts, NULL);
    body(arg);
    Py_UNREACHABLE();
}

static void
free_chunks(SlPyState *st)
{
    /* Chunks CPython pushed on top of ours (frames that did not fit) came from its arena
       allocator; a tasklet that ended normally has popped them all already. */
    _PyStackChunk *chunk = st->chunk;
    if (chunk != NULL && chunk != st->root_chunk) {
        PyObjectArenaAllocator arena;
        PyObject_GetArenaAllocator(&arena);
        while (chunk != NULL && chunk != st->root_chunk) {
            _PyStackChunk *previous = chunk->previous;
            arena.free(arena.ctx, chunk, chunk->size);
            chunk = previous;
        }
    }
    PyMem_RawFree(st->root_chunk);
    st->root_chunk = NULL;
    st->chunk_code = NULL;
    st->chunk = NULL;
    st->chunk_top = NULL;
    st->chunk_limit = NULL;
}

/* Forget everything but the frames; the references go to refs. */
static void
detach_state(SlPyState *st, SlRefs *refs)
{
    free_chunks(st);
    sl_pystate_forget_running(st);
    st->frames_unsafe = 0;
    if (st->exposed != &st->exposed_one) {
        free(st->exposed);
    }
    st->exposed = NULL;
    st->exposed_capacity = 0;
    st->py_depth = st->c_depth = st->py_bonus = st->depth_offset = 0;
    st->direct = 0;
    sl_refs_add(refs, st->exc_value);
    st->exc_value = NULL;
    sl_refs_add(refs, st->context);
    st->context = NULL;
    sl_refs_add(refs, st->traceobj);
    sl_refs_add(refs, st->profileobj);
    st->traceobj = st->profileobj = NULL;
    st->tracefunc = st->profilefunc = NULL;
}

/* A sys.monitoring tool id of our own, claimed on first need; -1: none free. */
static int refresh_tool = -2;

void
sl_pystate_refresh_instrumentation(PyThreadState *ts)
{
    uint64_t now = ts_instrumentation_version(ts);
    PyObject *saved = sl_pystate_fetch_error();
    PyObject *mon = PySys_GetObject("monitoring"); /* borrowed */
    if (mon == NULL || refresh_tool == -1) {
        goto done;
    }
    if (refresh_tool == -2) {
        refresh_tool = -1;
        for (int id = 4; id >= 3; id--) {
            PyObject *r = PyObject_CallMethod(mon, "use_tool_id", "is", id, "stackless");
            if (r != NULL) {
                Py_DECREF(r);
                refresh_tool = id;
                break;
            }
            PyErr_Clear();
        }
        if (refresh_tool == -1) {
            goto done;
        }
    }
    /* Setting a code object's local events re-instruments it for the current state:
       toggle a local event of our (otherwise idle) tool and back. */
    for (Frame *f = ts_frame(ts); f != NULL; f = f->previous) {
        PyCodeObject *code = frame_on_c_stack(f) ? NULL : frame_code(f);
        if (code == NULL || code_instrumentation_version(code) == now) {
            continue;
        }
        PyObject *r1 = PyObject_CallMethod(mon, "set_local_events", "iOi", refresh_tool,
                                           (PyObject *)code, 32 /* LINE */);
        PyObject *r2 = r1 ? PyObject_CallMethod(mon, "set_local_events", "iOi", refresh_tool,
                                                (PyObject *)code, 0)
                          : NULL;
        Py_XDECREF(r1);
        Py_XDECREF(r2);
        if (r2 == NULL) {
            PyErr_Clear();
        }
    }
done:
    sl_pystate_restore_error(saved);
}

void
sl_pystate_drop_hooks(PyThreadState *ts)
{
    if (ts->c_tracefunc != NULL) {
        PyEval_SetTrace(NULL, NULL);
    }
    if (ts->c_profilefunc != NULL) {
        PyEval_SetProfile(NULL, NULL);
    }
}

void
sl_pystate_forget_running(SlPyState *st)
{
    st->frame = NULL;
    st->cframe = NULL;
    st->executor = NULL;
    st->chunk = NULL;
    st->chunk_top = NULL;
    st->chunk_limit = NULL;
    st->exc_info = NULL;
    st->exc_previous = NULL;
    st->stack_top = NULL;
    st->nexposed = 0;
}

void
sl_pystate_release(SlPyState *st)
{
    SlRefs refs = {NULL, 0, 0};
    detach_state(st, &refs);
    sl_refs_release(&refs);
}

/* ---- frames of a suspended tasklet ------------------------------------------------- */

/* How many localsplus slots of frame f hold owned references: locals, cells and the
   value stack as far as its depth is known. A frame that called a Python function inline
   stored its stack pointer; the innermost frame's is known when the tasklet blocked in a
   call whose arguments lie on that frame's stack; otherwise only the locals are known. */
static int
frame_live_slots(SlPyState *st, Frame *f)
{
    PyCodeObject *code = frame_code(f);
    if (code == NULL) {
        return 0;
    }
    int stored = frame_stored_stacktop(f);
    if (stored >= 0) {
        return stored;
    }
    int nlocals = code->co_nlocalsplus;
    if (f == st->frame && st->stack_top != NULL) {
        PyObject **base = (PyObject **)(f->localsplus + nlocals);
        if (st->stack_top >= base && st->stack_top <= base + code->co_stacksize) {
            return (int)(st->stack_top - (PyObject **)f->localsplus);
        }
    }
    return nlocals;
}

int
sl_pystate_traverse(SlPyState *st, visitproc visit, void *arg)
{
    Py_VISIT(st->exc_value);
    Py_VISIT(st->context);
    Py_VISIT(st->traceobj);
    Py_VISIT(st->profileobj);
    if (st->frames_unsafe) {
        return 0;
    }
    for (Frame *f = st->frame; f != NULL; f = f->previous) {
        if (f->owner == FRAME_OWNED_BY_THREAD) {
            Py_VISIT(slot_owned(*frame_code_slot(f)));
            Py_VISIT(slot_owned(*frame_func_slot(f)));
            Py_VISIT(f->f_locals);
            Py_VISIT(f->frame_obj);
            int n = frame_live_slots(st, f);
            for (int i = 0; i < n; i++) {
                Py_VISIT(slot_owned(f->localsplus[i]));
            }
        }
        else if (f->owner == FRAME_OWNED_BY_GENERATOR && !running_gen_frame_traverses_itself(f)) {
            /* The generator visits its frame's specials, and its locals only while it has
               a stored stack pointer; while it runs, the tasklet owns them. */
            int n = frame_live_slots(st, f);
            for (int i = 0; i < n; i++) {
                Py_VISIT(slot_owned(f->localsplus[i]));
            }
        }
    }
    return 0;
}

void
sl_refs_add(SlRefs *r, PyObject *o)
{
    if (o == NULL) {
        return;
    }
    if (r->n == r->capacity) {
        size_t cap = r->capacity ? r->capacity * 2 : 16;
        PyObject **items = realloc(r->items, cap * sizeof(PyObject *));
        if (items == NULL) {
            return; /* out of memory: leak o rather than fail */
        }
        r->items = items;
        r->capacity = cap;
    }
    r->items[r->n++] = o;
}

void
sl_refs_release(SlRefs *r)
{
    /* Take the array first: a release may add to another SlRefs, never to this one. */
    PyObject **items = r->items;
    size_t n = r->n;
    r->items = NULL;
    r->n = r->capacity = 0;
    for (size_t i = 0; i < n; i++) {
        Py_DECREF(items[i]);
    }
    free(items);
}

/* Give a frame object that outlives its frame a copy of the frame, as CPython does when a
   frame that still has a frame object returns. The copy takes over the references of the
   first n slots. */
static void
hand_frame_to_object(Frame *f, int n)
{
    PyFrameObject *fo = f->frame_obj;
    Frame *copy = (Frame *)fo->_f_frame_data;
    memcpy(copy, f, (size_t)((char *)&f->localsplus[n] - (char *)f));
    copy->frame_obj = NULL;
    copy->previous = NULL;
    frame_set_stacktop(copy, n);
    copy->owner = FRAME_OWNED_BY_FRAME_OBJECT;
    fo->f_frame = copy;
    if (f->owner == FRAME_OWNED_BY_GENERATOR && cleared_gen_frame_keeps_code()) {
        slot_make_owned(frame_code_slot(copy)); /* the generator keeps its own */
    }
    if (!PyObject_GC_IsTracked((PyObject *)fo)) {
        PyObject_GC_Track((PyObject *)fo);
    }
}

static void
discard_frame(SlPyState *st, Frame *f, SlRefs *g)
{
    int n = frame_live_slots(st, f);
    if (f->owner == FRAME_OWNED_BY_GENERATOR) {
        PyGenObject *gen = frame_generator(f);
        gen->gi_frame_state = FRAME_CLEARED;
        gen->gi_exc_state.previous_item = NULL;
    }
    PyFrameObject *fo = f->frame_obj;
    f->frame_obj = NULL;
    if (fo != NULL && Py_REFCNT(fo) > 1) {
        f->frame_obj = fo;
        hand_frame_to_object(f, n);
        f->frame_obj = NULL;
        sl_refs_add(g, (PyObject *)fo);
        return;
    }
    sl_refs_add(g, (PyObject *)fo);
    for (int i = 0; i < n; i++) {
        sl_refs_add(g, slot_owned(f->localsplus[i]));
        f->localsplus[i] = SLOT_NULL;
    }
    sl_refs_add(g, f->f_locals);
    f->f_locals = NULL;
    sl_refs_add(g, slot_owned(*frame_func_slot(f)));
    *frame_func_slot(f) = SLOT_NULL;
    if (f->owner != FRAME_OWNED_BY_GENERATOR || !cleared_gen_frame_keeps_code()) {
        sl_refs_add(g, slot_owned(*frame_code_slot(f)));
        *frame_code_slot(f) = SLOT_NULL;
    }
}

void
sl_pystate_discard(SlPyState *st, SlRefs *refs)
{
    if (!st->frames_unsafe) {
        Frame *f = st->frame;
        while (f != NULL) {
            Frame *previous = f->previous;
            if (f->owner == FRAME_OWNED_BY_THREAD || f->owner == FRAME_OWNED_BY_GENERATOR) {
                discard_frame(st, f, refs);
            }
            f->previous = NULL;
            f = previous;
        }
    }
    st->nexposed = 0;
    st->frame = NULL;
    detach_state(st, refs);
}

/* ---- introspection ------------------------------------------------------------------ */

PyObject *
sl_pystate_frame(PyThreadState *ts, SlPyState *st)
{
    if (st == NULL) {
        return (PyObject *)PyThreadState_GetFrame(ts);
    }
    Frame *f = first_complete(st);
    if (f == NULL) {
        return NULL;
    }
    if (f->frame_obj != NULL) {
        return Py_NewRef(f->frame_obj);
    }
    /* Frame objects are made by CPython's private _PyFrame_MakeAndSetFrameObject(); reach
       it through PyThreadState_GetFrame() with the suspended frame briefly in place of the
       running one. No collection may run meanwhile: a finalizer would see that chain. */
    int gc_was_enabled = PyGC_Disable();
    Frame *running = ts_frame(ts);
    ts_set_frame(ts, f);
    PyObject *fo = (PyObject *)PyThreadState_GetFrame(ts);
    ts_set_frame(ts, running);
    if (gc_was_enabled) {
        PyGC_Enable();
    }
    return fo;
}

static int offset_after(PyCodeObject *code, int at, int for_iter);
static int is_running_generator(Frame *f);

/* Whether the C boundary below f is only a for loop resuming the generator f runs: that
   holds no C state a restore could not rebuild (the loop's FOR_ITER just runs again). */
static int
boundary_is_for_loop(Frame *f, Frame *caller)
{
    PyCodeObject *code = caller != NULL ? frame_code(caller) : NULL;
    return code != NULL && is_running_generator(f) &&
           offset_after(code, (int)(frame_instr(caller) - _PyCode_CODE(code)), 1) >= 0;
}

int
sl_pystate_c_boundaries(PyThreadState *ts, SlPyState *st, int restorable)
{
    int boundaries = st != NULL && !st->direct ? 1 : 0;
#if !defined(SL_PY311)
    if (st != NULL) {
        for (int i = 0; i < st->nexposed; i++) {
            Frame *f = st->exposed[i].frame;
            boundaries += !(restorable && boundary_is_for_loop(f, f->previous));
        }
        return boundaries;
    }
#endif
    if (st != NULL && st->frames_unsafe) {
        return boundaries + 1;
    }
    Frame *inner = NULL;
    for (Frame *f = st ? st->frame : ts_frame(ts); f != NULL; f = f->previous) {
        if (frame_is_c_boundary(f)) {
            boundaries +=
                !(restorable && boundary_is_for_loop(frame_entered_at(f, inner), f->previous));
        }
        inner = f;
    }
    return boundaries;
}

int
sl_pystate_at_loop_check(PyThreadState *ts)
{
    Frame *f = ts_frame(ts);
    while (f != NULL && frame_on_c_stack(f)) {
        f = f->previous;
    }
    switch (frame_opcode(f)) {
    case RESUME:
    case JUMP_BACKWARD:
#ifdef RESUME_QUICK
    case RESUME_QUICK:
#endif
#ifdef RESUME_CHECK
    case RESUME_CHECK:
#endif
#ifdef JUMP_BACKWARD_QUICK
    case JUMP_BACKWARD_QUICK:
#endif
#ifdef JUMP_BACKWARD_JIT
    case JUMP_BACKWARD_JIT:
#endif
#ifdef JUMP_BACKWARD_NO_JIT
    case JUMP_BACKWARD_NO_JIT:
#endif
#ifdef INSTRUMENTED_RESUME
    case INSTRUMENTED_RESUME:
#endif
#ifdef INSTRUMENTED_JUMP_BACKWARD
    case INSTRUMENTED_JUMP_BACKWARD:
#endif
        return 1;
    default:
        return 0;
    }
}

int
sl_pystate_recursion_depth(PyThreadState *ts, SlPyState *st, int running)
{
    return (running ? ts_py_depth(ts) + st->py_bonus : st->py_depth) - st->depth_offset;
}

/* ---- version-dependent public API --------------------------------------------------- */

void
sl_pystate_write_unraisable(const char *where, PyObject *obj)
{
#if !defined(SL_PY311) && !defined(SL_PY312)
    PyErr_FormatUnraisable("Exception ignored %s: %R", where, obj);
#else
    _PyErr_WriteUnraisableMsg(where, obj);
#endif
}

int
sl_pystate_finalizing(void)
{
#if !defined(SL_PY311) && !defined(SL_PY312)
    return Py_IsFinalizing();
#else
    return _Py_IsFinalizing();
#endif
}

PyObject *
sl_pystate_fetch_error(void)
{
#if defined(SL_PY311)
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    if (type == NULL) {
        return NULL;
    }
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL && value != NULL) {
        PyException_SetTraceback(value, tb);
    }
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return value;
#else
    return PyErr_GetRaisedException();
#endif
}

void
sl_pystate_restore_error(PyObject *exc)
{
#if defined(SL_PY311)
    if (exc == NULL) {
        return;
    }
    PyErr_Restore(Py_NewRef(Py_TYPE(exc)), exc, PyException_GetTraceback(exc));
#else
    PyErr_SetRaisedException(exc);
#endif
}

PyObject *
sl_pystate_thread_ids(void)
{
    PyObject *ids = PyList_New(0);
    if (ids == NULL) {
        return NULL;
    }
    PyInterpreterState *interp = PyThreadState_GetInterpreter(PyThreadState_Get());
    for (PyThreadState *ts = PyInterpreterState_ThreadHead(interp); ts != NULL;
         ts = PyThreadState_Next(ts)) {
        PyObject *id = PyLong_FromUnsignedLong(ts->thread_id);
        if (id == NULL || PyList_Insert(ids, 0, id) < 0) {
            Py_XDECREF(id);
            Py_DECREF(ids);
            return NULL;
        }
        Py_DECREF(id);
    }
    return ids;
}

int
sl_pystate_foreign_trip_wakes_main(void)
{
#if defined(SL_PY311) || defined(SL_PY312)
    return 0;
#else
    return 1;
#endif
}

int
sl_pystate_gc_collecting(void)
{
    return PyInterpreterState_Get()->gc.collecting;
}

/* ---- frames out of a suspended tasklet and back in (pickling) ----------------------- */

/* A restored frame waits in a "shell": a generator object that owns a frame of ordinary
   (non-generator) code. The eval loop runs such a frame like any other and, because a
   generator owns it, clears it when it returns or unwinds (3.12+; on 3.11 the driver
   below finishes the job and the generator's dealloc clears the frame). A shell that has
   not run yet stays in the CREATED state, so that dropping it never runs its code. */

#define SL_GENERATOR_FLAGS                                                                         \
    (CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR | CO_ITERABLE_COROUTINE)

static inline Frame *
gen_frame(PyGenObject *gen)
{
#if defined(SL_STACKREFS)
    return &gen->gi_iframe;
#else
    return (Frame *)gen->gi_iframe;
#endif
}

/* Where a frame continues: as a unit offset into its code. */
static inline int
frame_resume_offset_of_shell(Frame *f, PyCodeObject *code)
{
#if defined(SL_PY311) || defined(SL_PY312)
    return (int)(f->prev_instr + 1 - _PyCode_CODE(code));
#else
    return (int)(f->instr_ptr - _PyCode_CODE(code));
#endif
}

static inline void
frame_set_resume_offset(Frame *f, PyCodeObject *code, int offset)
{
#if defined(SL_PY311) || defined(SL_PY312)
    f->prev_instr = _PyCode_CODE(code) + offset - 1;
#else
    f->instr_ptr = _PyCode_CODE(code) + offset;
#endif
#if !defined(SL_PY311)
    f->return_offset = 0;
#endif
}

/* Where a frame that called a Python function inline continues once that returns: what
   the eval loop's return path computes. */
static inline int
frame_return_offset(Frame *f, PyCodeObject *code)
{
#if defined(SL_PY311)
    return (int)(f->prev_instr + 1 - _PyCode_CODE(code));
#elif defined(SL_PY312)
    return (int)(f->prev_instr + f->return_offset + 1 - _PyCode_CODE(code));
#else
    return (int)(f->instr_ptr + f->return_offset - _PyCode_CODE(code));
#endif
}

/* The unit after the call instruction at `at` and its inline caches (on 3.11 a PRECALL
   and the CALL after it), read from the de-specialised bytecode; -1 if `at` is no call
   (with for_iter: no FOR_ITER instead). */
static int
offset_after(PyCodeObject *code, int at, int for_iter)
{
    PyObject *bytes = PyCode_GetCode(code);
    if (bytes == NULL) {
        PyErr_Clear();
        return -1;
    }
    const unsigned char *b = (const unsigned char *)PyBytes_AS_STRING(bytes);
    int n = (int)(PyBytes_GET_SIZE(bytes) / 2);
    int result = -1;
    while (at > 0 && at < n && b[2 * at] == CACHE) {
        at--; /* 3.12 leaves an inline call's frame at the last cache unit */
    }
    if (at >= 0 && at < n) {
        int op = b[2 * at];
        int i = at + 1;
        while (i < n && b[2 * i] == CACHE) {
            i++;
        }
#if defined(SL_PY311)
        if (op == PRECALL && i < n && b[2 * i] == CALL) {
            op = CALL;
            i++;
            while (i < n && b[2 * i] == CACHE) {
                i++;
            }
        }
#endif
#if defined(SL_PY311) || defined(SL_PY312)
        int is_call = op == CALL;
#else
        int is_call = op == CALL || op == CALL_KW;
#endif
        if (for_iter) {
            is_call = op == FOR_ITER;
        }
        if (is_call && i < n) {
            result = i;
        }
    }
    Py_DECREF(bytes);
    return result;
}

static int
is_shell(Frame *f, PyCodeObject *code)
{
    return f->owner == FRAME_OWNED_BY_GENERATOR && !(code->co_flags & SL_GENERATOR_FLAGS);
}

/* A generator (not a coroutine) running in the chain: a for loop's iterator. */
static int
is_running_generator(Frame *f)
{
    PyCodeObject *code = f != NULL ? frame_code(f) : NULL;
    return code != NULL && f->owner == FRAME_OWNED_BY_GENERATOR &&
           (code->co_flags & CO_GENERATOR) && frame_generator(f)->gi_frame_state == FRAME_EXECUTING;
}

/* Whether f was entered from C code: a boundary between f and its caller. */
static int
frame_entered_from_c(SlPyState *st, Frame *f)
{
#if defined(SL_PY311)
    (void)st;
    return f->is_entry;
#else
    for (int i = 0; i < st->nexposed; i++) {
        if (st->exposed[i].frame == f) {
            return 1;
        }
    }
    return 0;
#endif
}

/* A slot as a Python object for a frame record: NULL as null_marker, a tagged integer
   (3.14+) as tagged_int(value); a new reference. */
static PyObject *
slot_to_record(Slot s, PyObject *null_marker, PyObject *tagged_int)
{
#if defined(SL_STACKREFS)
    if (PyStackRef_IsTaggedInt(s)) {
        return PyObject_CallFunction(tagged_int, "n", (Py_ssize_t)PyStackRef_UntagInt(s));
    }
#else
    (void)tagged_int;
#endif
    PyObject *o = slot_object(s);
    return Py_NewRef(o != NULL ? o : null_marker);
}

static PyObject *
slots_to_tuple(Slot *slots, int n, PyObject *null_marker, PyObject *tagged_int)
{
    PyObject *t = PyTuple_New(n);
    if (t == NULL) {
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        PyObject *o = slot_to_record(slots[i], null_marker, tagged_int);
        if (o == NULL) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, i, o);
    }
    return t;
}

/* One record: (function, code, resume offset, locals, stack); offset -1 and None for
   locals and stack mark a frame with C state. */
static PyObject *
frame_record(Frame *f, PyCodeObject *code, int offset, int depth, PyObject *null_marker,
             PyObject *tagged_int)
{
    PyObject *func = slot_object(*frame_func_slot(f));
    if (func == NULL) {
        func = Py_None;
    }
    if (offset < 0) {
        return Py_BuildValue("(OOiOO)", func, code, -1, Py_None, Py_None);
    }
    int nlocals = code->co_nlocalsplus;
    PyObject *locals = slots_to_tuple(f->localsplus, nlocals, null_marker, tagged_int);
    PyObject *stack =
        locals ? slots_to_tuple(f->localsplus + nlocals, depth, null_marker, tagged_int) : NULL;
    if (stack == NULL) {
        Py_XDECREF(locals);
        return NULL;
    }
    return Py_BuildValue("(OOiNN)", func, code, offset, locals, stack);
}

/* The stack depth at instruction `at` by the bytecode analysis; -1 with an exception. */
static int
stack_depth_at(PyObject *depth_at, PyCodeObject *code, int at)
{
    PyObject *d = PyObject_CallFunction(depth_at, "Oi", code, at);
    int depth = d != NULL ? (int)PyLong_AsLong(d) : -1;
    Py_XDECREF(d);
    if (depth < 0 && !PyErr_Occurred()) {
        PyErr_SetString(PyExc_RuntimeError, "no stack depth for a frame");
    }
    return PyErr_Occurred() ? -1 : depth;
}

PyObject *
sl_pystate_capture(SlPyState *st, PyObject *null_marker, PyObject *tagged_int, PyObject *depth_at)
{
    if (st->frames_unsafe) {
        PyErr_SetString(PyExc_RuntimeError, "the tasklet's frames cannot be inspected");
        return NULL;
    }
    PyObject *records = PyList_New(0);
    if (records == NULL) {
        return NULL;
    }
    Frame *inner = NULL;
    for (Frame *f = st->frame; f != NULL; f = f->previous) {
        PyCodeObject *code = frame_code(f);
        if (code == NULL || frame_on_c_stack(f)) {
            if (code == NULL && f->previous == NULL) {
                break; /* 3.15: the thread's base frame */
            }
            continue;
        }
        int running_gen = is_running_generator(f);
        if (f->owner == FRAME_OWNED_BY_GENERATOR && !is_shell(f, code) && !running_gen) {
            PyErr_Format(PyExc_RuntimeError,
                         "cannot pickle a tasklet suspended inside the coroutine or async "
                         "generator '%U'",
                         code->co_qualname);
            goto error;
        }
        int offset = -1, depth = 0;
        int units = (int)Py_SIZE(code);
        if (f->owner == FRAME_OWNED_BY_GENERATOR &&
            frame_generator(f)->gi_frame_state == FRAME_CREATED) {
            offset = frame_resume_offset_of_shell(f, code); /* restored, not run yet */
            depth = frame_stored_stacktop(f) - code->co_nlocalsplus;
        }
        else if (inner == NULL) {
            int at = (int)(frame_instr(f) - _PyCode_CODE(code));
            if (st->direct && st->stack_top != NULL) {
                Slot *base = f->localsplus + code->co_nlocalsplus;
                depth = (int)((Slot *)st->stack_top - base) - st->call_items;
                offset = offset_after(code, at, 0);
            }
            else if (st->direct && (offset = offset_after(code, at, 1)) >= 0) {
                /* `for x in channel`: blocked in the channel's __next__ */
                depth = frame_stored_stacktop(f) - code->co_nlocalsplus;
                if (frame_stored_stacktop(f) < 0 &&
                    (depth = stack_depth_at(depth_at, code, at)) < 0) {
                    goto error;
                }
            }
        }
        else if (is_running_generator(inner)) {
            /* a for loop over that generator: the eval loop resumed it for FOR_ITER, inline
               or through the generator's __next__; f goes on after the FOR_ITER when the
               generator yields (and runs the FOR_ITER again when it is exhausted) */
            int at = (int)(frame_instr(f) - _PyCode_CODE(code));
            offset = offset_after(code, at, 1);
            depth = frame_stored_stacktop(f) - code->co_nlocalsplus;
            if (offset >= 0 && frame_stored_stacktop(f) < 0 &&
                (depth = stack_depth_at(depth_at, code, at)) < 0) {
                goto error;
            }
        }
        else if (!frame_entered_from_c(st, inner) || is_shell(inner, frame_code(inner))) {
            offset = frame_return_offset(f, code);
            depth = frame_stored_stacktop(f) - code->co_nlocalsplus;
        }
        if (offset < 0 || offset >= units || depth < 0 || depth > code->co_stacksize) {
            offset = -1; /* C state: what it waits for cannot be rebuilt */
        }
        PyObject *rec = frame_record(f, code, offset, depth, null_marker, tagged_int);
        if (rec != NULL) {
            /* a running generator: itself, and the exception its frames handle */
            PyGenObject *gen = running_gen ? frame_generator(f) : NULL;
            PyObject *exc =
                gen && gen->gi_exc_state.exc_value ? gen->gi_exc_state.exc_value : Py_None;
            Py_SETREF(rec, Py_BuildValue("(OOO)", rec, gen ? (PyObject *)gen : Py_None, exc));
        }
        if (rec == NULL || PyList_Append(records, rec) < 0) {
            Py_XDECREF(rec);
            goto error;
        }
        Py_DECREF(rec);
        inner = f;
    }
    if (PyList_Reverse(records) < 0) {
        goto error;
    }
    return records;
error:
    Py_DECREF(records);
    return NULL;
}

/* Put a record's value into a fresh slot (a new reference, or a tagged integer). */
static int
record_to_slot(PyObject *o, Slot *slot, PyObject *null_marker, PyObject *tagged_int, int on_stack)
{
    if (o == null_marker) {
        *slot = SLOT_NULL;
        return 0;
    }
    if (Py_IS_TYPE(o, (PyTypeObject *)tagged_int)) {
        if (!on_stack) {
            PyErr_SetString(PyExc_ValueError, "a tagged integer in a frame's locals");
            return -1;
        }
#if defined(SL_STACKREFS)
        PyObject *v = PyObject_GetAttrString(o, "value");
        Py_ssize_t n = v != NULL ? PyLong_AsSsize_t(v) : -1;
        Py_XDECREF(v);
        if (n < 0 || n > (Py_ssize_t)(INTPTR_MAX >> 2)) {
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_ValueError, "bad tagged integer in a frame");
            }
            return -1;
        }
        *slot = PyStackRef_TagInt((intptr_t)n);
        return 0;
#else
        PyErr_SetString(PyExc_ValueError, "tagged integers are not used by this Python");
        return -1;
#endif
    }
#if defined(SL_STACKREFS)
    *slot = PyStackRef_FromPyObjectNew(o);
#else
    *slot = Py_NewRef(o);
#endif
    return 0;
}

static void
init_shell_frame(PyThreadState *ts, Frame *f, PyFunctionObject *func, PyCodeObject *code)
{
#if defined(SL_PY311)
    (void)ts;
    _PyFrame_InitializeSpecials(f, (PyFunctionObject *)Py_NewRef(func), NULL, code->co_nlocalsplus);
#elif defined(SL_PY312) || defined(SL_PY313)
    (void)ts;
    _PyFrame_Initialize(f, (PyFunctionObject *)Py_NewRef(func), NULL, code, 0);
#else
    _PyFrame_Initialize(ts, f, PyStackRef_FromPyObjectNew((PyObject *)func), NULL, code, 0, NULL);
#endif
    f->owner = FRAME_OWNED_BY_GENERATOR;
}

/* A generator-type object owning a frame for func's code filled from a record, in frame
   state `state`; generator says whether the code must be generator code (a restored
   generator, coroutine or async generator) or must not be (a shell). Checks what memory
   safety needs: sizes, the offset's range, cells where the code reads cells. */
static PyObject *
new_frame_owner(PyObject *func, int offset, PyObject *locals, PyObject *stack, int state,
                int generator, PyObject *null_marker, PyObject *tagged_int)
{
    if (!PyFunction_Check(func)) {
        PyErr_SetString(PyExc_ValueError, "a frame's function is not a function");
        return NULL;
    }
    PyCodeObject *code = (PyCodeObject *)PyFunction_GET_CODE(func);
    int flags = code->co_flags;
    if (!(flags & SL_GENERATOR_FLAGS) != !generator) {
        PyErr_SetString(PyExc_ValueError, generator ? "a generator's code is not generator code"
                                                    : "a frame's code is generator code");
        return NULL;
    }
    PyTypeObject *type = (flags & CO_COROUTINE)         ? &PyCoro_Type
                         : (flags & CO_ASYNC_GENERATOR) ? &PyAsyncGen_Type
                                                        : &PyGen_Type;
    int nlocals = code->co_nlocalsplus;
    /* room for the value the frame receives when it resumes */
    if (!PyTuple_Check(locals) || PyTuple_GET_SIZE(locals) != nlocals || !PyTuple_Check(stack) ||
        PyTuple_GET_SIZE(stack) >= code->co_stacksize || offset <= 0 || offset >= Py_SIZE(code)) {
        PyErr_Format(PyExc_ValueError,
                     "frame of '%U' does not fit its code (locals, stack or offset)",
                     code->co_qualname);
        return NULL;
    }
    /* Free and cell variables are read as cells without a check. */
    for (int i = 0; i < nlocals; i++) {
        int kind = _PyLocals_GetKind(code->co_localspluskinds, i);
        PyObject *v = PyTuple_GET_ITEM(locals, i);
        if ((kind & (CO_FAST_CELL | CO_FAST_FREE)) && !PyCell_Check(v)) {
            PyErr_Format(PyExc_ValueError, "frame of '%U': variable %d must be a cell",
                         code->co_qualname, i);
            return NULL;
        }
    }
    int depth = (int)PyTuple_GET_SIZE(stack);
    PyGenObject *gen = PyObject_GC_NewVar(PyGenObject, type, nlocals + code->co_stacksize);
    if (gen == NULL) {
        return NULL;
    }
#if defined(SL_PY311)
    gen->gi_code = (PyCodeObject *)Py_NewRef(code);
#endif
    gen->gi_weakreflist = NULL;
    gen->gi_name = Py_NewRef(((PyFunctionObject *)func)->func_name);
    gen->gi_qualname = Py_NewRef(((PyFunctionObject *)func)->func_qualname);
    gen->gi_exc_state.exc_value = NULL;
    gen->gi_exc_state.previous_item = NULL;
    gen->gi_origin_or_finalizer = NULL;
    gen->gi_hooks_inited = 0;
    gen->gi_closed = 0;
    gen->gi_running_async = 0;
    gen->gi_frame_state = (int8_t)state;
    Frame *f = gen_frame(gen);
    PyThreadState *ts = PyThreadState_Get();
    init_shell_frame(ts, f, (PyFunctionObject *)func, code);
    f->previous = NULL;
    frame_set_resume_offset(f, code, offset);
    int filled = 0;
    for (; filled < nlocals + depth; filled++) {
        PyObject *o = filled < nlocals ? PyTuple_GET_ITEM(locals, filled)
                                       : PyTuple_GET_ITEM(stack, filled - nlocals);
        if (record_to_slot(o, &f->localsplus[filled], null_marker, tagged_int, filled >= nlocals) <
            0) {
            break;
        }
    }
    frame_set_stacktop(f, filled);
    if (!generator) {
        /* A generator's finaliser closes it, which on 3.11 runs even a CREATED generator's
           code: a shell must run only when the driver resumes it. */
        _PyGC_SET_FINALIZED((PyObject *)gen);
    }
    PyObject_GC_Track((PyObject *)gen);
    if (filled < nlocals + depth) {
        Py_DECREF(gen);
        return NULL;
    }
    return (PyObject *)gen;
}

PyObject *
sl_pystate_new_shell(PyObject *func, int offset, PyObject *locals, PyObject *stack,
                     PyObject *null_marker, PyObject *tagged_int)
{
    return new_frame_owner(func, offset, locals, stack, FRAME_CREATED, 0, null_marker, tagged_int);
}

/* The frame states a record names: new, suspended, suspended in `yield from`/await. */
static int
record_state(int state)
{
    switch (state) {
    case SL_GEN_CREATED:
        return FRAME_CREATED;
    case SL_GEN_SUSPENDED:
        return FRAME_SUSPENDED;
    case SL_GEN_SUSPENDED_YIELD_FROM:
#if defined(SL_PY311) || defined(SL_PY312)
        return FRAME_SUSPENDED;
#else
        return FRAME_SUSPENDED_YIELD_FROM;
#endif
    default:
        return -100;
    }
}

PyObject *
sl_pystate_new_generator(PyObject *func, int offset, PyObject *locals, PyObject *stack, int state,
                         PyObject *exc, PyObject *null_marker, PyObject *tagged_int)
{
    int frame_state = record_state(state);
    if (frame_state == -100) {
        PyErr_SetString(PyExc_ValueError, "bad generator state");
        return NULL;
    }
    PyObject *gen =
        new_frame_owner(func, offset, locals, stack, frame_state, 1, null_marker, tagged_int);
    if (gen != NULL && exc != NULL && exc != Py_None) {
        ((PyGenObject *)gen)->gi_exc_state.exc_value = Py_NewRef(exc);
    }
    return gen;
}

PyObject *
sl_pystate_generator_record(PyObject *o, PyObject *null_marker, PyObject *tagged_int)
{
    PyGenObject *gen = (PyGenObject *)o;
    Frame *f = gen_frame(gen);
    int state;
    switch (gen->gi_frame_state) {
    case FRAME_CREATED:
        state = SL_GEN_CREATED;
        break;
    case FRAME_SUSPENDED:
        state = SL_GEN_SUSPENDED;
        break;
#if !defined(SL_PY311) && !defined(SL_PY312)
    case FRAME_SUSPENDED_YIELD_FROM:
        state = SL_GEN_SUSPENDED_YIELD_FROM;
        break;
#endif
    case FRAME_EXECUTING:
        PyErr_SetString(PyExc_RuntimeError, "cannot pickle a running generator or coroutine");
        return NULL;
    default:
        return Py_BuildValue("(Oi)", Py_None, SL_GEN_EXHAUSTED);
    }
    PyCodeObject *code = frame_code(f);
    PyObject *func = slot_object(*frame_func_slot(f));
    int top = frame_stored_stacktop(f);
    if (code == NULL || func == NULL || top < code->co_nlocalsplus) {
        PyErr_SetString(PyExc_RuntimeError, "generator frame cannot be inspected");
        return NULL;
    }
    int nlocals = code->co_nlocalsplus;
    PyObject *locals = slots_to_tuple(f->localsplus, nlocals, null_marker, tagged_int);
    PyObject *stack =
        locals ? slots_to_tuple(f->localsplus + nlocals, top - nlocals, null_marker, tagged_int)
               : NULL;
    if (stack == NULL) {
        Py_XDECREF(locals);
        return NULL;
    }
    PyObject *exc = gen->gi_exc_state.exc_value ? gen->gi_exc_state.exc_value : Py_None;
    return Py_BuildValue("(OiiNNO)", func, state, frame_resume_offset_of_shell(f, code), locals,
                         stack, exc);
}

PyObject *
sl_pystate_resume_generator(PyThreadState *ts, PyObject *gen, PyObject *caller, PyObject *value,
                            int *returned)
{
    Frame *running = ts_frame(ts);
    ts_set_frame(ts, caller != NULL ? gen_frame((PyGenObject *)caller) : ts_chain_root(ts));
    PyObject *result = NULL;
    *returned = 0;
    if (value != NULL) {
        PySendResult r = PyIter_Send(gen, value, &result);
        Py_DECREF(value);
        if (r == PYGEN_RETURN) {
            *returned = 1;
        }
    }
    else {
        PyObject *exc = sl_pystate_fetch_error();
        result = PyObject_CallMethod(gen, "throw", "O", exc);
        Py_XDECREF(exc);
        if (result == NULL && PyErr_ExceptionMatches(PyExc_StopIteration)) {
            PyObject *stop = sl_pystate_fetch_error();
            result = PyObject_GetAttrString(stop, "value");
            Py_DECREF(stop);
            *returned = result != NULL;
        }
    }
    ts_set_frame(ts, running);
    return result;
}

int
sl_pystate_is_shell(PyObject *o)
{
    if (!PyGen_CheckExact(o)) {
        return 0;
    }
    Frame *f = gen_frame((PyGenObject *)o);
    PyCodeObject *code = frame_code(f);
    return code != NULL && is_shell(f, code);
}

void
sl_pystate_link_shell(PyThreadState *ts, PyObject *inner, PyObject *outer)
{
    Frame *f = gen_frame((PyGenObject *)inner);
    f->previous = outer != NULL ? gen_frame((PyGenObject *)outer) : ts_chain_root(ts);
}

void
sl_pystate_set_shell_exception(PyObject *shell, PyObject *exc)
{
    PyGenObject *gen = (PyGenObject *)shell;
    Py_XSETREF(gen->gi_exc_state.exc_value, exc == Py_None ? NULL : Py_XNewRef(exc));
}

PyObject *
sl_pystate_resume_shell(PyThreadState *ts, PyObject *shell, PyObject *value, int at,
                        PyObject *exhausted)
{
    PyGenObject *gen = (PyGenObject *)shell;
    Frame *f = gen_frame(gen);
    if (gen->gi_frame_state != FRAME_CREATED) {
        Py_XDECREF(value);
        if (value != NULL) {
            PyErr_SetString(PyExc_RuntimeError, "restored frame was already resumed");
        }
        return NULL;
    }
    Frame *running = ts_frame(ts);
    ts_set_frame(ts, f->previous); /* its caller, so that f_back and tracebacks are natural */
    if (at > 0) {
        /* go on at `at` with nothing pushed (value is NULL); with `exhausted`, the
           iterator of the loop whose FOR_ITER that is gives way to it first */
        frame_set_resume_offset(f, frame_code(f), at);
        int top = frame_stored_stacktop(f);
        int slot = top - 1 - FOR_ITER_SLOTS_ABOVE_ITERATOR;
        if (exhausted != NULL && slot >= frame_code(f)->co_nlocalsplus) {
            Slot old = f->localsplus[slot];
#if defined(SL_STACKREFS)
            f->localsplus[slot] = PyStackRef_FromPyObjectNew(exhausted);
            PyStackRef_XCLOSE(old);
#else
            f->localsplus[slot] = Py_NewRef(exhausted);
            Py_XDECREF(old);
#endif
        }
    }
    else if (value != NULL) {
        int top = frame_stored_stacktop(f);
#if defined(SL_STACKREFS)
        f->localsplus[top] = PyStackRef_FromPyObjectSteal(value);
#else
        f->localsplus[top] = value;
#endif
        frame_set_stacktop(f, top + 1);
    }
    gen->gi_exc_state.previous_item = ts->exc_info;
    ts->exc_info = &gen->gi_exc_state;
    gen->gi_frame_state = FRAME_EXECUTING;
    PyObject *result = _PyEval_EvalFrameDefault(ts, f, value == NULL && at <= 0);
#if defined(SL_PY311)
    if (gen->gi_frame_state == FRAME_EXECUTING) {
        gen->gi_frame_state = FRAME_COMPLETED;
    }
    ts->exc_info = gen->gi_exc_state.previous_item;
    gen->gi_exc_state.previous_item = NULL;
    f->previous = NULL;
#endif
    ts_set_frame(ts, running);
    return result;
}
