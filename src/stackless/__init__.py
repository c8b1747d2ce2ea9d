"""Stackless Python's ``stackless`` module on stock CPython.

Tasklets, channels and the cooperative scheduler are implemented in C by the ``_stackless``
extension (the names pickles and reprs refer to); this package re-exports them and adds the
module-level properties ``current``, ``main``, ``runcount``, ``threads``, ``debug``,
``uncollectables`` and ``pickle_with_tracing_state``.
"""
import sys as _sys
import types as _types

import _stackless
from _stackless import (
    PICKLEFLAGS_PRESERVE_AG_FINALIZER,
    PICKLEFLAGS_PRESERVE_TRACING_STATE,
    PICKLEFLAGS_RESET_AG_FINALIZER,
    TaskletExit,
    atomic,
    bomb,
    channel,
    enable_softswitch,
    get_channel_callback,
    get_schedule_callback,
    get_thread_info,
    getcurrent,
    getcurrentid,
    getdebug,
    getmain,
    getruncount,
    getthreads,
    getuncollectables,
    pickle_flags,
    pickle_flags_default,
    run,
    schedule,
    schedule_remove,
    set_channel_callback,
    set_error_handler,
    set_schedule_callback,
    switch_trap,
    tasklet,
)

__all__ = [
    "atomic", "channel", "enable_softswitch", "get_channel_callback", "get_schedule_callback",
    "get_thread_info", "getcurrent", "getcurrentid", "getdebug", "getmain", "getruncount",
    "getthreads", "getuncollectables", "pickle_with_tracing_state", "run", "schedule",
    "schedule_remove", "set_channel_callback", "set_error_handler", "set_schedule_callback",
    "switch_trap", "tasklet", "stackless",
]


# --- Stackless 3.7.5 implementation internals, kept as documented stubs ([compat]) --------


class cstack:
    """Stub: Stackless's C-stack object. Here a suspended tasklet's C stack is internal."""

    def __new__(cls, *args, **kwargs):
        raise TypeError("cannot create 'stackless.cstack' instances")


class cframe:
    """Stub: Stackless's C-level frame type; this implementation has none."""

    def __new__(cls, *args, **kwargs):
        raise TypeError("cannot create 'stackless.cframe' instances")


_wrap = _types.ModuleType("stackless._wrap", "Stub: Stackless's pickling wrapper types.")


def _pickle_moduledict(module_dict):
    """Stub: Stackless pickled a module's __dict__ as a reference to the module."""
    for module in list(_sys.modules.values()):
        if getattr(module, "__dict__", None) is module_dict:
            return module
    raise ValueError("not the __dict__ of an imported module")


def _gc_track(obj):
    """Stub: no effect (the collector tracks tasklets and channels itself)."""


def _gc_untrack(obj):
    """Stub: no effect (the collector tracks tasklets and channels itself)."""


def test_cframe_nr(switches):
    """Stub of a Stackless self-test: switches between two tasklets `switches` times."""
    def spin():
        for _ in range(switches):
            schedule()
    tasklet(spin)()
    run()


def test_outside():
    """Stub of a Stackless self-test: runs the scheduler until nothing is runnable."""
    run()


def _test_nostacklesscall(func, *args, **kwargs):
    """Stub: calls func; every call here is a hard switch anyway."""
    return func(*args, **kwargs)


class _StacklessModule(_types.ModuleType):
    """The type of the stackless module: a module with a few read-only properties."""

    @property
    def current(self):
        return getcurrent()

    @property
    def main(self):
        return getmain()

    @property
    def runcount(self):
        return getruncount()

    @property
    def threads(self):
        return getthreads()

    @property
    def debug(self):
        return getdebug()

    @property
    def uncollectables(self):
        return getuncollectables()

    @property
    def pickle_with_tracing_state(self):
        return bool(pickle_flags() & PICKLEFLAGS_PRESERVE_TRACING_STATE)

    @pickle_with_tracing_state.setter
    def pickle_with_tracing_state(self, value):
        bit = PICKLEFLAGS_PRESERVE_TRACING_STATE
        pickle_flags(bit if value else 0, bit)
        pickle_flags_default(bit if value else 0, bit)

    def __reduce__(self):
        return "stackless"

    def __reduce_ex__(self, protocol):
        return "stackless"


def dump_tasklets(file=None):
    """Print every tasklet of the process with its state and, if it is suspended, its stack:
    what to look at when a program hangs. Writes to ``file`` (default ``sys.stderr``)."""
    import gc
    import traceback

    out = file if file is not None else _sys.stderr
    found = [o for o in gc.get_objects() if isinstance(o, tasklet)]
    for t in (getmain(), getcurrent()):
        if t not in found:
            found.append(t)
    found.sort(key=lambda t: (t.thread_id, not t.is_main))
    print("%d tasklets" % len(found), file=out)
    for t in found:
        if t.is_current:
            state = "running"
        elif t.blocked:
            ch = t._channel
            state = "blocked %s on channel %#x (balance %d)" % (
                "sending" if ch.balance > 0 else "receiving", id(ch), ch.balance)
        elif t.scheduled:
            state = "runnable"
        elif t.paused:
            state = "paused"
        elif t.alive:
            state = "alive"
        else:
            state = "not alive"
        flags = [name for name in ("is_main", "atomic") if getattr(t, name)]
        print("tasklet %#x in thread %d: %s%s" % (
            id(t), t.thread_id, state, " (%s)" % ", ".join(flags) if flags else ""), file=out)
        frame = t.frame if not t.is_current else None
        if frame is not None:
            for line in traceback.format_stack(frame):
                out.write("  " + line.replace("\n", "\n  ").rstrip(" "))


stackless = _sys.modules[__name__]
stackless.__class__ = _StacklessModule

# Reducers for what frames hold (code objects, cells, generators, coroutines); the bytecode
# checks in it import `dis` only when a tasklet is first pickled or unpickled.
from stackless import _pickling  # noqa: E402,F401
