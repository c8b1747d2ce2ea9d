"""The main loop: runs the tasklets, fires timers, and otherwise waits without using CPU.

    from stacklesslib.main import mainloop, event_queue
    stackless.tasklet(server)()
    mainloop.run()              # until mainloop.stop()

One iteration (`loop()`): wait until the next timer is due, a watched file descriptor is
ready or another thread calls `interrupt_wait()` (not at all while a tasklet is runnable),
then run the pumps, the due timers and `stackless.run()`. The wait is a `selectors`
(epoll) wait: an idle program sleeps in the kernel. `max_wait_time` (None: no limit; the
published library used 0.01 s) caps it.
"""
import os
import select as _select
import selectors
import sys
import threading
import traceback

import stackless

from stacklesslib.events import EventQueue

_ONESHOT = object()  # the selector key data of the one-shot epoll set
_EPOLL_MASK = {}
if hasattr(_select, "epoll"):
    _EPOLL_MASK = {selectors.EVENT_READ: _select.EPOLLIN,
                   selectors.EVENT_WRITE: _select.EPOLLOUT,
                   selectors.EVENT_READ | selectors.EVENT_WRITE:
                   _select.EPOLLIN | _select.EPOLLOUT}


class MainLoop:
    def __init__(self, event_queue):
        self.event_queue = event_queue
        self.max_wait_time = None
        self.pumps = []
        self.running = False
        self._stop = False
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        # descriptors armed for one notification: an epoll set of their own, itself watched
        # by the selector (epoll descriptors can be polled)
        self._oneshot = _select.epoll() if hasattr(_select, "epoll") else None
        self._armed = {}
        if self._oneshot is not None:
            self._selector.register(self._oneshot.fileno(), selectors.EVENT_READ, _ONESHOT)
        self._waiting = False
        self._thread = None
        event_queue.wakeup = self.interrupt_wait

    # -- file descriptors ----------------------------------------------------------------------
    def arm(self, fd, events, callback):
        """Call callback(events_ready) once, from the loop, when fd is next ready for events
        (EVENT_READ and/or EVENT_WRITE). The cooperative sockets wait this way: on Linux
        the descriptor stays in the epoll set, disarmed between waits (EPOLLONESHOT), so a
        wait costs one epoll_ctl."""
        oneshot = self._oneshot
        if oneshot is None:  # no epoll: a selectors registration for one notification
            def once(mask):
                self.unwatch(fd, events)
                callback(mask)
            return self.watch(fd, events, once)
        armed = self._armed.get(fd)
        if armed is None:
            self._armed[fd] = {events: callback}
            mask = _EPOLL_MASK[events] | _select.EPOLLONESHOT
            try:
                oneshot.register(fd, mask)
            except FileExistsError:
                oneshot.modify(fd, mask)
            return
        armed[events] = callback
        mask = _select.EPOLLONESHOT
        for e in armed:
            mask |= _EPOLL_MASK[e]
        oneshot.modify(fd, mask)

    def disarm(self, fd, events=None, forget=False):
        """Drop the pending arm() callback of fd for events (None: all of them); forget:
        fd is being closed."""
        armed = self._armed.get(fd)
        rest = {}
        if armed is not None:
            rest = {e: cb for e, cb in armed.items() if events is not None and e != events}
            del self._armed[fd]
        if self._oneshot is None:
            if armed is not None:
                self.unwatch(fd)
            for e, cb in rest.items():
                self.arm(fd, e, cb)
            return
        for e, cb in rest.items():
            self.arm(fd, e, cb)
        if forget:
            try:
                self._oneshot.unregister(fd)
            except (FileNotFoundError, OSError, ValueError):
                pass

    def _dispatch_oneshot(self, timeout):
        """Poll the armed descriptors (without waiting) and run their callbacks."""
        for fd, mask in self._oneshot.poll(timeout, 1024):
            armed = self._armed.pop(fd, None)
            if not armed:
                continue
            ready = 0
            if mask & (_select.EPOLLIN | _select.EPOLLERR | _select.EPOLLHUP):
                ready |= selectors.EVENT_READ
            if mask & (_select.EPOLLOUT | _select.EPOLLERR | _select.EPOLLHUP):
                ready |= selectors.EVENT_WRITE
            rest = {}
            for events, callback in armed.items():
                if ready & events:
                    try:
                        callback(ready & events)
                    except Exception:
                        self.handle_error(sys.exc_info())
                else:
                    rest[events] = callback
            if rest:  # re-arm what did not fire
                for events, callback in rest.items():
                    self.arm(fd, events, callback)

    # -- file descriptors watched until unwatch() (select.select, patched, uses these) ------
    def watch(self, fd, events, callback):
        """Call callback(events_ready) from the loop when fd is ready for events."""
        try:
            key = self._selector.get_key(fd)
        except KeyError:
            self._selector.register(fd, events, {events: callback})
            return
        data = dict(key.data)
        data[events] = callback
        mask = 0
        for e in data:
            mask |= e
        self._selector.modify(fd, mask, data)

    def unwatch(self, fd, events=None):
        try:
            key = self._selector.get_key(fd)
        except (KeyError, ValueError):
            return
        data = {e: cb for e, cb in key.data.items() if events is not None and e != events}
        if data:
            mask = 0
            for e in data:
                mask |= e
            self._selector.modify(fd, mask, data)
        else:
            self._selector.unregister(fd)

    # -- the loop ---------------------------------------------------------------------------
    def add_pump(self, pump):
        self.pumps.append(pump)

    def remove_pump(self, pump):
        self.pumps.remove(pump)

    def interrupt_wait(self):
        """Wake the loop from its wait (safe from any thread and from signal handlers)."""
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass  # the pipe is full: the loop wakes anyway

    def wait(self, delay):
        """Wait up to delay seconds (None: until woken) for timers, fds or interrupt_wait."""
        self._waiting = True
        try:
            ready = self._selector.select(delay)
        finally:
            self._waiting = False
        for key, mask in ready:
            if key.data is _ONESHOT:
                self._dispatch_oneshot(0)
                continue
            if key.fd == self._wake_r:
                try:
                    while os.read(self._wake_r, 4096):
                        pass
                except BlockingIOError:
                    pass
                continue
            for events, callback in list(key.data.items()):
                if mask & events:
                    try:
                        callback(mask & events)
                    except Exception:
                        self.handle_error(sys.exc_info())

    def get_wait_time(self):
        if stackless.runcount > 1 or self._stop:
            return 0
        delay = self.event_queue.due_delay()
        if self.max_wait_time is not None:
            delay = self.max_wait_time if delay is None else min(delay, self.max_wait_time)
        return delay

    def loop(self):
        """One iteration: wait, pumps, due timers, the runnable tasklets."""
        self.wait(self.get_wait_time())
        for pump in list(self.pumps):
            try:
                pump()
            except Exception:
                self.handle_error(sys.exc_info())
        self.event_queue.pump()
        try:
            stackless.run()
        except Exception:
            self.handle_error(sys.exc_info())

    def run(self):
        """Loop until stop() (the main tasklet's job in a stacklesslib program)."""
        if self.running:
            raise RuntimeError("the main loop is already running")
        self.running, self._stop = True, False
        self._thread = threading.get_ident()
        try:
            while not self._stop:
                self.loop()
        finally:
            self.running = False

    def stop(self):
        self._stop = True
        if self._thread is not None and self._thread != threading.get_ident():
            self.interrupt_wait()

    def adjust_wait_times(self, delta):
        self.event_queue.reschedule(delta)

    def handle_error(self, exc_info):
        traceback.print_exception(*exc_info)


event_queue = EventQueue()
mainloop = MainLoop(event_queue)


def run(func=None, *args, **kwargs):
    """Run func(*args, **kwargs) in a tasklet under the main loop until it returns, and
    return its result (without func: run the loop until stop())."""
    if func is None:
        return mainloop.run()
    box = {}

    def body():
        try:
            box["result"] = func(*args, **kwargs)
        except BaseException as e:  # noqa: B902 (handed back to the caller)
            box["error"] = e
        finally:
            mainloop.stop()

    stackless.tasklet(body)()
    mainloop.run()
    if "error" in box:
        raise box["error"]
    return box.get("result")
