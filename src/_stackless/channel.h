/* The channel object: a FIFO of tasklets blocked on it, all in one direction.
 *
 * Owns: the wait queue and its balance, preference and schedule_all, closing, and the
 * channel action (send/receive and everything built on them). It decides who runs after a
 * hand-over; the scheduler performs the switch.
 */
#ifndef SL_CHANNEL_H
#define SL_CHANNEL_H

#include <Python.h>

#include "tasklet.h"

typedef struct SlChannel {
    PyObject_HEAD
    SlTasklet *head, *tail; /* waiting tasklets, oldest first; the queue owns a reference */
    Py_ssize_t balance;     /* waiting senders minus waiting receivers */
    int8_t preference;      /* -1 receiver preferred, 0 none, +1 sender preferred */
    uint8_t schedule_all;
    uint8_t closing;
    PyObject *weakreflist;
} SlChannel;

/* Take a blocked tasklet off its channel's queue (throw/kill, exception delivery). The
   queue's reference passes to the caller. */
void sl_channel_unblock(SlTasklet *t);

/* For objects that block tasklets on a private channel (the poller): receive() on ch, as
   the current tasklet; and make the first tasklet waiting to receive on ch runnable with
   `value` (a bomb raises there), without switching: 1 if one waited, else 0. */
PyObject *sl_channel_receive(SlChannel *ch);
int sl_channel_wake_receiver(SlChannel *ch, PyObject *value);

extern PyType_Spec sl_channel_spec;

#endif /* SL_CHANNEL_H */
