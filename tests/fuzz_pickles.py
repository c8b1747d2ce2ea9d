"""Mutate pickles of started tasklets and load them: each must raise or run, never crash.

    python fuzz_pickles.py CASES SEED

Mutations: flipped and truncated bytes of the pickle, and changes to the frame records
(moved resume offsets, swapped, dropped, added or replaced stack items and locals, records
dropped or reordered). A case that loads is run to its end (sending it values while it
waits). The last line is a summary; the exit status is 0 unless the process crashed (a
crash is what this looks for: the parent sees a signal instead).
"""
import faulthandler
import os
import pickle
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import stackless  # noqa: E402
from stackless import _pickling  # noqa: E402

import pickle_programs as programs  # noqa: E402


def base_tasklets():
    """(name, tasklet) pairs blocked at interesting places."""
    result = []
    for case, (func, args, values) in sorted(programs.CASES.items()):
        programs.ch = stackless.channel()  # each case waits on a channel of its own
        t = stackless.tasklet(func)(*args)
        stackless.run()
        for v in values[: programs.SPLIT[case]]:
            programs.ch.send(v)
        result.append((case, t))
    programs.ch = stackless.channel()  # what restored copies look up when they go on
    return result


REPLACEMENTS = [_pickling.NULL, 0, -1, 2 ** 70, None, "s", [], [1], (), {}, object(),
                iter([1]), ValueError("x"), _pickling.TaggedInt(0), _pickling.TaggedInt(3)]


def mutate_frames(rng, frames):
    tag, records = frames[0], [list(r) for r in frames[1:]]
    if not records:
        return frames
    kind = rng.randrange(9)
    i = rng.randrange(len(records))
    rec = records[i]
    if kind == 0:
        rec[2] = rec[2] + rng.choice([-3, -2, -1, 1, 2, 3, 4, 6, 8, 20])
    elif kind == 1:
        rec[2] = rng.randrange(-2, 400)
    elif kind == 2 and rec[4]:
        stack = list(rec[4])
        a, b = rng.randrange(len(stack)), rng.randrange(len(stack))
        stack[a], stack[b] = stack[b], stack[a]
        rec[4] = tuple(stack)
    elif kind == 3 and rec[4] is not None:
        stack = list(rec[4])
        if stack and rng.random() < 0.5:
            del stack[rng.randrange(len(stack))]
        else:
            stack.insert(rng.randrange(len(stack) + 1), rng.choice(REPLACEMENTS))
        rec[4] = tuple(stack)
    elif kind == 4 and rec[4]:
        stack = list(rec[4])
        stack[rng.randrange(len(stack))] = rng.choice(REPLACEMENTS)
        rec[4] = tuple(stack)
    elif kind == 5 and rec[3]:
        locals_ = list(rec[3])
        locals_[rng.randrange(len(locals_))] = rng.choice(REPLACEMENTS)
        rec[3] = tuple(locals_)
    elif kind == 6 and len(records) > 1:
        del records[i]
    elif kind == 7 and len(records) > 1:
        j = rng.randrange(len(records))
        records[i], records[j] = records[j], records[i]
    else:
        rec[5] = rng.choice(REPLACEMENTS)
    return (tag,) + tuple(tuple(r) for r in records)


def mutate_bytes(rng, data):
    data = bytearray(data)
    if rng.random() < 0.2:
        return bytes(data[: rng.randrange(len(data))])
    for _ in range(rng.randint(1, 3)):
        data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data)


def run_to_end(t):
    for _ in range(60):
        if not t.alive:
            return
        try:
            if t.paused:
                t.insert()
            stackless.run()
            if t.alive and programs.ch.balance < 0:
                programs.ch.send(1)
        except Exception:
            pass
    if t.alive:
        try:
            t.kill()
        except Exception:
            pass


def limit_memory():
    """A flipped length in the pickle stream makes the unpickler allocate gigabytes: cap the
    address space so that this fails fast (under AddressSanitizer its options do that, as
    its shadow memory needs a huge address space)."""
    if "asan" not in os.environ.get("LD_PRELOAD", ""):
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))


def main(cases, seed):
    limit_memory()
    faulthandler.enable()
    faulthandler.dump_traceback_later(max(60, cases // 10), exit=True)
    rng = random.Random(seed)
    bases = base_tasklets()
    states = [(name, t.__reduce__()) for name, t in bases]
    blobs = [(name, pickle.dumps(t)) for name, t in bases]
    for _, t in bases:
        t.kill()
    refused = ran = 0
    for n in range(cases):
        try:
            if n % 3 == 0:
                name, data = blobs[rng.randrange(len(blobs))]
                t = pickle.loads(mutate_bytes(rng, data))
            else:
                name, (cls, args, state) = states[rng.randrange(len(states))]
                state = list(state)
                state[3] = mutate_frames(rng, state[3])
                t = cls(*args)
                t.__setstate__(tuple(state))
        except Exception:
            refused += 1
            continue
        if not isinstance(t, stackless.tasklet):
            refused += 1
            continue
        ran += 1
        run_to_end(t)
    print("fuzz: %d cases, %d refused, %d ran (seed %d)" % (cases, refused, ran, seed))


if __name__ == "__main__":
    programs.say = lambda *a: None
    main(int(sys.argv[1]), int(sys.argv[2]))
