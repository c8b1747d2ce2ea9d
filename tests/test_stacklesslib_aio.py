"""stacklesslib.aio: the scheduler inside a running asyncio loop, both ways."""
import asyncio
import time

import pytest

import stackless
from stacklesslib import aio


def test_tasklets_wait_for_coroutines_concurrently():
    ch = stackless.channel()

    def worker(k):
        ch.send(aio.call(asyncio.sleep(0.2, k)))

    def main():
        t0 = time.monotonic()
        for k in range(3):
            aio.spawn(worker, k)
        got = sorted(ch.receive() for _ in range(3))
        return got, time.monotonic() - t0

    got, took = aio.run(main)
    assert got == [0, 1, 2]
    assert 0.2 <= took < 0.5  # the three waits overlapped (one after the other: 0.6 s)


def test_asyncio_libraries_from_tasklet_code():
    async def handle(reader, writer):
        line = await reader.readline()
        writer.write(line.upper())
        await writer.drain()
        writer.close()

    def main():
        server = aio.call(asyncio.start_server(handle, "127.0.0.1", 0))
        port = server.sockets[0].getsockname()[1]
        reader, writer = aio.call(asyncio.open_connection("127.0.0.1", port))
        writer.write(b"hello\n")
        reply = aio.call(reader.readline())
        writer.close()
        aio.call(writer.wait_closed())
        server.close()
        aio.call(server.wait_closed())
        return reply

    assert aio.run(main) == b"HELLO\n"


def test_coroutines_use_channels_and_tasklets():
    async def main():
        ch = stackless.channel()
        aio.spawn(ch.send, "from a tasklet")
        got = await aio.receive(ch)
        doubled = await aio.run_tasklet(lambda x: x * 2, 21)
        back = stackless.channel()
        aio.spawn(lambda: back.send(back.receive() + "!"))
        await aio.send(back, "echo")
        echoed = await aio.receive(back)
        with pytest.raises(ZeroDivisionError):
            await aio.run_tasklet(lambda: 1 / 0)
        return got, doubled, echoed

    assert asyncio.run(main()) == ("from a tasklet", 42, "echo!")


def test_cancelling_the_coroutine_kills_the_tasklet():
    log = []

    def stuck():
        try:
            stackless.channel().receive()
        except stackless.TaskletExit:
            log.append("TaskletExit")
            raise

    async def main():
        task = asyncio.ensure_future(aio.run_tasklet(stuck))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return stackless.getruncount()

    assert asyncio.run(main()) == 1
    assert log == ["TaskletExit"]


def test_killing_the_tasklet_cancels_the_coroutine_and_back():
    log = []

    async def long():
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            log.append("task cancelled")
            raise

    def waiter():
        aio.call(long())

    def cancelled_waiter():
        try:
            aio.call(asyncio.sleep(10))
        except asyncio.CancelledError:
            log.append("CancelledError in the tasklet")

    def main():
        t = aio.spawn(waiter)
        aio.call(asyncio.sleep(0.01))
        t.kill()
        aio.call(asyncio.sleep(0.01))  # the cancellation reaches the task
        t2 = aio.spawn(cancelled_waiter)
        aio.call(asyncio.sleep(0.01))
        for task in asyncio.all_tasks():
            if task.get_coro().cr_code.co_name == "sleep":
                task.cancel()
        aio.call(asyncio.sleep(0.01))
        return t.alive, t2.alive

    assert aio.run(main) == (False, False)
    assert log == ["task cancelled", "CancelledError in the tasklet"]


def test_call_outside_a_tasklet_is_refused():
    async def main():
        coro = asyncio.sleep(0)
        with pytest.raises(RuntimeError, match="tasklet"):
            aio.call(coro)
        await coro

    asyncio.run(main())
