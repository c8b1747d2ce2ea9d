/* What of the interpreter's thread state travels with a tasklet; see pystate.h.
 *
 * The only file that reads private CPython structures and tests PY_VERSION_HEX. Each
 * difference between 3.11, 3.12 and 3.13 is resolved in the accessors at the top; the
 * functions below them are written once.
 */
/* Compiled as core code (Py_BUILD_CORE from the start, so that the internal headers agree
   with the public ones); it references only symbols libpython exports. */
#define Py_BUILD_CORE 1
#include <Python.h>
#include "internal/pycore_frame.h"
#include "internal/pycore_interp.h"
#include "opcode.h"

#include "pystate.h"

#include <stdlib.h>
#include <string.h>

#if PY_VERSION_HEX >= 0x030E0000
#error "stackless: CPython 3.14+ is not supported by this build yet"
#elif PY_VERSION_HEX >= 0x030D0000
#define SL_PY313 1
#elif PY_VERSION_HEX >= 0x030C0000
#define SL_PY312 1
#elif PY_VERSION_HEX >= 0x030B0000
#define SL_PY311 1
#else
#error "stackless: CPython 3.11 or newer is required"
#endif

typedef _PyInterpreterFrame Frame;

/* ---- version accessors ------------------------------------------------------------ */

static inline PyCodeObject *
frame_code(Frame *f)
{
#if defined(SL_PY313)
    return PyCode_Check(f->f_executable) ? (PyCodeObject *)f->f_executable : NULL;
#else
    return f->f_code;
#endif
}

/* Strong references every live interpreter frame holds besides its locals and stack. */
static inline PyObject **
frame_func_slot(Frame *f)
{
#if defined(SL_PY311)
    return (PyObject **)&f->f_func;
#else
    return &f->f_funcobj;
#endif
}

