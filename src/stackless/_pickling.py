"""Bytecode knowledge for pickling started tasklets (used by the C extension).

The C side (src/_stackless/pystate.c) copies a suspended tasklet's frames out as records
and rebuilds them from records. What a record may contain is decided here, from the
bytecode as the `dis` module of the running Python describes it:

* where each instruction starts, the depth of the value stack there and what kind of
  value each stack slot holds (an iterator a FOR_ITER will advance, the list a
  comprehension appends to, an exception a handler re-raises, a slot that may be NULL);
* which locals a frame may read without a check from a given position on.

A frame whose record does not fit its code is refused with ValueError before anything of
it runs: the eval loop trusts those invariants and would crash on a hostile pickle.

Also here: the reducers that let frames' contents pickle (functions by value when they
cannot be imported, code objects, cells).
"""

import copyreg
import importlib
import marshal
import sys
import types

__all__ = ["NULL", "TaggedInt"]

CACHE_TAG = sys.implementation.cache_tag  # e.g. "cpython-313": bytecode is per minor version
_V = sys.version_info[:2]


class _Null:
    """Stands for an empty frame slot in a record."""

    __slots__ = ()

    def __repr__(self):
        return "stackless._pickling.NULL"

    def __reduce__(self):
        return "NULL"


NULL = _Null()


class TaggedInt:
    """A 3.14+ tagged integer on a frame's value stack (a list iteration's index)."""

    __slots__ = ("value",)

    def __init__(self, value):
        if type(value) is not int or value < 0:
            raise ValueError("bad tagged integer")
        self.value = value

    def __reduce__(self):
        return (TaggedInt, (self.value,))

    def __eq__(self, other):
        return type(other) is TaggedInt and other.value == self.value

    def __hash__(self):
        return hash(("TaggedInt", self.value))


# ---- reducers ---------------------------------------------------------------------------


def _importable(func):
    module = sys.modules.get(getattr(func, "__module__", None) or "")
    obj = module
    try:
        for part in func.__qualname__.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        return False
    return obj is func


def _digest(data):
    import hashlib  # (imported when first needed: importing stackless stays cheap)

    return hashlib.blake2b(data, digest_size=16).digest()


def _load_code(tag, data, digest):
    """CPython runs bytecode unchecked, so damaged bytecode must never reach marshal: the
    digest catches corruption (not malice: a pickle can run any code anyway)."""
    if tag != CACHE_TAG:
        raise ValueError(
            "code pickled by %s cannot be loaded by %s (bytecode is per Python version)"
            % (tag, CACHE_TAG)
        )
    if type(data) is not bytes or _digest(data) != digest:
        raise ValueError("damaged code object in the pickle")
    code = marshal.loads(data)
    if type(code) is not types.CodeType:
        raise ValueError("not a code object")
    return code


def _reduce_code(code):
    data = marshal.dumps(code)
    return (_load_code, (CACHE_TAG, data, _digest(data)))


def _module_globals(name):
    return importlib.import_module(name).__dict__


def _make_function(code, globals_module, name, qualname, defaults, kwdefaults, closure):
    if type(code) is not types.CodeType:
        raise ValueError("a function's code is not a code object")
    if closure is not None:
        closure = tuple(closure)
    f = types.FunctionType(code, _module_globals(globals_module), name, defaults, closure)
    f.__qualname__ = qualname
    f.__kwdefaults__ = kwdefaults
    return f


class FunctionByValue:
    """Pickles a function that cannot be found by name (lambda, closure, nested)."""

    __slots__ = ("func",)

    def __init__(self, func):
        self.func = func

    def __reduce__(self):
        f = self.func
        return (
            _make_function,
            (
                f.__code__,
                f.__globals__.get("__name__", "__main__"),
                f.__name__,
                f.__qualname__,
                _by_value_tuple(f.__defaults__),
                None if f.__kwdefaults__ is None
                else {k: by_value(v) for k, v in f.__kwdefaults__.items()},
                f.__closure__,
            ),
        )


_wrappers = {}  # id(function) -> its FunctionByValue, while one tasklet is reduced


