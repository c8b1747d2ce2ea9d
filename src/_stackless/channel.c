/* The channel object; see channel.h.
 *
 * One action (send is direction +1, receive -1) underlies every channel method: if a
 * partner waits, values are exchanged by swapping the two tasklets' tempvals and the
 * partner becomes runnable (who runs next depends on preference and schedule_all);
 * otherwise the acting tasklet joins the wait queue and the scheduler switches away.
 */
#include "channel.h"

#include "module.h"
#include "scheduler.h"

#include <structmember.h>

/* ---- the wait queue (it owns a reference to each waiting tasklet) -------------------- */

/* Append t, taking over the caller's reference. */
static void
enqueue(SlChannel *ch, SlTasklet *t, int dir)
{
    t->prev = ch->tail;
    t->next = NULL;
    if (ch->tail) {
        ch->tail->next = t;
    }
    else {
        ch->head = t;
    }
    ch->tail = t;
    t->channel = ch;
    t->blocked = (int8_t)dir;
    ch->balance += dir;
}

/* Unlink t; the queue's reference passes to the caller. */
static void
unlink_waiter(SlChannel *ch, SlTasklet *t)
{
    if (t->prev) {
        t->prev->next = t->next;
    }
    else {
        ch->head = t->next;
    }
    if (t->next) {
        t->next->prev = t->prev;
    }
    else {
        ch->tail = t->prev;
    }
    ch->balance -= t->blocked;
    t->next = t->prev = NULL;
    t->channel = NULL;
    t->blocked = 0;
}

void
sl_channel_unblock(SlTasklet *t)
{
    unlink_waiter(t->channel, t);
}

/* Release every waiter without waking it: they become paused. */
static void
drop_waiters(SlChannel *ch)
{
    while (ch->head != NULL) {
        SlTasklet *t = ch->head;
        unlink_waiter(ch, t);
        Py_DECREF(t);
    }
}

/* ---- the action ----------------------------------------------------------------------- */

/* Out of line: it would widen the frame every blocked tasklet keeps on its saved stack. */
__attribute__((noinline, cold)) static void
call_channel_callback(SlThread *th, SlChannel *ch, SlTasklet *cur, int dir, int willblock)
{
    /* 0 and 1 are CPython's preallocated small ints: making them cannot fail */
    PyObject *sending = PyLong_FromLong(dir > 0);
    PyObject *blocks = PyLong_FromLong(willblock);
    assert(sending != NULL && blocks != NULL);
    PyObject *args[4] = {(PyObject *)ch, (PyObject *)cur, sending, blocks};
    sl_run_callback(th, sl_module->channel_callback, args, 4, "in the channel callback");
    Py_DECREF(sending);
    Py_DECREF(blocks);
}

/* The partner at the head of ch waits in another thread: hand over, queue it there (which
   wakes that thread) and go on here without switching. The channel callback sees the
   operation after the hand-over. */
static PyObject *
hand_over_to_thread(SlThread *th, SlChannel *ch, SlTasklet *cur, int dir)
{
    SlTasklet *partner = ch->head;
    SlThread *owner = sl_owner(partner);
    if (owner == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "tasklet has no thread");
        Py_CLEAR(cur->tempval);
        return NULL;
    }
    unlink_waiter(ch, partner);
    PyObject *tmp = cur->tempval;
    cur->tempval = partner->tempval;
    partner->tempval = tmp;
    sl_rq_insert_foreign(owner, partner);
    Py_DECREF(partner); /* the channel's reference */
    if (sl_module->channel_callback != NULL) {
        call_channel_callback(th, ch, cur, dir, 0);
    }
    return sl_resume_value(cur);
}

/* Send `value` (dir +1) or receive (dir -1, value NULL). site: where the calling Python
   code made the call (see scheduler.h). */
