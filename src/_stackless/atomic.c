/* The atomic context manager: `with stackless.atomic():` keeps the current tasklet from
 * being preempted for the duration.
 *
 * Owns: the _stackless.atomic type. Each instance keeps a stack of the flags it replaced,
 * so that nesting one instance restores every level. It changes the flag only through
 * sl_tasklet_set_atomic(), where preemption hooks in.
 */
#include "module.h"
#include "scheduler.h"

typedef struct {
    PyObject_HEAD
    unsigned char *saved;
    Py_ssize_t depth, capacity;
} SlAtomic;

static PyObject *
atomic_enter(SlAtomic *self, PyObject *unused)
{
    SlThread *th = sl_thread_get();
    if (th == NULL) {
        return NULL;
    }
    if (self->depth == self->capacity) {
        Py_ssize_t cap = self->capacity ? self->capacity * 2 : 4;
        unsigned char *s = PyMem_Realloc(self->saved, (size_t)cap);
        if (s == NULL) {
            return PyErr_NoMemory();
        }
        self->saved = s;
        self->capacity = cap;
    }
    self->saved[self->depth++] = (unsigned char)sl_tasklet_set_atomic(th->current, 1);
    Py_RETURN_NONE;
}

static PyObject *
atomic_exit(SlAtomic *self, PyObject *const *args, Py_ssize_t nargs)
{
    SlThread *th = sl_thread_get();
    if (th == NULL) {
        return NULL;
    }
    if (self->depth > 0) {
        sl_tasklet_set_atomic(th->current, self->saved[--self->depth]);
    }
    /* an interrupt that waited for the atomic section to end is taken now */
    sl_preempt_check(th);
    Py_RETURN_NONE;
}

static void
atomic_dealloc(SlAtomic *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyMem_Free(self->saved);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyMethodDef atomic_methods[] = {
    {"__enter__", (PyCFunction)atomic_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)(void (*)(void))atomic_exit, METH_FASTCALL, NULL},
    {NULL},
};

static PyType_Slot atomic_slots[] = {
    {Py_tp_doc, "atomic()\n\nContext manager: the current tasklet is atomic (never preempted)\n"
                "inside the block; the previous setting is restored on exit."},
    {Py_tp_dealloc, atomic_dealloc},
    {Py_tp_methods, atomic_methods},
    {Py_tp_new, PyType_GenericNew},
    {0, NULL},
};

PyType_Spec sl_atomic_spec = {
    .name = "_stackless.atomic",
    .basicsize = sizeof(SlAtomic),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .slots = atomic_slots,
};
