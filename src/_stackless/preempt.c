/* The preemption timer; see preempt.h. */
#include "preempt.h"

#include "pystate.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <time.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed;
static int timer_running; /* the helper thread exists (in this process) */
static int armed;
static struct timespec deadline; /* CLOCK_MONOTONIC */
static int signum;               /* the reserved signal; 0 until set up */
static pthread_t main_thread;    /* where Python handles signals */
static int send_real_signal;     /* the eval loop would not notice a simulated one soon */

static void *
timer_main(void *unused)
{
    (void)unused;
    pthread_mutex_lock(&lock);
    for (;;) {
        while (!armed) {
            pthread_cond_wait(&changed, &lock);
        }
        struct timespec until = deadline;
        int r = pthread_cond_timedwait(&changed, &lock, &until);
        /* a deadline moved later meanwhile is waited for in the next round */
        if (r == ETIMEDOUT && armed && deadline.tv_sec == until.tv_sec &&
            deadline.tv_nsec == until.tv_nsec) {
            armed = 0;
            /* needs no GIL: the main thread runs the handler at its next check */
            if (send_real_signal) {
                pthread_kill(main_thread, signum);
            }
            else {
                PyErr_SetInterruptEx(signum);
            }
        }
    }
    return NULL;
}

/* After fork() the child has no helper thread (and a lock in an unknown state). */
static void
after_fork_in_child(void)
{
    pthread_mutex_init(&lock, NULL);
    timer_running = 0;
    armed = 0;
}

static int
start_timer(void)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&changed, &attr);
    pthread_condattr_destroy(&attr);
    pthread_attr_t tattr;
    pthread_attr_init(&tattr);
    pthread_attr_setdetachstate(&tattr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&tattr, 64 * 1024);
    /* the helper must never take a signal meant for Python's main thread */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    pthread_t t;
    int r = pthread_create(&t, &tattr, timer_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&tattr);
    if (r != 0) {
        errno = r;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    timer_running = 1;
    return 0;
}

int
sl_preempt_setup(PyObject *module)
{
    static int fork_handler_installed;
    if (signum == 0) {
        /* A real-time signal nothing else sends: PyErr_SetInterruptEx() only simulates
           it, but Python calls the handler only for signals it handles. */
        int sig = SIGRTMAX - 2;
        PyObject *handler = PyObject_GetAttrString(module, "_preempt_signal");
        PyObject *signal_mod = handler ? PyImport_ImportModule("signal") : NULL;
        PyObject *r =
            signal_mod ? PyObject_CallMethod(signal_mod, "signal", "iO", sig, handler) : NULL;
        Py_XDECREF(handler);
        Py_XDECREF(signal_mod);
        if (r == NULL) {
            return -1;
        }
        Py_DECREF(r);
        signum = sig;
        main_thread = pthread_self();
        send_real_signal = !sl_pystate_foreign_trip_wakes_main();
    }
    if (!fork_handler_installed) {
        fork_handler_installed = pthread_atfork(NULL, NULL, after_fork_in_child) == 0;
    }
    pthread_mutex_lock(&lock);
    int r = timer_running ? 0 : start_timer();
    pthread_mutex_unlock(&lock);
    return r;
}

void
sl_preempt_arm(long long ns)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long long t = (long long)now.tv_nsec + ns;
    struct timespec when = {now.tv_sec + (time_t)(t / 1000000000LL), (long)(t % 1000000000LL)};
    pthread_mutex_lock(&lock);
    /* A later deadline needs no wake-up: the helper finds it when the old one passes. */
    int sooner = !armed || when.tv_sec < deadline.tv_sec ||
                 (when.tv_sec == deadline.tv_sec && when.tv_nsec < deadline.tv_nsec);
    deadline = when;
    armed = 1;
    if (sooner) {
        pthread_cond_signal(&changed);
    }
    pthread_mutex_unlock(&lock);
}

void
sl_preempt_disarm(void)
{
    pthread_mutex_lock(&lock);
    armed = 0;
    pthread_mutex_unlock(&lock);
}

long long
sl_preempt_cpu_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

long long
sl_preempt_now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}
