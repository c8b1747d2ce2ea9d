"""stacklesslib: the companion library of Stackless Python, for stock CPython.

The module and function names are those of the published stacklesslib (see the `stackless`
spec, section 12), so programs written against it run unchanged:

* `stacklesslib.main`: the main loop (`mainloop.run()`, `stop()`, `loop()`, pumps,
  `interrupt_wait()`) and its `event_queue` (`call_soon`, `call_later`, `call_at`,
  `call_repeatedly`, `call_later_threadsafe`, handles with `cancel()`);
* `stacklesslib.app`: `sleep()`, which blocks only the calling tasklet;
* `stacklesslib.locks`: `Lock`, `RLock`, `Semaphore`, `BoundedSemaphore`, `Condition`,
  `Event`, `Barrier`, `ValueEvent`, blocking tasklets, not threads;
* `stacklesslib.util`: `timeout`, `channel_wait`, `tasklet_call`, `QueueChannel`, `local`;
* `stacklesslib.base` and `stacklesslib.errors`.

Blocking with a timeout needs the main loop to run (it fires the timers): a program calls
`stacklesslib.main.mainloop.run()` in its main tasklet, or `stacklesslib.main.run(func)`.
"""