static PyObject *
channel_action(SlChannel *ch, int dir, PyObject *value, const SlCallSite *site)
{
    SlThread *th = sl_thread_get();
    if (th == NULL) {
        return NULL;
    }
    if (th->in_callback) {
        PyErr_SetString(PyExc_RuntimeError, "Recursive channel call due to callbacks!");
        return NULL;
    }
    if (sl_safe_point(th) < 0) {
        return NULL;
    }
    SlTasklet *cur = th->current;
    Py_XSETREF(cur->tempval, Py_XNewRef(value));
    int ready = dir > 0 ? ch->balance < 0 : ch->balance > 0;
    if (ready && sl_owner(ch->head) != th) {
        return hand_over_to_thread(th, ch, cur, dir);
    }
    if (sl_module->channel_callback != NULL) {
        call_channel_callback(th, ch, cur, dir, !ready);
    }
    if (ready) {
        SlTasklet *partner = ch->head;
        int runs_partner = !ch->schedule_all && ch->preference == -dir;
        if ((ch->schedule_all || runs_partner) && sl_check_switch(th) < 0) {
            goto error;
        }
        unlink_waiter(ch, partner);
        PyObject *tmp = cur->tempval;
        cur->tempval = partner->tempval;
        partner->tempval = tmp;
        if (runs_partner) {
            sl_rq_insert_after(th, cur, partner);
            Py_DECREF(partner);
            sl_switch_to(th, partner, site);
        }
        else {
            sl_rq_append(th, partner);
            Py_DECREF(partner);
            if (ch->schedule_all) {
                sl_switch_to(th, cur->next, site);
            }
        }
        return sl_resume_value(cur);
    }
    if (cur->block_trap) {
        PyErr_SetString(PyExc_RuntimeError, "this tasklet does not like to be blocked.");
        goto error;
    }
    if (ch->closing) {
        PyErr_SetString(PyExc_ValueError, "Send/receive operation on a closed channel");
        goto error;
    }
    if (sl_block_would_deadlock(th)) {
        if (!sl_other_threads_can_help(th)) {
            PyErr_SetString(PyExc_RuntimeError,
                            "Deadlock: the last runnable tasklet cannot be blocked.");
            goto error;
        }
        if (sl_check_switch(th) < 0) {
            goto error;
        }
        /* Another thread may still serve the channel or queue a tasklet here: the thread
           sleeps until something of it is runnable. */
        sl_rq_unlink(th, cur); /* the run queue's reference passes to the channel */
        enqueue(ch, cur, dir);
        SlTasklet *next = sl_thread_sleep(th);
        if (next == NULL) { /* a signal handler raised: give up waiting */
            if (cur->channel == ch) {
                sl_channel_unblock(cur);
                sl_rq_append(th, cur);
                Py_DECREF(cur);
            }
            th->head = cur; /* it runs on, ahead of whatever was queued meanwhile */
            goto error;
        }
        if (next != cur) {
            sl_switch_to(th, next, site);
        }
        return sl_resume_value(cur);
    }
    if (sl_check_switch(th) < 0) {
        goto error;
    }
    SlTasklet *next = sl_block_leave(th);
    enqueue(ch, cur, dir);
    sl_switch_to(th, next, site);
    return sl_resume_value(cur);

error:
    Py_CLEAR(cur->tempval);
    return NULL;
}

PyObject *
sl_channel_receive(SlChannel *ch)
{
    return channel_action(ch, -1, NULL, NULL);
}

int
sl_channel_wake_receiver(SlChannel *ch, PyObject *value)
{
    if (ch->balance >= 0) {
        return 0;
    }
    SlTasklet *t = ch->head;
    unlink_waiter(ch, t);
    Py_XSETREF(t->tempval, Py_NewRef(value));
    SlThread *owner = sl_owner(t);
    SlThread *th = sl_thread_peek();
    if (owner != NULL && owner == th) {
        sl_rq_append(th, t);
    }
    else if (owner != NULL) {
        sl_rq_insert_foreign(owner, t);
    }             /* else it has no thread: it stays paused, as when a channel is dropped */
    Py_DECREF(t); /* the channel's reference */
    return 1;
}

