"""A simulation of actor tasklets talking over channels, for the checkpoint demo.

Each actor owns an inbox channel and a private state. Every step a coordinator sends each
actor the step number and the state its left neighbour reported in the previous step; the
actor mixes both into its state and reports it on the group's outbox. Between steps every
actor waits in `inbox.receive()`: that is when the world is checkpointed.

Actors are split into groups that share nothing but the coordinator, so a group can be moved
to another process or machine and go on there; the final states are the same wherever the
steps ran.
"""
import hashlib

import stackless

MODULUS = 1_000_003


def actor(index, inbox, outbox):
    state = index
    while True:
        step, left = inbox.receive()
        if step is None:
            return state
        state = (state * 31 + left * 7 + step + index) % MODULUS
        outbox.send((index, state))


class Group:
    """Actors first..first+size-1 (a ring of their own), their channels and last reports."""

    def __init__(self, first, size):
        self.first = first
        self.inboxes = [stackless.channel() for _ in range(size)]
        self.outbox = stackless.channel()
        self.outbox.preference = 1  # a reporting actor goes on to wait in its inbox at once
        self.reports = list(range(first, first + size))
        self.tasklets = [stackless.tasklet(actor)(first + i, self.inboxes[i], self.outbox)
                         for i in range(size)]
        stackless.run()  # every actor now waits in its inbox

    def channels(self):
        return self.inboxes + [self.outbox]

    def step(self, step):
        size = len(self.inboxes)
        for i, inbox in enumerate(self.inboxes):
            inbox.send((step, self.reports[i - 1] if i else self.reports[size - 1]))
        reports = self.reports
        for _ in range(size):
            index, state = self.outbox.receive()
            reports[index - self.first] = state

    def digest(self):
        return hashlib.sha256(repr(self.reports).encode()).hexdigest()[:16]


def run_steps(group, start, stop, every=0, save=None):
    """Steps start..stop-1; after every `every` steps call save(group, next_step)."""
    for step in range(start, stop):
        group.step(step)
        if every and save and (step + 1) % every == 0 and step + 1 < stop:
            save(group, step + 1)
    return group


def pack(group):
    """What a checkpoint of a group holds besides its tasklets and channels."""
    return {"first": group.first, "reports": group.reports}


def unpack(world):
    """A Group around tasklets and channels restored by stackless.migrate."""
    group = Group.__new__(Group)
    group.first = world.extra["first"]
    group.reports = world.extra["reports"]
    group.inboxes = world.channels[:-1]
    group.outbox = world.channels[-1]
    group.tasklets = world.tasklets
    return group


def continue_shipped(world):
    """Run in another process by stackless.migrate: finish the steps, report the digest."""
    group = unpack(world)
    run_steps(group, world.extra["step"], world.extra["stop"])
    for inbox in group.inboxes:
        inbox.send((None, None))  # the actors end here: nothing stays blocked in the worker
    return group.reports
