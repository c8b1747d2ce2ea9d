"""The main loop: runs the tasklets, fires timers, and otherwise waits without using CPU.

    from stacklesslib.main import mainloop, event_queue
    stackless.tasklet(server)()
    mainloop.run()              # until mainloop.stop()

One iteration (`loop()`): wait until the next timer is due, a file descriptor a tasklet
waits on is ready, a watched one is, or another thread calls `interrupt_wait()` (not at all
while a tasklet is runnable), then run the pumps, the due timers and `stackless.run()`.
The wait is the extension's epoll poller (`mainloop.poller`, Linux): it wakes the tasklets
blocked in cooperative socket calls itself; an idle program sleeps in the kernel.
`max_wait_time` (None: no limit; the published library used 0.01 s) caps it.
"""
import os
import selectors
import sys
import threading
import traceback

import stackless

from stacklesslib.events import EventQueue

try:
    from _stackless import poller as _Poller
except ImportError:  # pragma: no cover (the extension builds the poller wherever epoll is)
    raise ImportError("stacklesslib needs epoll (Linux): _stackless has no poller here") from None


class MainLoop:
    def __init__(self, event_queue):
        self.event_queue = event_queue
        self.max_wait_time = None
        self.pumps = []
        self.running = False
        self._stop = False
        # tasklets blocked on descriptors wait in the poller; the selector holds what
        # watch() callbacks want (select.select, patched), and the poller watches it
        self.poller = _Poller()
        self._selector = selectors.DefaultSelector()
        self.poller.watch(self._selector.fileno())
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self.poller.watch(self._wake_r)
        self._waiting = False
        self._thread = None
        event_queue.wakeup = self.interrupt_wait

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
            ready = self.poller.poll(delay)
        finally:
            self._waiting = False
        for fd, _ in ready:
            if fd == self._wake_r:
                try:
                    while os.read(self._wake_r, 4096):
                        pass
                except BlockingIOError:
                    pass
                continue
            for key, mask in self._selector.select(0):
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
        self.poller.running = True
        try:
            while not self._stop:
                self.loop()
        finally:
            self.running = self.poller.running = False

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
