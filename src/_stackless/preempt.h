/* The preemption timer: interrupting the main thread when a tasklet's time slice is over.
 *
 * Owns: one helper OS thread (plain C, never touches Python objects) that sleeps until a
 * deadline and then trips a reserved signal (PyErr_SetInterruptEx(); on 3.11/3.12, whose
 * eval loop would not notice that soon, a real signal to the main thread), and the
 * Python handler installed for that signal. The handler runs in the main thread at the
 * interpreter's next signal check (a safe point between bytecodes) and asks the scheduler
 * what to do (sl_preempt_fired). It does not know tasklets, slices or watchdogs.
 */
#ifndef SL_PREEMPT_H
#define SL_PREEMPT_H

#include <Python.h>

/* How long a tick (Stackless counts run(timeout) in bytecodes) is taken to last: about one
   simple bytecode here, counted in time while the thread runs. A slice lasts at least
   SL_MIN_SLICE_NS: below that the timer's own latency dominates. */
#define SL_TICK_NS 20
#define SL_MIN_SLICE_NS 20000
#define SL_FIRST_SLICE_NS 500000 /* a new tasklet's first slice */

/* When the slice ended where the tasklet could not be interrupted: how soon to look again. */
#define SL_PREEMPT_RETRY_NS 200000

/* How long a tasklet whose slice is over is watched using the CPU before it is interrupted. */
#define SL_CONFIRM_NS 20000

/* Make sure the signal handler is installed (call in the main thread, with the module).
   0, or -1 with an exception. */
int sl_preempt_setup(PyObject *module);

/* Trip the signal `ns` nanoseconds from now (replacing an earlier deadline). */
void sl_preempt_arm(long long ns);

/* No signal unless armed again. */
void sl_preempt_disarm(void);

/* The calling thread's CPU time, in nanoseconds (a system call). */
long long sl_preempt_cpu_ns(void);

/* The monotonic clock, in nanoseconds (no system call). */
long long sl_preempt_now_ns(void);

#endif /* SL_PREEMPT_H */
