"""Channels: rendezvous, wait queue, preference, schedule_all, closing, iteration, exceptions."""
import gc
import sys
import traceback
import weakref

import pytest

import stackless


def spawn(fn, *args):
    return stackless.tasklet(fn)(*args)


class TestRendezvous:
    def test_send_blocks_until_a_receiver_comes(self):
        ch = stackless.channel()
        log = []
        spawn(lambda: (log.append("sending"), ch.send("v"), log.append("sent")))
        stackless.run()
        assert log == ["sending"] and ch.balance == 1
        assert ch.receive() == "v"
        assert ch.balance == 0
        stackless.run()
        assert log == ["sending", "sent"]

    def test_receive_blocks_until_a_sender_comes(self):
        ch = stackless.channel()
        got = []
        r = spawn(lambda: got.append(ch.receive()))
        stackless.run()
        assert r.blocked and ch.balance == -1 and ch.queue is r
        assert ch.send(("any", "value")) is None
        assert got == [("any", "value")] and not r.alive

    @pytest.mark.parametrize("value", [None, 0, "s", (1, 2), object()])
    def test_values_of_any_type(self, value):
        ch = stackless.channel()
        spawn(ch.send, value)
        assert ch.receive() is value
        stackless.run()

    def test_waiters_are_served_fifo_and_queue_links(self):
        ch = stackless.channel()
        got = []
        ts = [spawn(lambda n=n: got.append((n, ch.receive()))) for n in range(4)]
        stackless.run()
        assert ch.balance == -4 and ch.queue is ts[0]
        assert [ts[0].prev, ts[0].next, ts[3].next] == [None, ts[1], None]
        assert all(t.blocked and t.scheduled and not t.paused for t in ts)
        for v in "abcd":
            ch.send(v)
        assert got == [(0, "a"), (1, "b"), (2, "c"), (3, "d")]
        assert ch.queue is None

    def test_tempval_swap(self):
        ch = stackless.channel()
        results = []
        s = spawn(lambda: results.append(ch.send("payload")))
        stackless.run()
        assert s.tempval == "payload"
        s.tempval = "replaced"
        assert ch.receive() == "replaced"
        stackless.run()
        assert results == [None]
        r = spawn(lambda: results.append(ch.receive()))
        stackless.run()
        r.tempval = "receiver's own"
        assert ch.send("x") == "receiver's own"
        assert results == [None, "x"]


def scenario(pref, receiver_first, schedule_all=0):
    ch = stackless.channel()
    ch.preference = pref
    ch.schedule_all = schedule_all
    log = []

    def R():
        log.append("R<")
        log.append("R:" + ch.receive())

    def S():
        log.append("S>")
        ch.send("v")
        log.append("S.")

    for fn in ((R, S) if receiver_first else (S, R)) + (lambda: log.append("X"),):
        spawn(fn)
    stackless.run()
    return " ".join(log)


class TestPreference:
    @pytest.mark.parametrize("pref,receiver_first,expected", [
        (-1, True, "R< S> R:v X S."),
        (-1, False, "S> R< R:v X S."),
        (0, True, "R< S> S. X R:v"),
        (0, False, "S> R< R:v X S."),
        (1, True, "R< S> S. X R:v"),
        (1, False, "S> R< S. X R:v"),
    ])
    def test_who_runs_after_a_hand_over(self, pref, receiver_first, expected):
        assert scenario(pref, receiver_first) == expected

    @pytest.mark.parametrize("pref", [-1, 0, 1])
    def test_schedule_all_runs_others_first(self, pref):
        assert scenario(pref, True, 1) == "R< S> X R:v S."
        assert scenario(pref, False, 1) == "S> R< X S. R:v"

    def test_preference_is_stored_as_sign(self):
        ch = stackless.channel()
        for v, sign in ((5, 1), (-7, -1), (0, 0), (True, 1), (10 ** 30, 1), (-(10 ** 30), -1)):
            ch.preference = v
            assert ch.preference == sign
        ch.schedule_all = 9
        assert ch.schedule_all == 1
        with pytest.raises(TypeError, match="preference must be set to an integer"):
            ch.preference = 1.0
        with pytest.raises(TypeError, match="preference must be set to a bool or integer"):
            ch.schedule_all = "x"
        with pytest.raises(TypeError):
            del ch.preference


class TestClosing:
    def test_close_wakes_nobody_and_drains(self):
        ch = stackless.channel()
        got = []
        for _ in range(2):
            spawn(lambda: got.append(ch.receive()))
        stackless.run()
        assert ch.close() is None
        assert ch.closing and not ch.closed and ch.balance == -2
        stackless.run()
        assert got == []
        ch.send(1)
        ch.send(2)
        assert got == [1, 2] and ch.closed
        for op in (lambda: ch.send(3), ch.receive):
            with pytest.raises(ValueError, match="Send/receive operation on a closed channel"):
                op()
        ch.open()
        assert not ch.closing

    def test_iteration_stops_when_closing_and_no_sender(self):
        ch = stackless.channel()
        for x in "abc":
            spawn(ch.send, x)
        spawn(ch.close)
        stackless.run()
        assert list(ch) == ["a", "b", "c"]
        assert ch.closed
        with pytest.raises(StopIteration):
            next(ch)
        stackless.run()  # the senders, woken by the hand-overs, finish

    def test_iteration_ends_on_a_sent_stop_iteration(self):
        ch = stackless.channel()
        got = []
        spawn(lambda: got.extend(ch))
        stackless.run()
        ch.send(1)
        ch.send_exception(StopIteration)
        assert got == [1]

    def test_iter_is_identity(self):
        ch = stackless.channel()
        assert iter(ch) is ch