def by_value(obj):
    """obj, or for a function that cannot be imported a stand-in that pickles it by value
    (plain pickle looks functions up by name and cannot be told otherwise); unpickling the
    stand-in gives the function itself. One stand-in per function keeps identity."""
    if type(obj) is not types.FunctionType or _importable(obj):
        return obj
    wrapper = _wrappers.get(id(obj))
    if wrapper is None or wrapper.func is not obj:
        wrapper = _wrappers[id(obj)] = FunctionByValue(obj)
    return wrapper


def _by_value_tuple(items):
    return None if items is None else tuple(by_value(v) for v in items)


def _unwrapped(items):
    """items with stand-ins replaced by their functions again: a pickle round trip does that
    by itself, copy.copy() passes the state on as it is."""
    return tuple(v.func if type(v) is FunctionByValue else v for v in items)


def _make_cell(*contents):
    return types.CellType(*contents)


def _set_cell(cell, contents):
    cell.cell_contents = contents


def _reduce_cell(cell):
    try:
        contents = cell.cell_contents
    except ValueError:
        return (_make_cell, ())
    # the contents as state, so that a cell reachable from its own contents pickles
    return (_make_cell, (), by_value(contents), None, None, _set_cell)


copyreg.pickle(types.CodeType, _reduce_code)
copyreg.pickle(types.CellType, _reduce_cell)

GEN_CREATED, GEN_SUSPENDED, GEN_SUSPENDED_YIELD_FROM, GEN_EXHAUSTED = range(4)


def _code_of(gen):
    return getattr(gen, "gi_code", None) or getattr(gen, "cr_code", None) or gen.ag_code


def _reduce_generator(gen):
    import _stackless

    record = _stackless._generator_record(gen)
    if record[1] == GEN_EXHAUSTED:
        return (_exhausted_generator, (_code_of(gen), gen.__name__, gen.__qualname__))
    func, state, offset, locals_, stack, exc = record
    return (_make_generator, (CACHE_TAG, by_value(func), state, offset,
                              _by_value_tuple(locals_), _by_value_tuple(stack), exc,
                              gen.__name__, gen.__qualname__))


def _make_generator(tag, func, state, offset, locals_, stack, exc, name, qualname):
    """A suspended generator, coroutine or async generator, checked like a tasklet's frame."""
    import _stackless

    if tag != CACHE_TAG:
        raise ValueError("generator pickled by %s cannot be restored by %s"
                         % (tag, CACHE_TAG))
    if type(func) is FunctionByValue:
        func = func.func
    if type(func) is not types.FunctionType or type(offset) is not int:
        raise ValueError("bad generator state")
    if type(locals_) is not tuple or type(stack) is not tuple:
        raise ValueError("bad generator state")
    if state not in (GEN_CREATED, GEN_SUSPENDED, GEN_SUSPENDED_YIELD_FROM):
        raise ValueError("bad generator state")
    code = func.__code__
    layout = _layout(code)
    first = layout.prev.get(offset)
    if (state == GEN_CREATED) != (first is not None and
                                  layout.insts[first].opname == "RETURN_GENERATOR"):
        raise ValueError("generator of %r: state and resume offset disagree" % code.co_qualname)
    locals_, stack = _unwrapped(locals_), _unwrapped(stack)
    check_stack(code, offset, stack)
    check_locals(code, offset, locals_)
    gen = _stackless._new_generator(func, state, offset, locals_, stack, exc)
    gen.__name__ = name
    gen.__qualname__ = qualname
    return gen


def _exhausted_generator(code, name, qualname):
    import _stackless

    if type(code) is not types.CodeType:
        raise ValueError("bad generator state")
    func = types.FunctionType(code, {"__builtins__": __builtins__})
    layout = _layout(code)
    start = next((off for off, before in layout.prev.items()
                  if layout.insts[before].opname == "RETURN_GENERATOR"), None)
    if start is None:
        raise ValueError("not generator code")
    empty = tuple(NULL for _ in range(_nlocalsplus(code)))
    gen = _stackless._new_generator(func, GEN_CREATED, start, empty, (), None)
    gen.close()  # a new generator closes without running any of its code
    gen.__name__ = name
    gen.__qualname__ = qualname
    return gen


