"""sleep() and the switch between thread and tasklet versions of the blocking primitives."""
import threading
import time as _time

import stackless

from stacklesslib import locks
from stacklesslib.main import event_queue


def tasklet_sleep(delay):
    """Block only the calling tasklet for delay seconds (<= 0: until the next pump)."""
    ch = stackless.channel()
    ch.preference = 1  # the timer's callback goes on; the sleeper runs in its turn

    def wake():
        if ch.balance < 0:
            ch.send(None)

    handle = event_queue.call_later(max(0.0, delay), wake)
    try:
        ch.receive()
    finally:
        handle.cancel()


def install_stackless():
    """app.sleep, Event, Lock, ... become the tasklet versions."""
    global sleep, Event, Lock, RLock, Condition, Semaphore
    sleep = tasklet_sleep
    Event, Lock, RLock = locks.Event, locks.Lock, locks.RLock
    Condition, Semaphore = locks.Condition, locks.Semaphore


def install_vanilla():
    """app.sleep, Event, Lock, ... are the thread versions (the default)."""
    global sleep, Event, Lock, RLock, Condition, Semaphore
    sleep = _time.sleep
    Event, Lock, RLock = threading.Event, threading.Lock, threading.RLock
    Condition, Semaphore = threading.Condition, threading.Semaphore


install_vanilla()
