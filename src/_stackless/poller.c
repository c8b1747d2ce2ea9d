/* The I/O poller: an epoll set, tasklets blocked on file descriptors, and the socket calls
 * that block only their tasklet (stacklesslib's cooperative sockets and main loop).
 *
 * Owns: its epoll descriptor and a slot per file descriptor (the private channels its
 * waiting tasklets block on, and how the descriptor is registered). It blocks and wakes
 * tasklets only through channel.h and never switches itself; it does not know sockets
 * beyond the recv/send system calls, nor timers (stacklesslib's event queue throws
 * TimeoutError into a waiting tasklet).
 *
 * Descriptors of cooperative sockets are registered once, edge-triggered for reading and
 * writing, and stay registered until closed: a call that would block parks the tasklet on
 * the slot's channel without any system call, and an edge wakes every tasklet parked there,
 * which then retries its call. Waiting only after a call said "would block" is what makes
 * edges safe: data that came earlier is read by that call, data that comes later makes a
 * new edge. wait() (for callers that do their own I/O, TLS) re-arms the registration,
 * which reports a descriptor that is ready already. Descriptors the main loop watches for
 * Python code (its wake-up pipe, its selector) are level-triggered and returned by poll().
 */
#include "poller.h"

#ifdef __linux__

#include "channel.h"
#include "module.h"
#include "scheduler.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

enum { EVENT_READ = 1, EVENT_WRITE = 2 }; /* selectors.EVENT_READ / EVENT_WRITE */

enum {
    SLOT_UNKNOWN = 0, /* not (known to be) in our set: the next wait registers it */
    SLOT_EDGE,        /* registered edge-triggered by a wait */
    SLOT_WATCHED,     /* level-triggered for the main loop: poll() returns it */
};

typedef struct {
    SlChannel *waiting[2]; /* owned or NULL: tasklets waiting to read [0] / write [1] */
    uint8_t state;
} Slot;

typedef struct {
    PyObject_HEAD
    int epfd;
    int running;             /* the main loop runs: tasklets of its thread may wait here */
    int polling;             /* a poll() is under way (its events buffer is in use) */
    unsigned long thread_id; /* the thread running it */
    Slot *slots;             /* indexed by file descriptor */
    int nslots;
    struct epoll_event *events;
    int maxevents;
} Poller;

/* ---- slots and registration ---------------------------------------------------------- */