/* ---- methods ----------------------------------------------------------------------- */

static PyObject *
channel_send(SlChannel *ch, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 1) {
        PyErr_Format(PyExc_TypeError, "send() takes exactly one argument (%zd given)", nargs);
        return NULL;
    }
    return channel_action(ch, 1, args[0], SL_CALL_SITE(ch, args, nargs, NULL));
}

static PyObject *
channel_receive(SlChannel *ch, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 0) {
        PyErr_Format(PyExc_TypeError, "receive() takes no arguments (%zd given)", nargs);
        return NULL;
    }
    return channel_action(ch, -1, NULL, SL_CALL_SITE(ch, args, nargs, NULL));
}

/* Send a bomb; the result the receiver leaves behind is discarded. */
static PyObject *
send_bomb(SlChannel *ch, PyObject *bomb, PyObject *const *args, Py_ssize_t nargs)
{
    if (bomb == NULL) {
        return NULL;
    }
    PyObject *r = channel_action(ch, 1, bomb, SL_CALL_SITE(ch, args, nargs, NULL));
    Py_DECREF(bomb);
    if (r == NULL) {
        return NULL;
    }
    Py_DECREF(r);
    Py_RETURN_NONE;
}

static PyObject *
channel_send_exception(SlChannel *ch, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *bomb = sl_bomb_from_class_args("channel.send_exception", args, nargs);
    return send_bomb(ch, bomb, args, nargs);
}

static PyObject *
channel_send_throw(SlChannel *ch, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 3) {
        PyErr_Format(PyExc_TypeError,
                     "send_throw() takes from 1 to 3 positional arguments "
                     "(%zd given)",
                     nargs);
        return NULL;
    }
    PyObject *bomb =
        sl_bomb_from_raise_args(args[0], nargs > 1 ? args[1] : NULL, nargs > 2 ? args[2] : NULL);
    return send_bomb(ch, bomb, args, nargs);
}

static PyObject *
channel_send_sequence(SlChannel *ch, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 1) {
        PyErr_Format(PyExc_TypeError, "send_sequence() takes exactly one argument (%zd given)",
                     nargs);
        return NULL;
    }
    PyObject *it = PyObject_GetIter(args[0]);
    if (it == NULL) {
        return NULL;
    }
    Py_ssize_t count = 0;
    PyObject *item;
    while ((item = PyIter_Next(it)) != NULL) {
        PyObject *r = channel_action(ch, 1, item, SL_CALL_SITE(ch, args, nargs, NULL));
        Py_DECREF(item);
        if (r == NULL) {
            break;
        }
        Py_DECREF(r);
        count++;
    }
    Py_DECREF(it);
    if (PyErr_Occurred()) {
        return NULL;
    }
    return PyLong_FromSsize_t(count);
}

static PyObject *
channel_iternext(SlChannel *ch)
{
    if (ch->closing && ch->balance <= 0) {
        PyErr_SetNone(PyExc_StopIteration);
        return NULL;
    }
    return channel_action(ch, -1, NULL, SL_CALLED_BY_FOR_ITER);
}

static PyObject *
channel_close(SlChannel *ch, PyObject *unused)
{
    ch->closing = 1;
    Py_RETURN_NONE;
}

static PyObject *
channel_open(SlChannel *ch, PyObject *unused)
{
    ch->closing = 0;
    Py_RETURN_NONE;
}

/* ---- attributes ------------------------------------------------------------------------ */

static PyObject *
get_balance(SlChannel *ch, void *c)
{
    return PyLong_FromSsize_t(ch->balance);
}

static PyObject *
get_queue(SlChannel *ch, void *c)
{
    return Py_NewRef(ch->head ? (PyObject *)ch->head : Py_None);
}

static PyObject *
get_closing(SlChannel *ch, void *c)
{
    return PyBool_FromLong(ch->closing);
}

