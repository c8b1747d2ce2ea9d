"""Tasklet bodies for the pickling tests, importable by name in a fresh process.

Run as a program: `python pickle_programs.py dump CASE FILE` runs CASE until its tasklet
blocks, pickles the tasklet with its channel into FILE, then lets the original finish;
`python pickle_programs.py load CASE FILE` restores them and finishes the copy. Both print
what the tasklet prints after the pickling point, so the two outputs must be equal.
"""
import pickle
import sys

import stackless

ch = stackless.channel()
out = []


def say(*args):
    out.append(" ".join(str(a) for a in args))


class Resource:
    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        say("exit", kind.__name__ if kind else None)
        return False


def handlers(n):
    """try/except/finally/with around the blocking call, a closure and a lambda."""
    total = 0
    k = 10
    adder = lambda x: x + k  # noqa: E731
    with Resource():
        for i in range(n):
            try:
                v = ch.receive()
                if v == "boom":
                    raise KeyError(v)
                total = adder(total + v)
            except KeyError as e:
                say("handled", e, sys.exc_info()[0].__name__)
                w = ch.receive()
                say("in except", w, sys.exc_info()[0].__name__)
            finally:
                say("finally", i)
            say("i", i, "total", total)
    say("handled after", sys.exc_info()[0])
    say("squares", [x * x for x in (total, ch.receive())])
    return total


def recurse(depth, level=1):
    if level < depth:
        r = recurse(depth, level + 1) + level
    else:
        r = ch.receive()
    say("level", level, r)
    return r


def star_call(*args, **kwargs):
    return ch.receive() + sum(args) + sum(kwargs.values())


def calls():
    """Frames entered with *args/**kwargs, keyword calls, a pending outer call's stack."""
    say("star", star_call(*[1, 2], **{"z": 3}))
    say("kw", max(star_call(z=4), star_call(5, y=6), key=abs))
    d = {"a": [ch.receive() for _ in range(2)]}
    say("dict", d, len(str(d)) + ch.receive())


def nested_closure():
    counter = [0]

    def bump(step):
        counter[0] += step + ch.receive()
        say("counter", counter)
        return counter[0]

    say("bump", bump(1), bump(2))
    return counter


def numbers(n):
    for i in range(n):
        yield i * ch.receive()
    say("numbers done")


def generator_loop(n):
    """Waits inside a generator its for loop runs (the generator is in the chain)."""
    total = 0
    for v in numbers(n):
        total += v
        say("got", v, total)
    return total


def channel_loop():
    """Waits in `for x in channel` (the channel's __next__, called by FOR_ITER)."""
    seen = []
    for x in ch:
        seen.append(x)
        say("seen", seen)
    say("loop over", seen)


CASES = {
    "handlers": (handlers, (3,), [1, "boom", "w", 2, 3, 4]),
    "recurse": (recurse, (6,), [100]),
    "calls": (calls, (), [10, 20, 30, 40, 50, 60]),
    "nested_closure": (nested_closure, (), [5, 6]),
    "generator_loop": (generator_loop, (4,), [1, 2, 3, 4]),
    "channel_loop": (channel_loop, (), [1, 2, 3]),
}
# how many values the original receives before it is pickled
SPLIT = {"handlers": 2, "recurse": 0, "calls": 2, "nested_closure": 1, "generator_loop": 2,
         "channel_loop": 1}


def feed(values, end=False):
    for v in values:
        if ch.balance < 0:
            ch.send(v)
    if end and ch.balance < 0:
        ch.send_exception(StopIteration)  # ends a `for x in ch` loop


def main(mode, case, path):
    func, args, values = CASES[case]
    before, after = values[: SPLIT[case]], values[SPLIT[case]:]
    if mode == "dump":
        t = stackless.tasklet(func)(*args)
        stackless.run()
        feed(before)
        del out[:]
        with open(path, "wb") as f:
            pickle.dump((t, ch), f)
        feed(after, end=True)
    else:
        with open(path, "rb") as f:
            t, restored = pickle.load(f)
        globals()["ch"] = restored  # the functions look their channel up by name
        feed(after, end=True)
    stackless.run()
    print("\n".join(out))
    print("alive", t.alive)


if __name__ == "__main__":
    main(*sys.argv[1:4])