def _nlocalsplus(code):
    return len(code.co_varnames) + len(code.co_cellvars) + len(code.co_freevars) - len(
        set(code.co_varnames) & set(code.co_cellvars))


for _type in (types.GeneratorType, types.CoroutineType, types.AsyncGeneratorType):
    copyreg.pickle(_type, _reduce_generator)


# ---- bytecode layout ----------------------------------------------------------------------

_NULL_ON_TOP = _V >= (3, 13)  # where LOAD_GLOBAL/LOAD_ATTR put the NULL of a call


def _exception_table(code):
    """(start, end, target, depth, lasti) in code units."""
    data = code.co_exceptiontable
    entries = []
    i = 0

    def varint():
        nonlocal i
        b = data[i]
        i += 1
        val = b & 63
        while b & 64:
            b = data[i]
            i += 1
            val = (val << 6) | (b & 63)
        return val

    while i < len(data):
        start = varint()
        length = varint()
        target = varint()
        dl = varint()
        entries.append((start, start + length, target, dl >> 1, dl & 1))
    return entries


_NO_RESULT_PREFIXES = ("STORE_", "DELETE_", "POP_JUMP", "JUMP")
_NO_RESULT = {
    "POP_TOP", "POP_EXCEPT", "RETURN_VALUE", "RETURN_CONST", "RAISE_VARARGS", "RERAISE",
    "LIST_APPEND", "SET_ADD", "MAP_ADD", "LIST_EXTEND", "SET_UPDATE", "DICT_UPDATE",
    "DICT_MERGE", "END_FOR", "POP_ITER", "NOP", "RESUME", "EXTENDED_ARG", "CACHE",
    "PRINT_EXPR", "SETUP_ANNOTATIONS", "IMPORT_STAR", "COPY_FREE_VARS", "MAKE_CELL",
    "KW_NAMES", "PRECALL", "END_ASYNC_FOR", "INTERPRETER_EXIT", "NOT_TAKEN",
    "RETURN_GENERATOR", "ENTER_EXECUTOR",
}
_PURE_PUSH = {
    "LOAD_FAST", "LOAD_FAST_CHECK", "LOAD_FAST_LOAD_FAST", "LOAD_FAST_BORROW",
    "LOAD_FAST_BORROW_LOAD_FAST_BORROW", "LOAD_CONST", "LOAD_SMALL_INT", "LOAD_NAME",
    "LOAD_DEREF", "LOAD_CLOSURE", "LOAD_ASSERTION_ERROR", "LOAD_BUILD_CLASS", "LOAD_LOCALS",
    "LOAD_COMMON_CONSTANT", "LOAD_CONST_IMMORTAL", "LOAD_CONST_MORTAL", "GET_ANEXT",
    "GET_LEN", "MATCH_MAPPING", "MATCH_SEQUENCE", "MATCH_KEYS", "IMPORT_FROM",
    "WITH_EXCEPT_START", "COPY",
}
_MAY_PUSH_NULL = {"PUSH_NULL", "LOAD_GLOBAL", "LOAD_ATTR", "LOAD_METHOD", "LOAD_SUPER_ATTR",
                  "LOAD_SPECIAL", "LOAD_FAST_AND_CLEAR"}
_BUILDS = {"BUILD_LIST": "L", "BUILD_MAP": "D", "BUILD_CONST_KEY_MAP": "D"}
_UNCHECKED_LOCAL_LOADS = {"LOAD_FAST", "LOAD_FAST_LOAD_FAST", "LOAD_FAST_BORROW",
                          "LOAD_FAST_BORROW_LOAD_FAST_BORROW", "STORE_FAST_LOAD_FAST"}
_ENDS_BLOCK = {"RETURN_VALUE", "RETURN_CONST", "RAISE_VARARGS", "RERAISE", "JUMP_FORWARD",
               "JUMP_BACKWARD", "JUMP_BACKWARD_NO_INTERRUPT", "JUMP", "JUMP_NO_INTERRUPT",
               "INTERPRETER_EXIT"}


