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


stackless = _sys.modules[__name__]
stackless.__class__ = _StacklessModule