static PyObject *
get_closed(SlChannel *ch, void *c)
{
    return PyBool_FromLong(ch->closing && ch->balance == 0);
}

static PyObject *
get_preference(SlChannel *ch, void *c)
{
    return PyLong_FromLong(ch->preference);
}

static int
set_preference(SlChannel *ch, PyObject *v, void *c)
{
    if (v == NULL || !PyLong_Check(v)) {
        PyErr_SetString(PyExc_TypeError, "preference must be set to an integer");
        return -1;
    }
    int overflow;
    long x = PyLong_AsLongAndOverflow(v, &overflow);
    if (x == -1 && PyErr_Occurred()) {
        return -1;
    }
    ch->preference = (int8_t)(overflow ? overflow : (x > 0) - (x < 0));
    return 0;
}

static PyObject *
get_schedule_all(SlChannel *ch, void *c)
{
    return PyLong_FromLong(ch->schedule_all);
}

static int
set_schedule_all(SlChannel *ch, PyObject *v, void *c)
{
    /* (the message is Stackless', naming the wrong attribute) */
    int on = sl_int_flag(v, "preference must be set to a bool or integer");
    if (on < 0) {
        return -1;
    }
    ch->schedule_all = (uint8_t)on;
    return 0;
}

static PyGetSetDef channel_getsets[] = {
    {"balance", (getter)get_balance, NULL, "waiting senders minus waiting receivers"},
    {"queue", (getter)get_queue, NULL, "the first waiting tasklet, or None"},
    {"closing", (getter)get_closing, NULL, "close() was called"},
    {"closed", (getter)get_closed, NULL, "closing and nobody waits"},
    {"preference", (getter)get_preference, (setter)set_preference,
     "-1: the receiver runs after a hand-over, 1: the sender, 0: whoever acted"},
    {"schedule_all", (getter)get_schedule_all, (setter)set_schedule_all,
     "1: every hand-over yields to the next runnable tasklet"},
    {NULL},
};

/* ---- pickling ------------------------------------------------------------------------ */

static PyObject *
channel_reduce(SlChannel *ch, PyObject *unused)
{
    PyObject *waiting = PyList_New(0);
    if (waiting == NULL) {
        return NULL;
    }
    for (SlTasklet *t = ch->head; t != NULL; t = t->next) {
        if (PyList_Append(waiting, (PyObject *)t) < 0) {
            Py_DECREF(waiting);
            return NULL;
        }
    }
    int flags = ch->closing | ((ch->preference & 3) << 1) | (ch->schedule_all ? 8 : 0);
    return Py_BuildValue("O()(niN)", Py_TYPE(ch), ch->balance, flags, waiting);
}

/* Queue the listed tasklets again. A tasklet that is blocked elsewhere, runnable, current or
   started is skipped: only tasklets restored from the same pickle (not run yet) join. */
static PyObject *
channel_setstate(SlChannel *ch, PyObject *state)
{
    Py_ssize_t balance;
    int flags;
    PyObject *waiting;
    if (!PyArg_ParseTuple(state, "niO!:__setstate__", &balance, &flags, &PyList_Type, &waiting)) {
        return NULL;
    }
    PyTypeObject *tasklet_type = sl_module->tasklet_type;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(waiting); i++) {
        if (!PyObject_TypeCheck(PyList_GET_ITEM(waiting, i), tasklet_type)) {
            PyErr_SetString(PyExc_TypeError, "a channel's waiting list holds a non-tasklet");
            return NULL;
        }
    }
    drop_waiters(ch);
    ch->closing = flags & 1;
    int pref = (flags >> 1) & 3;
    ch->preference = (int8_t)(pref == 3 ? -1 : pref == 2 ? 0 : pref);
    ch->schedule_all = (flags & 8) != 0;
    int dir = balance > 0 ? 1 : -1;
    for (Py_ssize_t i = 0; balance != 0 && i < PyList_GET_SIZE(waiting); i++) {
        SlTasklet *t = (SlTasklet *)PyList_GET_ITEM(waiting, i);
        if (t->channel != NULL || t->in_runqueue || t->state == SL_STARTED || t->is_main ||
            t->thread != sl_thread_get()) {
            continue;
        }
        enqueue(ch, (SlTasklet *)Py_NewRef(t), dir);
    }
    Py_RETURN_NONE;
}