def _effect(ins, jump):
    import dis

    arg = ins.arg if ins.opcode >= dis.HAVE_ARGUMENT else None
    return dis.stack_effect(ins.opcode, arg, jump=jump)


def _apply(ins, kinds, jump):
    """The stack kinds after ins (a list, changed in place), given the kinds before."""
    name = ins.opname
    e = _effect(ins, jump)

    def pop(n):
        if n > len(kinds):
            raise ValueError("stack underflow in the bytecode analysis")
        if n:
            del kinds[-n:]

    if name == "RETURN_GENERATOR":
        kinds.append("o")  # the value its first send() pushes (effect 0 before 3.13)
    elif name == "FOR_ITER":
        if kinds:
            kinds[-1] = "i" if kinds[-1] in "oi" else kinds[-1]
        if e > 0:
            kinds.extend("o" * e)
        else:
            pop(-e)
    elif name == "GET_ITER":
        pop(1)
        kinds.extend("ix"[: 1 + e])
    elif name == "PUSH_EXC_INFO":
        pop(1)
        kinds.extend("eE")
    elif name in _BUILDS:
        pop(1 - e)
        kinds.append(_BUILDS[name])
    elif name == "SWAP":
        kinds[-1], kinds[-ins.arg] = kinds[-ins.arg], kinds[-1]
    elif name == "COPY":
        kinds.append(kinds[-ins.arg])
    elif name in _MAY_PUSH_NULL:
        consumed = {"PUSH_NULL": 0, "LOAD_GLOBAL": 0, "LOAD_FAST_AND_CLEAR": 0,
                    "LOAD_SUPER_ATTR": 3}.get(name, 1)
        pop(consumed)
        pushed = consumed + e
        if pushed == 1:
            kinds.append("n" if name in ("PUSH_NULL", "LOAD_FAST_AND_CLEAR") else "o")
        elif pushed == 2:
            kinds.extend("on" if _NULL_ON_TOP else "no")
        else:
            kinds.extend("o" * pushed)
    elif name in _NO_RESULT or (name.startswith(_NO_RESULT_PREFIXES)
                                and name != "STORE_FAST_LOAD_FAST"):
        pop(-e) if e <= 0 else kinds.extend("o" * e)
    elif name in _PURE_PUSH:
        if e < 0:
            pop(-e)
        else:
            kinds.extend("o" * e)
    elif e <= 0:
        pop(1 - e)
        kinds.append("o")
    else:
        pop(1)
        kinds.extend("o" * (1 + e))


def _merge(old, new):
    if len(old) != len(new):
        raise ValueError("inconsistent stack depth in the bytecode analysis")
    return "".join(a if a == b or b == "o" else (b if a == "o" else a) for a, b in zip(old, new))


def _jump_target(ins):
    import dis

    target = getattr(ins, "jump_target", None)
    if target is None and (ins.opcode in dis.hasjrel or ins.opcode in dis.hasjabs):
        target = ins.argval
    return None if target is None else target // 2


