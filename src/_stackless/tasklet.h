/* The tasklet object: its record and the type's entry points.
 *
 * Owns: construction and binding, the Python-visible methods and attributes, argument
 * validation, finalisation and GC support. It asks the scheduler to move tasklets between
 * queues and to switch; it never switches stacks or touches interpreter state itself.
 */
#ifndef SL_TASKLET_H
#define SL_TASKLET_H

#include <Python.h>
#include <stdint.h>

#include "pystate.h"
#include "slicing.h"

struct SlChannel;
struct SlThread;

enum SlTaskletState {
    SL_NEW = 0, /* not alive: unbound, bound (tempval holds the callable) or dead */
    SL_PENDING, /* alive: its call is set up but it has never run */
    SL_STARTED  /* alive: running, or suspended with a saved C stack */
};

typedef struct SlTasklet {
    PyObject_HEAD
    struct SlTasklet *next, *prev;  /* links in the run queue (circular) or a channel queue */
    struct SlChannel *channel;      /* the channel whose wait queue holds us, else NULL */
    struct SlThread *thread;        /* owning thread's scheduler; NULL once that thread ended */
    PyObject *tempval;              /* value for the next resume; NULL reads as None */
    PyObject *func, *args, *kwargs; /* the pending call of an alive tasklet */
    PyObject *weakreflist;
    struct SlTasklet *started_next, *started_prev; /* the thread's started tasklets */
    uint64_t serial; /* creation order, for killing leftovers at exit */
    int8_t blocked;  /* +1 waiting to send, -1 waiting to receive */
    uint8_t state;   /* enum SlTaskletState */
    uint8_t in_runqueue;
    uint8_t in_function; /* between the start and the end of its function */
    uint8_t is_main;
    uint8_t atomic;
    uint8_t ignore_nesting;
    uint8_t block_trap;
    uint8_t hooks_pending; /* bit 0: new_hooks[0] is its next trace function, bit 1: [1]
                              its next profile function (set while it was suspended) */
    PyObject *new_hooks[2];
    SlStack stack;     /* the C stack while suspended */
    SlPyState pystate; /* the interpreter state while suspended */
} SlTasklet;

/* A new tasklet object for the main tasklet of a thread (already running). */
SlTasklet *sl_tasklet_new_main(struct SlThread *th);

/* Alive: has a frame chain (set up or running) and a live thread. */
/* Install the trace/profile functions set on t while it was suspended; t is running. */
void sl_tasklet_apply_hooks(SlTasklet *t);

/* Not new, not dead, and its thread has not ended. */
int sl_tasklet_alive(SlTasklet *t);

/* Scheduled: in the run queue or a channel queue. */
static inline int
sl_tasklet_scheduled(SlTasklet *t)
{
    return t->in_runqueue || t->channel != NULL;
}

/* Set the atomic flag (preemption looks here); returns the previous value. */
int sl_tasklet_set_atomic(SlTasklet *t, int flag);

extern PyType_Spec sl_tasklet_spec;

#endif /* SL_TASKLET_H */
