"""asyncio and tasklets, both ways, in one thread.

The stackless scheduler runs inside a running asyncio event loop: whenever tasklets may have
become runnable, a loop callback runs them (`stackless.run()`) until they all wait again.

From tasklet code:
    result = aio.call(coro)           # only this tasklet waits; asyncio libraries work
From a coroutine:
    value = await aio.receive(ch)     # a channel receive
    await aio.send(ch, value)
    result = await aio.run_tasklet(func, *args)   # func runs in a tasklet of its own
Entry point:
    aio.run(func, *args)              # asyncio.run() with func in a tasklet

Cancellation maps both ways: killing a tasklet waiting in `call()` cancels the asyncio task
(and a cancelled task raises `asyncio.CancelledError` in the tasklet); cancelling a coroutine
waiting in `receive()`, `send()` or `run_tasklet()` kills the tasklet doing the work with
`TaskletExit`.
"""
import asyncio

import stackless

_pending = set()  # loops with a scheduler run queued


def _run_tasklets(loop):
    _pending.discard(loop)
    stackless.run()


def pump_soon(loop=None):
    """Make the loop run the runnable tasklets soon (once, however often it is asked)."""
    loop = loop or asyncio.get_running_loop()
    if loop not in _pending:
        _pending.add(loop)
        loop.call_soon(_run_tasklets, loop)


def spawn(func, *args, **kwargs):
    """A new tasklet for func, run by the loop soon."""
    t = stackless.tasklet(func)(*args, **kwargs)
    pump_soon()
    return t


def call(awaitable):
    """From a tasklet: run awaitable on the running asyncio loop; only this tasklet waits.
    Returns its result or raises its exception (asyncio.CancelledError if it was
    cancelled). Killing the waiting tasklet cancels it."""
    loop = asyncio.get_running_loop()
    if stackless.getcurrent() is stackless.getmain():
        raise RuntimeError("aio.call() waits in a tasklet, not in the tasklet running the loop")
    task = asyncio.ensure_future(awaitable, loop=loop)
    ch = stackless.channel()
    ch.preference = 1

    def done(finished):
        if ch.balance < 0:
            ch.send(finished)
            pump_soon(loop)

    task.add_done_callback(done)
    try:
        ch.receive()
    except BaseException:
        task.remove_done_callback(done)
        task.cancel()
        raise
    return task.result()


async def run_tasklet(func, *args, **kwargs):
    """From a coroutine: run func(*args, **kwargs) in a tasklet and await its result.
    Cancelling the awaiting coroutine kills the tasklet."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def body():
        try:
            value = func(*args, **kwargs)
        except stackless.TaskletExit:
            if not future.done():
                future.cancel()
            raise
        except BaseException as e:  # noqa: B902 (handed to the awaiting coroutine)
            if not future.done():
                future.set_exception(e)
        else:
            if not future.done():
                future.set_result(value)

    t = stackless.tasklet(body)()
    pump_soon(loop)
    try:
        return await future
    except asyncio.CancelledError:
        if t.alive:
            t.kill()
        raise


async def receive(channel):
    """From a coroutine: channel.receive() without blocking the loop."""
    return await run_tasklet(channel.receive)


async def send(channel, value):
    """From a coroutine: channel.send(value) without blocking the loop."""
    return await run_tasklet(channel.send, value)


def run(func, *args, **kwargs):
    """asyncio.run() with func(*args, **kwargs) as a tasklet; returns its result."""
    return asyncio.run(run_tasklet(func, *args, **kwargs))