class _Layout:
    """Per code object: instruction starts, stack kinds at each, the control flow."""

    def __init__(self, code):
        import dis

        self.insts = {}
        order = []
        for ins in dis.get_instructions(code):
            off = ins.offset // 2
            self.insts[off] = ins
            order.append(off)
        self.order = order
        self.next = {a: b for a, b in zip(order, order[1:])}
        self.prev = {b: a for a, b in zip(order, order[1:])}
        self.handlers = _exception_table(code)
        self.kinds = {}
        self._flow()

    def successors(self, off):
        ins = self.insts[off]
        target = _jump_target(ins)
        result = []
        if target is not None:
            result.append((target, True))
        if ins.opname not in _ENDS_BLOCK and off in self.next:
            result.append((self.next[off], False))
        return result

    def _flow(self):
        work = [(0, "")]
        while work:
            off, kinds = work.pop()
            if off not in self.insts:
                raise ValueError("jump into the middle of an instruction")
            old = self.kinds.get(off)
            if old is not None:
                kinds = _merge(old, kinds)
                if kinds == old:
                    continue
            self.kinds[off] = kinds
            for start, end, target, depth, lasti in self.handlers:
                if start <= off < end:
                    if depth > len(kinds):
                        raise ValueError("exception table deeper than the stack")
                    work.append((target, kinds[:depth] + ("l" if lasti else "") + "E"))
            ins = self.insts[off]
            for succ, jump in self.successors(off):
                k = list(kinds)
                _apply(ins, k, jump)
                work.append((succ, "".join(k)))

    def stack_at_resume(self, offset):
        """The kinds of the stack slots below the value a frame receives at offset, which
        must follow an instruction that calls (only there does the stack depth `dis`
        computes agree with the interpreter's: 3.11 counts a call's arguments as popped by
        the PRECALL before it)."""
        kinds = self.kinds.get(offset)
        before = self.prev.get(offset)
        if (kinds is None or not kinds or before is None
                or self.insts[before].opname not in _RETURNS_HERE):
            raise ValueError("resume offset %d is no place a call returns to" % offset)
        return kinds[:-1]

    def unsafe_null_locals(self, offset, null_locals):
        """Locals among null_locals that code from offset on may read without a check."""
        if not null_locals:
            return set()
        bad = set()
        seen = {}
        work = [(offset, frozenset(null_locals))]
        while work:
            off, maybe_null = work.pop()
            old = seen.get(off)
            if old is not None:
                if maybe_null <= old:
                    continue
                maybe_null = maybe_null | old
            seen[off] = maybe_null
            ins = self.insts[off]
            name = ins.opname
            if name in _UNCHECKED_LOCAL_LOADS:
                loaded = _local_args(ins)
                if name == "STORE_FAST_LOAD_FAST":
                    loaded = [] if loaded[1] == loaded[0] else loaded[1:]
                bad.update(var for var in loaded if var in maybe_null)
            after = set(maybe_null)
            if name in ("STORE_FAST", "STORE_FAST_STORE_FAST", "STORE_FAST_LOAD_FAST",
                        "STORE_FAST_MAYBE_NULL"):
                stored = _local_args(ins)
                if name == "STORE_FAST_LOAD_FAST":
                    stored = stored[:1]
                after.difference_update(stored)
            elif name in ("DELETE_FAST", "LOAD_FAST_AND_CLEAR"):
                after.update(_local_args(ins))
            after = frozenset(after)
            for start, end, target, _, _ in self.handlers:
                if start <= off < end:
                    work.append((target, maybe_null | after))
            for succ, _ in self.successors(off):
                work.append((succ, after))
        return bad


# instructions after which a frame may resume with a value: calls, and the instructions
# that call a Python function inline (__getitem__, property getters)
_RETURNS_HERE = {"CALL", "CALL_KW", "CALL_FUNCTION_EX", "BINARY_SUBSCR", "LOAD_ATTR",
                 "BINARY_OP",
                 # the for loop over a generator that was running in the chain
                 "FOR_ITER",
                 # where a generator goes on: its start, and after each yield
                 "RETURN_GENERATOR", "YIELD_VALUE"}

_PAIRED = {"LOAD_FAST_LOAD_FAST", "LOAD_FAST_BORROW_LOAD_FAST_BORROW", "STORE_FAST_LOAD_FAST",
           "STORE_FAST_STORE_FAST"}


def _local_args(ins):
    """Indices of the locals ins names, in the order it uses them."""
    if ins.opname in _PAIRED:
        return [ins.arg >> 4, ins.arg & 15]
    return [ins.arg]


_layouts = {}


def _layout(code):
    layout = _layouts.get(code)
    if layout is None:
        if len(_layouts) > 512:
            _layouts.clear()
        layout = _layouts[code] = _Layout(code)
    return layout


# ---- records ---------------------------------------------------------------------------------