static PyMethodDef channel_methods[] = {
    {"__reduce__", (PyCFunction)channel_reduce, METH_NOARGS, NULL},
    {"__reduce_ex__", (PyCFunction)channel_reduce, METH_O, NULL},
    {"__setstate__", (PyCFunction)channel_setstate, METH_O, NULL},
    {"send", (PyCFunction)(void (*)(void))channel_send, METH_FASTCALL,
     "send(value): hand value to a receiver, blocking until there is one"},
    {"receive", (PyCFunction)(void (*)(void))channel_receive, METH_FASTCALL,
     "receive() -> value, blocking until a sender comes"},
    {"send_exception", (PyCFunction)(void (*)(void))channel_send_exception, METH_FASTCALL,
     "send_exception(exc, *args): the receiver raises exc(*args)"},
    {"send_throw", (PyCFunction)(void (*)(void))channel_send_throw, METH_FASTCALL,
     "send_throw(exc, val=None, tb=None): the receiver raises, traceback included"},
    {"send_sequence", (PyCFunction)(void (*)(void))channel_send_sequence, METH_FASTCALL,
     "send_sequence(iterable) -> number of items sent"},
    {"close", (PyCFunction)channel_close, METH_NOARGS, "refuse further blocking operations"},
    {"open", (PyCFunction)channel_open, METH_NOARGS, "undo close()"},
    {NULL},
};

/* ---- lifetime -------------------------------------------------------------------- */

static PyObject *
channel_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    SlChannel *ch = (SlChannel *)type->tp_alloc(type, 0);
    if (ch != NULL) {
        ch->preference = -1;
    }
    return (PyObject *)ch;
}

static int
channel_init(PyObject *self, PyObject *args, PyObject *kwds)
{
    return 0; /* accepts and ignores anything, so subclasses may define __init__ freely */
}

static int
channel_traverse(SlChannel *ch, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(ch));
    for (SlTasklet *t = ch->head; t; t = t->next) {
        Py_VISIT(t);
    }
    return 0;
}

static int
channel_clear(SlChannel *ch)
{
    drop_waiters(ch);
    return 0;
}

static void
channel_dealloc(SlChannel *ch)
{
    PyTypeObject *tp = Py_TYPE(ch);
    PyObject_GC_UnTrack(ch);
    if (ch->weakreflist != NULL) {
        PyObject_ClearWeakRefs((PyObject *)ch);
    }
    drop_waiters(ch);
    tp->tp_free(ch);
    Py_DECREF(tp);
}

static PyMemberDef channel_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(SlChannel, weakreflist), READONLY},
    {NULL},
};

static PyType_Slot channel_slots[] = {
    {Py_tp_doc, "channel()\n\nA rendezvous between tasklets: send() and receive() block until\n"
                "the other side arrives."},
    {Py_tp_new, channel_new},
    {Py_tp_init, channel_init},
    {Py_tp_dealloc, channel_dealloc},
    {Py_tp_traverse, channel_traverse},
    {Py_tp_clear, channel_clear},
    {Py_tp_iter, PyObject_SelfIter},
    {Py_tp_iternext, channel_iternext},
    {Py_tp_methods, channel_methods},
    {Py_tp_getset, channel_getsets},
    {Py_tp_members, channel_members},
    {0, NULL},
};

PyType_Spec sl_channel_spec = {
    .name = "_stackless.channel",
    .basicsize = sizeof(SlChannel),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .slots = channel_slots,
};