class TestSequencesAndExceptions:
    def test_send_sequence_counts_and_each_item_is_an_action(self):
        ch = stackless.channel()
        got = []

        def consumer():
            while True:
                got.append(ch.receive())

        c = spawn(consumer)
        stackless.run()
        assert ch.send_sequence(range(4)) == 4
        assert ch.send_sequence([]) == 0
        assert got == [0, 1, 2, 3]

        def bad():
            yield "ok"
            raise KeyError("from iterator")

        with pytest.raises(KeyError):
            ch.send_sequence(bad())
        assert got[-1] == "ok"
        c.kill()
        assert ch.balance == 0

    def test_send_exception_raises_in_the_receiver(self):
        ch = stackless.channel()
        caught = []

        def receiver():
            try:
                ch.receive()
            except Exception as e:
                caught.append((type(e), e.args, [f.name for f in traceback.extract_tb(e.__traceback__)]))

        spawn(receiver)
        stackless.run()
        assert ch.send_exception(ValueError, 1, 2) is None
        assert caught == [(ValueError, (1, 2), ["receiver"])]

    def test_send_throw_keeps_the_traceback(self):
        def origin():
            try:
                raise IndexError("here")
            except IndexError:
                return sys.exc_info()

        ch = stackless.channel()
        caught = []

        def receiver():
            try:
                ch.receive()
            except IndexError as e:
                caught.append([f.name for f in traceback.extract_tb(e.__traceback__)])

        spawn(receiver)
        stackless.run()
        assert ch.send_throw(*origin()) is None
        assert caught == [["receiver", "origin"]]

    def test_blocked_exception_sender(self):
        ch = stackless.channel()
        spawn(lambda: ch.send_exception(TypeError, "late"))
        stackless.run()
        assert ch.balance == 1
        with pytest.raises(TypeError, match="late"):
            ch.receive()
        stackless.run()

    def test_bomb_sent_as_value_explodes(self):
        ch = stackless.channel()
        spawn(ch.send, stackless.bomb(OSError, OSError("boom")))
        with pytest.raises(OSError, match="boom"):
            ch.receive()
        stackless.run()


class TestCallbacks:
    def test_channel_callback_arguments(self):
        ch = stackless.channel()
        log = []

        def cb(c, t, sending, willblock):
            log.append((c is ch, t is stackless.current, sending, willblock,
                        t.tempval if sending else None))

        r = spawn(ch.receive)
        assert stackless.set_channel_callback(cb) is None
        try:
            stackless.run()
            ch.send("x")
        finally:
            assert stackless.set_channel_callback(None) is cb
        assert log == [(True, True, 0, 1, None), (True, True, 1, 0, "x")]
        assert not r.alive

    def test_channel_actions_inside_callbacks_are_refused(self):
        other = stackless.channel()
        errors = []

        def cb(c, t, sending, willblock):
            try:
                other.send(1)
            except RuntimeError as e:
                errors.append(str(e))

        stackless.set_channel_callback(cb)
        try:
            spawn(stackless.channel().receive).kill()
            ch = stackless.channel()
            spawn(ch.send, 1)
            ch.receive()
            stackless.run()
        finally:
            stackless.set_channel_callback(None)
        assert errors and set(errors) == {"Recursive channel call due to callbacks!"}

    def test_callback_errors_are_reported_and_ignored(self):
        seen = []

        def hook(unraisable):
            seen.append(unraisable.exc_type)

        def cb(*args):
            raise ZeroDivisionError

        old = sys.unraisablehook
        sys.unraisablehook = hook
        stackless.set_channel_callback(cb)
        try:
            ch = stackless.channel()
            spawn(ch.send, 5)
            assert ch.receive() == 5
            stackless.run()
        finally:
            stackless.set_channel_callback(None)
            sys.unraisablehook = old
        assert seen and set(seen) == {ZeroDivisionError}


class TestLifetime:
    def test_channel_subclass_and_weakref(self):
        class Named(stackless.channel):
            def __init__(self, name, extra=None):
                self.name = name

        ch = Named("n", extra=1)
        r = weakref.ref(ch)
        assert ch.name == "n" and ch.balance == 0 and ch.preference == -1
        del ch
        gc.collect()
        assert r() is None
        assert stackless.channel(1, 2, x=3).balance == 0
        assert not hasattr(stackless.channel(), "__dict__")

    def test_unreachable_blocked_tasklet_and_channel_are_collected(self):
        log = []

        def waiter(ch):
            try:
                ch.receive()
            finally:
                log.append("finally")

        ch = stackless.channel()
        t = spawn(waiter, ch)
        stackless.run()
        rt, rc = weakref.ref(t), weakref.ref(ch)
        del t, ch
        gc.collect()
        assert log == ["finally"]
        assert rt() is None and rc() is None