static inline PyObject **
frame_code_slot(Frame *f)
{
#if defined(SL_PY313)
    return &f->f_executable;
#else
    return (PyObject **)&f->f_code;
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

/* A frame that lives inside an eval-loop activation on the C stack (3.12+), or, on 3.11,
   the first frame of such an activation (which lives in the data stack). */
static inline int
frame_is_c_boundary(Frame *f)
{
#if defined(SL_PY311)
    return f->is_entry;
#else
    return f->owner == FRAME_OWNED_BY_CSTACK;
#endif
}

static inline Frame *
ts_frame(PyThreadState *ts)
{
#if defined(SL_PY313)
    return ts->current_frame;
#else
    return ts->cframe->current_frame;
#endif
}

static inline void
ts_set_frame(PyThreadState *ts, Frame *f)
{
#if defined(SL_PY313)
    ts->current_frame = f;
#else
    ts->cframe->current_frame = f;
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

static inline void
ts_set_depths(PyThreadState *ts, int py_depth, int c_depth)
{
#if defined(SL_PY311)
    (void)c_depth; /* one counter for both */
    ts->recursion_remaining = ts->recursion_limit - py_depth;
#elif defined(SL_PY312)
    ts->py_recursion_remaining = ts->py_recursion_limit - py_depth;
    ts->c_recursion_remaining = C_RECURSION_LIMIT - c_depth;
#else
    ts->py_recursion_remaining = ts->py_recursion_limit - py_depth;
    ts->c_recursion_remaining = Py_C_RECURSION_LIMIT - c_depth;
#endif
}

static inline int
ts_c_depth(PyThreadState *ts)
{
#if defined(SL_PY311)
    (void)ts;
    return 0;
#elif defined(SL_PY312)
    return C_RECURSION_LIMIT - ts->c_recursion_remaining;
#else
    return Py_C_RECURSION_LIMIT - ts->c_recursion_remaining;
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
    (void)ts; /* 3.13 counts trashcan nesting in c_recursion_remaining */
    return NULL;
#endif
}

/* 3.11 keeps "is anyone tracing" in a byte of each eval activation's _PyCFrame; the
   incoming tasklet's cframe must learn the thread's current setting. */
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
        if (prev != NULL && prev->owner == FRAME_OWNED_BY_CSTACK) {
            Frame *beyond = prev;
            while (beyond != NULL && beyond->owner == FRAME_OWNED_BY_CSTACK) {
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
    while (f != NULL && (frame_code(f) == NULL
#if !defined(SL_PY311)
                         || f->owner == FRAME_OWNED_BY_CSTACK
#endif
                         || _PyFrame_IsIncomplete(f))) {
        f = f->previous;
    }
    return f;
}

/* ---- switching ---------------------------------------------------------------------- */

static void learn_chunk_size(SlPyState *st);

/* Whether frame f is executing a FOR_ITER instruction (so a __next__ it called came
   straight from the eval loop). */
static int
frame_in_for_iter(Frame *f)
{
    PyCodeObject *code = frame_code(f);
    if (code == NULL) {
        return 0;
    }
#if defined(SL_PY313)
    _Py_CODEUNIT *instr = f->instr_ptr;
#else
    _Py_CODEUNIT *instr = f->prev_instr;
#endif
    _Py_CODEUNIT *first = _PyCode_CODE(code);
    if (instr < first || instr >= first + Py_SIZE(code)) {
        return 0;
    }
    int op = _Py_OPCODE(*instr);
#if defined(SL_PY311)
    return op == FOR_ITER;
#else
    return op == FOR_ITER || op == INSTRUMENTED_FOR_ITER;
#endif
}

/* Record where the suspending call was made (see SL_CALLED_BY_FOR_ITER). */
static void
note_call_site(SlPyState *st, PyObject **call_site)
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
    PyObject **base = f->localsplus + code->co_nlocalsplus;
    if (call_site >= base && call_site <= base + code->co_stacksize) {
        st->stack_top = call_site;
        st->direct = 1;
    }
}

void
sl_pystate_save(PyThreadState *ts, SlPyState *st, PyObject **call_site)
{
    st->frame = ts_frame(ts);
#if !defined(SL_PY313)
    st->cframe = ts->cframe;
#endif
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
    st->recursion_headroom = ts->recursion_headroom;
    if (st->chunk_code != NULL) {
        learn_chunk_size(st);
    }
#if !defined(SL_PY311)
    expose_frames(st);
#endif
}

void
sl_pystate_restore(PyThreadState *ts, SlPyState *st)
{
#if !defined(SL_PY311)
    unexpose_frames(st);
#endif
#if defined(SL_PY313)
    ts->current_frame = st->frame;
#else
    ts->cframe = st->cframe;
#endif
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
    ts_refresh_tracing(ts);
    ts->recursion_headroom = st->recursion_headroom;
    st->stack_top = NULL;
    st->direct = 0;
}

/* ---- the life of a tasklet ---------------------------------------------------------- */

/* A tasklet's own data-stack chunk holds its frames while they fit; deeper calls overflow
   into 16 KiB chunks of CPython's own, which CPython frees again when they return. A
   small chunk keeps a blocked tasklet small, an overflow makes it big: so the size comes
   from how many words earlier tasklets running the same code needed, measured at every
   switch-out and kept in a small table keyed by code object (a stale or colliding entry
   only misguides a size). The first tasklet of a function gets its frame plus room for
   about three small calls. */
#define SL_CHUNK_SLACK_WORDS 48
#define SL_CHUNK_MARGIN_WORDS 8
#define SL_CHUNK_MAX_WORDS 2048 /* CPython's own chunk is better beyond 16 KiB */
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
    if (st->chunk == root) {
        used = (size_t)(st->chunk_top - (PyObject **)root);
    }
    else {
        used = 2 * root->size / sizeof(PyObject *); /* overflowed: try twice as much */
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
#if defined(SL_PY312)
    int share = (int)(C_RECURSION_LIMIT * used);
    c_depth = c_depth > share ? c_depth : share;
#elif defined(SL_PY313)
    int share = (int)(Py_C_RECURSION_LIMIT * used);
    c_depth = c_depth > share ? c_depth : share;
#endif
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
#if defined(SL_PY313)
    ts->current_frame = NULL;
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
    ts_refresh_tracing(ts);
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
    st->frame = NULL;
    st->cframe = NULL;
    st->exc_info = NULL;
    st->exc_previous = NULL;
    st->stack_top = NULL;
    st->nexposed = 0;
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
    if (f->stacktop >= 0) {
        return f->stacktop;
    }
    int nlocals = code->co_nlocalsplus;
    if (f == st->frame && st->stack_top != NULL) {
        PyObject **base = f->localsplus + nlocals;
        if (st->stack_top >= base && st->stack_top <= base + code->co_stacksize) {
            return (int)(st->stack_top - f->localsplus);
        }
    }
    return nlocals;
}

int
sl_pystate_traverse(SlPyState *st, visitproc visit, void *arg)
{
    Py_VISIT(st->exc_value);
    Py_VISIT(st->context);
    if (st->frames_unsafe) {
        return 0;
    }
    for (Frame *f = st->frame; f != NULL; f = f->previous) {
        if (f->owner == FRAME_OWNED_BY_THREAD) {
            Py_VISIT(*frame_code_slot(f));
            Py_VISIT(*frame_func_slot(f));
            Py_VISIT(f->f_locals);
            Py_VISIT(f->frame_obj);
            int n = frame_live_slots(st, f);
            for (int i = 0; i < n; i++) {
                Py_VISIT(f->localsplus[i]);
            }
        }
        else if (f->owner == FRAME_OWNED_BY_GENERATOR && f->stacktop < 0) {
            /* The generator visits its frame's specials, and its locals only while it has
               a stored stack pointer; while it runs, the tasklet owns them. */
            int n = frame_live_slots(st, f);
            for (int i = 0; i < n; i++) {
                Py_VISIT(f->localsplus[i]);
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
    copy->stacktop = n;
    copy->owner = FRAME_OWNED_BY_FRAME_OBJECT;
    fo->f_frame = copy;
    if (f->owner == FRAME_OWNED_BY_GENERATOR && cleared_gen_frame_keeps_code()) {
        Py_INCREF(*frame_code_slot(copy)); /* the generator keeps its own */
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
        PyGenObject *gen = _PyFrame_GetGenerator(f);
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
        sl_refs_add(g, f->localsplus[i]);
        f->localsplus[i] = NULL;
    }
    sl_refs_add(g, f->f_locals);
    f->f_locals = NULL;
    sl_refs_add(g, *frame_func_slot(f));
    *frame_func_slot(f) = NULL;
    if (f->owner != FRAME_OWNED_BY_GENERATOR || !cleared_gen_frame_keeps_code()) {
        sl_refs_add(g, *frame_code_slot(f));
        *frame_code_slot(f) = NULL;
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

int
sl_pystate_c_boundaries(PyThreadState *ts, SlPyState *st)
{
    int boundaries = st != NULL && !st->direct ? 1 : 0;
#if !defined(SL_PY311)
    if (st != NULL) {
        return boundaries + st->nexposed;
    }
#endif
    if (st != NULL && st->frames_unsafe) {
        return boundaries + 1;
    }
    for (Frame *f = st ? st->frame : ts_frame(ts); f != NULL; f = f->previous) {
        boundaries += frame_is_c_boundary(f) ? 1 : 0;
    }
    return boundaries;
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
#if defined(SL_PY313)
    PyErr_FormatUnraisable("Exception ignored %s: %R", where, obj);
#else
    _PyErr_WriteUnraisableMsg(where, obj);
#endif
}

int
sl_pystate_finalizing(void)
{
#if defined(SL_PY313)
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
sl_pystate_gc_collecting(void)
{
    return PyInterpreterState_Get()->gc.collecting;
}
