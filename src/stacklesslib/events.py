"""The event queue: callbacks due now, at a time, after a delay or repeatedly (PEP 3156 style).

Callbacks run when the queue is pumped (the main loop does that); a callback's exception is
passed to `handle_error` and does not stop the others.
"""
import heapq
import itertools
import sys
import threading
import traceback

from stacklesslib.base import time


class Handle:
    """A scheduled callback; `cancel()` keeps it from running."""

    __slots__ = ("when", "callback", "args", "cancelled", "interval")

    def __init__(self, when, callback, args, interval=None):
        self.when = when
        self.callback = callback
        self.args = args
        self.cancelled = False
        self.interval = interval

    def cancel(self):
        self.cancelled = True

    def __repr__(self):
        return "<Handle %s at %.3f%s>" % (getattr(self.callback, "__qualname__", self.callback),
                                          self.when, " cancelled" if self.cancelled else "")


class EventQueue:
    def __init__(self):
        self._heap = []
        self._seq = itertools.count()
        self._incoming = []  # from other threads
        self._lock = threading.Lock()
        self.wakeup = None  # called after call_later_threadsafe (the main loop's wake-up)

    # -- scheduling ----------------------------------------------------------------------
    def call_at(self, when, callback, *args):
        handle = Handle(when, callback, args)
        heapq.heappush(self._heap, (when, next(self._seq), handle))
        return handle

    def call_later(self, delay, callback, *args):
        return self.call_at(time() + delay, callback, *args)

    def call_soon(self, callback, *args):
        return self.call_at(time(), callback, *args)

    def call_repeatedly(self, interval, callback, *args):
        """callback(*args) every interval seconds until its handle is cancelled."""
        if interval <= 0:
            raise ValueError("interval must be positive")
        handle = Handle(time() + interval, callback, args, interval)
        heapq.heappush(self._heap, (handle.when, next(self._seq), handle))
        return handle

    def call_later_threadsafe(self, delay, callback, *args):
        """call_later from any thread; wakes the main loop if it waits."""
        handle = Handle(time() + delay, callback, args)
        with self._lock:
            self._incoming.append(handle)
        if self.wakeup is not None:
            self.wakeup()
        return handle

    def call_soon_threadsafe(self, callback, *args):
        return self.call_later_threadsafe(0, callback, *args)

    # -- running -------------------------------------------------------------------------
    def _take_incoming(self):
        if self._incoming:
            with self._lock:
                incoming, self._incoming = self._incoming, []
            for handle in incoming:
                heapq.heappush(self._heap, (handle.when, next(self._seq), handle))

    def due_delay(self):
        """Seconds until the next callback is due (0: due now), or None if there is none."""
        self._take_incoming()
        heap = self._heap
        while heap and heap[0][2].cancelled:
            heapq.heappop(heap)
        if not heap:
            return None
        return max(0.0, heap[0][0] - time())

    @property
    def is_due(self):
        return self.due_delay() == 0.0

    def pump(self):
        """Run the callbacks due now (not those they schedule for now); returns how many."""
        self._take_incoming()
        now = time()
        due = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            due.append(heapq.heappop(heap)[2])
        ran = 0
        for handle in due:
            if handle.cancelled:
                continue
            if handle.interval is not None:
                handle.when += handle.interval
                if handle.when < now:
                    handle.when = now + handle.interval  # skip missed beats
                heapq.heappush(heap, (handle.when, next(self._seq), handle))
            ran += 1
            try:
                handle.callback(*handle.args)
            except Exception:
                self.handle_error(sys.exc_info())
        return ran

    def reschedule(self, delta):
        """Move every pending callback by delta seconds (after the clock was adjusted)."""
        self._take_incoming()
        entries = [(when + delta, seq, handle) for when, seq, handle in self._heap]
        for when, _, handle in entries:
            handle.when = when
        heapq.heapify(entries)
        self._heap = entries

    def __len__(self):
        return sum(1 for _, _, h in self._heap if not h.cancelled) + len(self._incoming)

    def handle_error(self, exc_info):
        traceback.print_exception(*exc_info)


class DummyEventQueue(EventQueue):
    """An event queue nobody pumps: scheduling on it is an error."""

    def call_at(self, when, callback, *args):
        raise NotImplementedError("no main loop pumps this event queue")

    call_repeatedly = call_later_threadsafe = call_at