def _slot_fits(value, kind, below=None):
    if value is NULL:
        return kind in "nx"
    if type(value) is TaggedInt:
        return kind in "xl"
    if kind in "on":
        return True
    if kind == "i":
        return hasattr(type(value), "__next__") or type(value) in (list, tuple)
    if kind == "x":
        return False
    if kind == "e":
        return value is None or isinstance(value, BaseException)
    if kind == "E":
        return isinstance(value, BaseException)
    if kind == "l":
        return type(value) is int
    if kind == "L":
        return type(value) is list
    if kind == "D":
        return type(value) is dict
    return False


def check_stack(code, offset, stack):
    """Raise ValueError unless stack fits what the code has on its stack at offset."""
    kinds = _layout(code).stack_at_resume(offset)
    if len(stack) != len(kinds):
        raise ValueError("frame of %r: %d stack items where its code has %d"
                         % (code.co_qualname, len(stack), len(kinds)))
    for i, (value, kind) in enumerate(zip(stack, kinds)):
        if not _slot_fits(value, kind):
            raise ValueError("frame of %r: stack item %d does not fit (%s)"
                             % (code.co_qualname, i, kind))
        if kind == "x":
            seq = stack[i - 1]
            virtual = type(value) is TaggedInt
            if virtual != (type(seq) in (list, tuple)) or (not virtual and value is not NULL):
                raise ValueError("frame of %r: bad iteration state" % code.co_qualname)
            if not virtual and not hasattr(type(seq), "__next__"):
                raise ValueError("frame of %r: bad iterator" % code.co_qualname)
        elif kind == "i" and (i + 1 >= len(kinds) or kinds[i + 1] != "x"):
            if not hasattr(type(value), "__next__"):
                raise ValueError("frame of %r: stack item %d is no iterator"
                                 % (code.co_qualname, i))


def check_locals(code, offset, locals_):
    nulls = {i for i, v in enumerate(locals_) if v is NULL}
    bad = _layout(code).unsafe_null_locals(offset, nulls)
    if bad:
        raise ValueError("frame of %r: local %d is empty where the code reads it unchecked"
                         % (code.co_qualname, min(bad)))


def _handler_exceptions(code, offset, stack):
    """The exceptions in the "previous exception" slots of a frame's stack, bottom first."""
    try:
        kinds = _layout(code).stack_at_resume(offset)
    except ValueError:
        return []
    return [v for v, k in zip(stack, kinds) if k == "e"]


class RunningGenerator:
    """Pickles a generator that was running in a tasklet's chain (a for loop's iterator) as
    the suspended generator it becomes: it goes on after the call it waits in."""

    __slots__ = ("gen", "record", "exc")

    def __init__(self, gen, record, exc):
        self.gen, self.record, self.exc = gen, record, exc

    def __reduce__(self):
        func, _, offset, locals_, stack = self.record
        return (_make_generator, (CACHE_TAG, by_value(func), GEN_SUSPENDED, offset,
                                  _by_value_tuple(locals_), _by_value_tuple(stack), self.exc,
                                  self.gen.__name__, self.gen.__qualname__))


def depth_at(code, offset):
    """The stack depth at an instruction (for a frame that did not store it)."""
    kinds = _layout(code).kinds.get(offset)
    if kinds is None:
        raise ValueError("no instruction at offset %d" % offset)
    return len(kinds)