static Slot *
slot_of(Poller *p, int fd)
{
    if (fd >= p->nslots) {
        int n = p->nslots ? p->nslots : 64;
        while (n <= fd) {
            n *= 2;
        }
        Slot *grown = PyMem_Realloc(p->slots, (size_t)n * sizeof(Slot));
        if (grown == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
        memset(grown + p->nslots, 0, (size_t)(n - p->nslots) * sizeof(Slot));
        p->slots = grown;
        p->nslots = n;
    }
    return &p->slots[fd];
}

static int
check_fd(int fd)
{
    if (fd < 0) {
        errno = EBADF;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return 0;
}

/* Register fd edge-triggered, or re-arm it (which reports it again if it is ready). */
static int
arm_edge(Poller *p, int fd, Slot *s)
{
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET};
    ev.data.fd = fd;
    int op = s->state == SLOT_EDGE ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(p->epfd, op, fd, &ev) < 0) {
        /* the kernel forgot it (closed behind our back) or has it already (claim()) */
        int retry = op == EPOLL_CTL_MOD ? (errno == ENOENT ? EPOLL_CTL_ADD : -1)
                                        : (errno == EEXIST ? EPOLL_CTL_MOD : -1);
        if (retry < 0 || epoll_ctl(p->epfd, retry, fd, &ev) < 0) {
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
    }
    s->state = SLOT_EDGE;
    return 0;
}

/* ---- waiting ------------------------------------------------------------------------- */

/* Whether the calling tasklet may block on the poller: the main loop runs in this thread
   and the caller is not the tasklet running it. */
static int
cooperative(Poller *p)
{
    if (!p->running) {
        return 0;
    }
    SlThread *th = sl_thread_peek();
    return th != NULL && th->thread_id == p->thread_id && th->current != th->main;
}

/* Block the whole thread until fd is ready (the standard sockets' behaviour). */
static int
block_thread(int fd, int event)
{
    struct pollfd pfd = {.fd = fd, .events = event == EVENT_READ ? POLLIN : POLLOUT};
    int r;
    Py_BEGIN_ALLOW_THREADS r = poll(&pfd, 1, -1);
    Py_END_ALLOW_THREADS if (r < 0)
    {
        if (errno == EINTR) {
            return PyErr_CheckSignals();
        }
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return 0;
}

/* Park the current tasklet until fd's next edge for event (it may be woken early). */
static int
park(Poller *p, Slot *s, int event)
{
    SlChannel **ch = &s->waiting[event == EVENT_WRITE];
    if (*ch == NULL) {
        *ch = (SlChannel *)PyObject_CallNoArgs((PyObject *)sl_module->channel_type);
        if (*ch == NULL) {
            return -1;
        }
    }
    SlChannel *held = (SlChannel *)Py_NewRef(*ch); /* closing may drop the slot's */
    PyObject *r = sl_channel_receive(held);
    Py_DECREF(held);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

/* A call on fd said "would block": wait until it may not. `rearm`: the caller did the call
   itself (it may have missed an edge we reported meanwhile). */
static int
wait_io(Poller *p, int fd, int event, int rearm)
{
    if (check_fd(fd) < 0) {
        return -1;
    }
    if (!cooperative(p)) {
        return block_thread(fd, event);
    }
    Slot *s = slot_of(p, fd);
    if (s == NULL) {
        return -1;
    }
    if ((rearm || s->state != SLOT_EDGE) && arm_edge(p, fd, s) < 0) {
        return -1;
    }
    return park(p, s, event);
}

/* Wake the tasklets waiting on s for event; with `error` each gets OSError(error). */
static int
wake(Slot *s, int event, int error)
{
    SlChannel *ch = s->waiting[event == EVENT_WRITE];
    if (ch == NULL) {
        return 0;
    }
    while (ch->balance < 0) {
        PyObject *value = Py_None;
        if (error) {
            PyObject *exc = PyObject_CallFunction(PyExc_OSError, "is", error,
                                                  "socket closed while waiting on it");
            value = exc ? sl_bomb_new((PyObject *)Py_TYPE(exc), exc, Py_None) : NULL;
            Py_XDECREF(exc);
            if (value == NULL) {
                return -1;
            }
        }
        sl_channel_wake_receiver(ch, value);
        if (error) {
            Py_DECREF(value);
        }
    }
    return 0;
}

/* ---- the socket calls ---------------------------------------------------------------- */

/* A non-blocking call failed (errno): 1 if it would block, 0 if a signal interrupted it
   (try again), -1 with an exception set. */
static int
failed_call(void)
{
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
        return 1;
    }
    if (errno != EINTR) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return PyErr_CheckSignals();
}

/* Most receives fit: read into this, then copy exactly what came (under the GIL). */
static char recv_buffer[65536];

/* One try. Returns the bytes, or NULL: with an exception set, or without when it would
   block. */
static PyObject *
try_recv(int fd, Py_ssize_t size, int flags)
{
    for (;;) {
        ssize_t n;
        PyObject *bytes = NULL;
        if (size <= (Py_ssize_t)sizeof recv_buffer) {
            n = recv(fd, recv_buffer, (size_t)size, flags | MSG_DONTWAIT);
            if (n >= 0) {
                return PyBytes_FromStringAndSize(recv_buffer, n);
            }
        }
        else {
            bytes = PyBytes_FromStringAndSize(NULL, size);
            if (bytes == NULL) {
                return NULL;
            }
            n = recv(fd, PyBytes_AS_STRING(bytes), (size_t)size, flags | MSG_DONTWAIT);
            if (n >= 0) {
                if (n != size) {
                    _PyBytes_Resize(&bytes, n);
                }
                return bytes;
            }
            Py_DECREF(bytes);
        }
        if (failed_call() != 0) {
            return NULL;
        }
    }
}

/* One send; -1 with an exception set, -2 if it would block. */
static Py_ssize_t
try_send(int fd, const char *buf, Py_ssize_t len, int flags)
{
    for (;;) {
        ssize_t n = send(fd, buf, (size_t)len, flags | MSG_DONTWAIT);
        if (n >= 0) {
            return n;
        }
        int failed = failed_call();
        if (failed != 0) {
            return failed > 0 ? -2 : -1;
        }
    }
}

/* An int argument; OverflowError(`overflow`) outside C's int. */
static int
as_int(PyObject *o, int *out, const char *overflow)
{
    long v = PyLong_AsLong(o);
    if (v == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (v < INT_MIN || v > INT_MAX) {
        PyErr_SetString(PyExc_OverflowError, overflow);
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* A descriptor number, or an object with fileno(). A negative number (a closed socket's)
   is passed on: the system call then fails with EBADF, as the standard socket's does. */
static int
fd_arg(PyObject *o, int *fd)
{
    if (!PyLong_Check(o)) {
        *fd = PyObject_AsFileDescriptor(o);
        return *fd == -1 && PyErr_Occurred() ? -1 : 0;
    }
    return as_int(o, fd, "file descriptor out of range");
}

/* Arguments: fd, then up to `more` optional ones. */
static int
parse(const char *name, PyObject *const *args, Py_ssize_t nargs, int required, int more, int *fd)
{
    if (nargs < required || nargs > required + more) {
        PyErr_Format(PyExc_TypeError, "%s() takes from %d to %d arguments (%zd given)", name,
                     required, required + more, nargs);
        return -1;
    }
    return fd_arg(args[0], fd);
}

static int
int_arg(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t i, int *out)
{
    return i < nargs ? as_int(args[i], out, "signed integer is greater than maximum") : 0;
}

/* recv(fd, bufsize, flags=0) */
static PyObject *
poller_recv(Poller *p, PyObject *const *args, Py_ssize_t nargs)
{
    int fd, flags = 0;
    if (parse("recv", args, nargs, 2, 1, &fd) < 0 || int_arg(args, nargs, 2, &flags) < 0) {
        return NULL;
    }
    Py_ssize_t size = PyLong_AsSsize_t(args[1]);
    if (size == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (size < 0) {
        PyErr_SetString(PyExc_ValueError, "negative buffersize in recv");
        return NULL;
    }
    for (;;) {
        PyObject *r = try_recv(fd, size, flags);
        if (r != NULL || PyErr_Occurred() || wait_io(p, fd, EVENT_READ, 0) < 0) {
            return r;
        }
    }
}

/* recv_into(fd, buffer, nbytes=0, flags=0) */
static PyObject *
poller_recv_into(Poller *p, PyObject *const *args, Py_ssize_t nargs)
{
    int fd, flags = 0;
    if (parse("recv_into", args, nargs, 2, 2, &fd) < 0 || int_arg(args, nargs, 3, &flags) < 0) {
        return NULL;
    }
    Py_ssize_t want = 0;
    if (nargs > 2 && (want = PyLong_AsSsize_t(args[2])) == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (want < 0) {
        PyErr_SetString(PyExc_ValueError, "negative buffersize in recv_into");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[1], &view, PyBUF_WRITABLE) < 0) {
        if (PyErr_ExceptionMatches(PyExc_BufferError)) { /* as socket.recv_into() says */
            PyErr_Format(PyExc_TypeError,
                         "recv_into() argument 'buffer' must be read-write bytes-like "
                         "object, not %.100s",
                         Py_TYPE(args[1])->tp_name);
        }
        return NULL;
    }
    PyObject *result = NULL;
    if (want == 0) {
        want = view.len;
    }
    else if (want > view.len) {
        PyErr_SetString(PyExc_ValueError, "buffer too small for requested bytes");
        goto done;
    }
    for (;;) {
        ssize_t n = recv(fd, view.buf, (size_t)want, flags | MSG_DONTWAIT);
        if (n >= 0) {
            result = PyLong_FromSsize_t(n);
            goto done;
        }
        int failed = failed_call();
        if (failed < 0 || (failed > 0 && wait_io(p, fd, EVENT_READ, 0) < 0)) {
            goto done;
        }
    }
done:
    PyBuffer_Release(&view);
    return result;
}

/* send(fd, data, flags=0) and sendall(fd, data, flags=0) */
static PyObject *
send_common(Poller *p, PyObject *const *args, Py_ssize_t nargs, int all)
{
    int fd, flags = 0;
    if (parse(all ? "sendall" : "send", args, nargs, 2, 1, &fd) < 0 ||
        int_arg(args, nargs, 2, &flags) < 0) {
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[1], &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    PyObject *result = NULL;
    Py_ssize_t sent = 0;
    do {
        Py_ssize_t n = try_send(fd, (const char *)view.buf + sent, view.len - sent, flags);
        if (n == -1) {
            goto done;
        }
        if (n == -2) {
            if (wait_io(p, fd, EVENT_WRITE, 0) < 0) {
                goto done;
            }
            continue;
        }
        sent += n;
        if (!all) {
            break;
        }
    } while (sent < view.len);
    result = all ? Py_NewRef(Py_None) : PyLong_FromSsize_t(sent);
done:
    PyBuffer_Release(&view);
    return result;
}

static PyObject *
poller_send(Poller *p, PyObject *const *args, Py_ssize_t nargs)
{
    return send_common(p, args, nargs, 0);
}

static PyObject *
poller_sendall(Poller *p, PyObject *const *args, Py_ssize_t nargs)
{
    return send_common(p, args, nargs, 1);
}

/* ---- waiting and the loop's side ----------------------------------------------------- */

static int
event_arg(PyObject *o, int *event)
{
    long v = PyLong_AsLong(o);
    if (v == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (v != EVENT_READ && v != EVENT_WRITE) {
        PyErr_SetString(PyExc_ValueError, "event must be EVENT_READ (1) or EVENT_WRITE (2)");
        return -1;
    }
    *event = (int)v;
    return 0;
}

/* wait(fd, event): the caller's own call on fd said it would block. */
static PyObject *
poller_wait(Poller *p, PyObject *const *args, Py_ssize_t nargs)
{
    int fd, event;
    if (parse("wait", args, nargs, 2, 0, &fd) < 0 || event_arg(args[1], &event) < 0 ||
        wait_io(p, fd, event, 1) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* poll(timeout): wait up to timeout seconds (None: until something happens) in the
   kernel, wake the tasklets whose descriptors had an edge, and return the watched
   descriptors that are ready as a list of (fd, events). */
static PyObject *
poll_once(Poller *p, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 1) {
        PyErr_Format(PyExc_TypeError, "poll() takes exactly one argument (%zd given)", nargs);
        return NULL;
    }
    int ms = -1;
    if (args[0] != Py_None) {
        double t = PyFloat_AsDouble(args[0]);
        if (t == -1.0 && PyErr_Occurred()) {
            return NULL;
        }
        t = ceil(t * 1e3);
        ms = t <= 0 ? 0 : t >= INT_MAX ? INT_MAX : (int)t;
    }
    if (p->epfd < 0) {
        PyErr_SetString(PyExc_ValueError, "I/O operation on a closed poller");
        return NULL;
    }
    int n;
    if (ms == 0) {
        n = epoll_wait(p->epfd, p->events, p->maxevents, 0);
    }
    else {
        Py_BEGIN_ALLOW_THREADS n = epoll_wait(p->epfd, p->events, p->maxevents, ms);
        Py_END_ALLOW_THREADS
    }
    if (n < 0) {
        if (errno != EINTR) {
            return PyErr_SetFromErrno(PyExc_OSError);
        }
        if (PyErr_CheckSignals() < 0) {
            return NULL;
        }
        n = 0;
    }
    PyObject *watched = PyList_New(0);
    if (watched == NULL) {
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        int fd = p->events[i].data.fd;
        uint32_t got = p->events[i].events;
        if (fd < 0 || fd >= p->nslots) {
            continue;
        }
        Slot *s = &p->slots[fd];
        int ready = (got & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP) ? EVENT_READ : 0) |
                    (got & (EPOLLOUT | EPOLLERR | EPOLLHUP) ? EVENT_WRITE : 0);
        if (s->state == SLOT_WATCHED) {
            PyObject *item = Py_BuildValue("(ii)", fd, ready);
            if (item == NULL || PyList_Append(watched, item) < 0) {
                Py_XDECREF(item);
                Py_DECREF(watched);
                return NULL;
            }
            Py_DECREF(item);
            continue;
        }
        if (((ready & EVENT_READ) && wake(s, EVENT_READ, 0) < 0) ||
            ((ready & EVENT_WRITE) && wake(s, EVENT_WRITE, 0) < 0)) {
            Py_DECREF(watched);
            return NULL;
        }
    }
    return watched;
}

static PyObject *
poller_poll(Poller *p, PyObject *const *args, Py_ssize_t nargs)
{
    /* the events buffer is in use until the wake-ups are done (another thread could get the
       GIL meanwhile: while the kernel waits, or in a finaliser run by an allocation) */
    if (p->polling) {
        PyErr_SetString(PyExc_RuntimeError, "poll() is already running in another thread");
        return NULL;
    }
    p->polling = 1;
    PyObject *r = poll_once(p, args, nargs);
    p->polling = 0;
    return r;
}

/* watch(fd): poll() reports fd whenever it is readable (the loop's own descriptors). */
static PyObject *
poller_watch(Poller *p, PyObject *arg)
{
    int fd = PyObject_AsFileDescriptor(arg);
    Slot *s = fd < 0 ? NULL : slot_of(p, fd);
    if (s == NULL) {
        return NULL;
    }
    struct epoll_event ev = {.events = EPOLLIN};
    ev.data.fd = fd;
    if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    s->state = SLOT_WATCHED;
    Py_RETURN_NONE;
}

/* closing(fd): fd is about to be closed or given away: its waiters get OSError(EBADF) and
   the poller forgets it. */
static PyObject *
poller_closing(Poller *p, PyObject *arg)
{
    int fd = PyObject_AsFileDescriptor(arg);
    if (fd < 0) {
        return NULL;
    }
    if (fd >= p->nslots) {
        Py_RETURN_NONE;
    }
    Slot *s = &p->slots[fd];
    if (wake(s, EVENT_READ, EBADF) < 0 || wake(s, EVENT_WRITE, EBADF) < 0) {
        return NULL;
    }
    if (s->state != SLOT_UNKNOWN && p->epfd >= 0) {
        (void)epoll_ctl(p->epfd, EPOLL_CTL_DEL, fd, NULL); /* gone already if closed */
    }
    s->state = SLOT_UNKNOWN;
    Py_CLEAR(s->waiting[0]);
    Py_CLEAR(s->waiting[1]);
    Py_RETURN_NONE;
}

/* claim(fd): a new socket object owns fd now. A number reused after a close the poller did
   not see may still be marked registered: the next wait registers it again. */
static PyObject *
poller_claim(Poller *p, PyObject *arg)
{
    int fd = PyObject_AsFileDescriptor(arg);
    if (fd < 0) {
        return NULL;
    }
    if (fd < p->nslots && p->slots[fd].state == SLOT_EDGE) {
        p->slots[fd].state = SLOT_UNKNOWN;
    }
    Py_RETURN_NONE;
}

static PyObject *
poller_fileno(Poller *p, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromLong(p->epfd);
}

static PyObject *
poller_get_running(Poller *p, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(p->running);
}

static int
poller_set_running(Poller *p, PyObject *value, void *Py_UNUSED(closure))
{
    int flag = value == NULL ? 0 : PyObject_IsTrue(value);
    if (flag < 0) {
        return -1;
    }
    p->running = flag;
    p->thread_id = PyThread_get_thread_ident();
    return 0;
}

/* ---- the object ---------------------------------------------------------------------- */

static PyObject *
poller_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    if (PyTuple_GET_SIZE(args) != 0 || (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0)) {
        PyErr_SetString(PyExc_TypeError, "poller() takes no arguments");
        return NULL;
    }
    Poller *p = (Poller *)type->tp_alloc(type, 0);
    if (p == NULL) {
        return NULL;
    }
    p->epfd = epoll_create1(EPOLL_CLOEXEC);
    p->maxevents = 1024;
    p->events = PyMem_Malloc(sizeof(struct epoll_event) * (size_t)p->maxevents);
    if (p->epfd < 0 || p->events == NULL) {
        if (p->epfd < 0) {
            PyErr_SetFromErrno(PyExc_OSError);
        }
        else {
            PyErr_NoMemory();
        }
        Py_DECREF(p);
        return NULL;
    }
    return (PyObject *)p;
}

static int
poller_traverse(Poller *p, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(p));
    for (int i = 0; i < p->nslots; i++) {
        Py_VISIT(p->slots[i].waiting[0]);
        Py_VISIT(p->slots[i].waiting[1]);
    }
    return 0;
}

static int
poller_clear(Poller *p)
{
    for (int i = 0; i < p->nslots; i++) {
        Py_CLEAR(p->slots[i].waiting[0]);
        Py_CLEAR(p->slots[i].waiting[1]);
    }
    return 0;
}

static void
poller_dealloc(Poller *p)
{
    PyTypeObject *tp = Py_TYPE(p);
    PyObject_GC_UnTrack(p);
    poller_clear(p);
    if (p->epfd >= 0) {
        close(p->epfd);
    }
    PyMem_Free(p->slots);
    PyMem_Free(p->events);
    tp->tp_free(p);
    Py_DECREF(tp);
}

static PyMethodDef poller_methods[] = {
    {"recv", (PyCFunction)(void (*)(void))poller_recv, METH_FASTCALL,
     "recv(fd, bufsize, flags=0): socket.recv that blocks only the calling tasklet"},
    {"recv_into", (PyCFunction)(void (*)(void))poller_recv_into, METH_FASTCALL,
     "recv_into(fd, buffer, nbytes=0, flags=0)"},
    {"send", (PyCFunction)(void (*)(void))poller_send, METH_FASTCALL, "send(fd, data, flags=0)"},
    {"sendall", (PyCFunction)(void (*)(void))poller_sendall, METH_FASTCALL,
     "sendall(fd, data, flags=0)"},
    {"wait", (PyCFunction)(void (*)(void))poller_wait, METH_FASTCALL,
     "wait(fd, event): after a call on fd said it would block, wait until fd may be ready "
     "(event: 1 read, 2 write)"},
    {"poll", (PyCFunction)(void (*)(void))poller_poll, METH_FASTCALL,
     "poll(timeout): wait, wake the tasklets whose descriptors are ready, and return the "
     "watched descriptors that are, as [(fd, events)]"},
    {"watch", (PyCFunction)poller_watch, METH_O, "watch(fd): report fd from poll()"},
    {"closing", (PyCFunction)poller_closing, METH_O,
     "closing(fd): fd is about to be closed; its waiters get OSError(EBADF)"},
    {"claim", (PyCFunction)poller_claim, METH_O, "claim(fd): a new socket owns fd"},
    {"fileno", (PyCFunction)poller_fileno, METH_NOARGS, "the epoll descriptor"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef poller_getset[] = {
    {"running", (getter)poller_get_running, (setter)poller_set_running,
     "the main loop runs in the thread that set this: its tasklets may wait", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot poller_slots[] = {
    {Py_tp_new, poller_new},
    {Py_tp_dealloc, poller_dealloc},
    {Py_tp_traverse, poller_traverse},
    {Py_tp_clear, poller_clear},
    {Py_tp_methods, poller_methods},
    {Py_tp_getset, poller_getset},
    {Py_tp_doc, "poller(): an epoll set whose waits block only the calling tasklet"},
    {0, NULL},
};

static PyType_Spec poller_spec = {
    .name = "_stackless.poller",
    .basicsize = sizeof(Poller),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = poller_slots,
};

int
sl_poller_init(PyObject *module)
{
    PyObject *type = PyType_FromModuleAndSpec(module, &poller_spec, NULL);
    if (type == NULL) {
        return -1;
    }
    int r = PyModule_AddObjectRef(module, "poller", type);
    Py_DECREF(type);
    return r;
}

#else /* no epoll */

int
sl_poller_init(PyObject *module)
{
    (void)module;
    return 0;
}

#endif
