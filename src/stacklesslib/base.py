"""Small helpers: the clock, context managers for tasklet flags, a non-blocking channel."""
import contextlib
import time as _time

import stackless

time = _time.monotonic
atomic = stackless.atomic


@contextlib.contextmanager
def block_trap(trap=True):
    """Within the block the current tasklet refuses to block on a channel (RuntimeError)."""
    t = stackless.getcurrent()
    old = t.block_trap
    t.block_trap = trap
    try:
        yield
    finally:
        t.block_trap = old


@contextlib.contextmanager
def ignore_nesting(flag=True):
    """Within the block the current tasklet may be preempted even with C state."""
    t = stackless.getcurrent()
    old = t.set_ignore_nesting(flag)
    try:
        yield
    finally:
        t.set_ignore_nesting(old)


@contextlib.contextmanager
def switch_trap():
    """Within the block any tasklet switch raises RuntimeError."""
    stackless.switch_trap(1)
    try:
        yield
    finally:
        stackless.switch_trap(-1)


class SignalChannel(stackless.channel):
    """A channel whose signals reach only tasklets already waiting: never blocks."""

    def __init__(self):
        self.preference = 1  # the signalling tasklet goes on

    def signal(self, value=None):
        """Wake one waiting receiver with value; False if none was waiting."""
        if self.balance < 0:
            self.send(value)
            return True
        return False

    def signal_all(self, value=None):
        """Wake every waiting receiver with value; how many there were."""
        n = 0
        while self.balance < 0:
            self.send(value)
            n += 1
        return n