def frames_state(records, exc_value, start):
    """Final records from pystate's raw ones (outermost first): functions that cannot be
    imported go by value, running generators become RunningGenerator records (the same
    stand-in wherever the generator appears), and each frame gets the exception it handles.
    A tasklet that waits in C code it was started with (no Python frame) gets one record."""
    if not records:
        return [(start, None, -1, None, None, None)]
    running = {id(gen): RunningGenerator(gen, rec, exc)
               for rec, gen, exc in records if gen is not None}

    def value(v):
        stand_in = running.get(id(v))
        return stand_in if stand_in is not None and stand_in.gen is v else by_value(v)

    def values(items):
        return None if items is None else tuple(value(v) for v in items)

    # the exception state each frame starts from: the tasklet's, or inside a running
    # generator that generator's own
    bases, base = [], exc_value
    for _, gen, exc in records:
        if gen is not None:
            base = exc
        bases.append(base)
    out = []
    handled = None
    for i in range(len(records) - 1, -1, -1):
        (func, code, offset, locals_, stack), gen, _ = records[i]
        if i == len(records) - 1 or records[i + 1][1] is not None:
            handled = bases[i]  # the innermost frame of its exception state
        if gen is not None:
            out.append([running[id(gen)], None, -2, None, None, None])
        elif type(func) is not types.FunctionType:
            # a frame without a function: 3.13+'s shim that makes a class call return the
            # new object once __init__ returned None (its stack: the object), or else
            # something we cannot rebuild
            if code.co_name == "__init__" and offset >= 0 and stack is not None and \
                    len(stack) == 1:
                out.append([None, None, -3, None, values(stack), None])
            else:
                out.append([code.co_qualname, None, -1, None, None, None])
            continue
        else:
            out.append([by_value(func), None if func.__code__ is code else code, offset,
                        values(locals_), values(stack), handled])
        if offset >= 0:
            prev = _handler_exceptions(code, offset, stack)
            if prev:
                handled = prev[0]
    out.reverse()
    _wrappers.clear()
    for rec in out:
        if rec[5] is not None and not isinstance(rec[5], BaseException):
            rec[5] = None
    return [tuple(r) for r in out]


def check_frames(frames):
    """Validate a pickled frames tuple (tag, record, ...); return the records as
    (function, offset, locals, stack, exception, FOR_ITER offset or 0): offset -1 for a
    frame with C state, -2 for a generator (the function item is then the generator), -3
    for the return of a class call whose __init__ runs (the stack holds the new object)."""
    if type(frames) is not tuple or not frames or type(frames[0]) is not str:
        raise ValueError("bad tasklet frames")
    if frames[0] != CACHE_TAG:
        raise ValueError("tasklet pickled by %s cannot be restored by %s (frames are per "
                         "Python version)" % (frames[0], CACHE_TAG))
    result = []
    for rec in frames[1:]:
        if type(rec) is not tuple or len(rec) != 6:
            raise ValueError("bad frame record")
        func, code, offset, locals_, stack, exc = rec
        if type(func) is FunctionByValue:
            func = func.func
        if offset == -1 and type(func) is not types.FunctionType:
            result.append((func, -1, None, None, None, 0))  # C code: named in the error only
            continue
        if offset == -3:
            if type(stack) is not tuple or len(stack) != 1:
                raise ValueError("bad __init__ record")
            result.append((None, -3, None, stack, None, 0))
            continue
        if offset == -2:
            if type(func) is not types.GeneratorType or func.gi_running or \
                    func.gi_frame is None or func.gi_frame.f_lasti < 0 or \
                    _generator_state(func) != "GEN_SUSPENDED":
                raise ValueError("a running generator's record is not a suspended generator")
            result.append((func, -2, None, None, None, 0))
            continue
        if type(func) is not types.FunctionType:
            raise ValueError("a frame's function is not a function")
        if code is not None and code != func.__code__:
            raise ValueError("a frame's code is not its function's code")
        code = func.__code__
        if type(offset) is not int:
            raise ValueError("bad resume offset")
        if offset == -1:
            result.append((func, -1, None, None, None, 0))
            continue
        if type(locals_) is not tuple or type(stack) is not tuple:
            raise ValueError("bad frame record")
        locals_, stack = _unwrapped(locals_), _unwrapped(stack)
        check_stack(code, offset, stack)
        check_locals(code, offset, locals_)
        if exc is not None and not isinstance(exc, BaseException):
            raise ValueError("a frame's handled exception is not an exception")
        result.append((func, offset, locals_, stack, exc, _for_iter_before(code, offset)))
    return result


def _generator_state(gen):
    import inspect

    return inspect.getgeneratorstate(gen)


def _for_iter_before(code, offset):
    """The FOR_ITER the frame resumes after, if any, and if running it again (with the
    same stack, its iterator on top) is a valid place to go on: else 0."""
    layout = _layout(code)
    before = layout.prev.get(offset)
    if before is None or layout.insts[before].opname != "FOR_ITER":
        return 0
    kinds = layout.kinds.get(before)
    return before if kinds is not None and kinds == layout.kinds[offset][:-1] else 0
