"""What every runtime's workloads share: sizes, RSS, the answers they must reach."""
import gc
import os
import time

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes():
    """Resident set size of this process now (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def settle():
    """Collect garbage so that RSS readings before and after compare like with like."""
    gc.collect()
    gc.collect()


class Clock:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


def check(condition, what):
    if not condition:
        raise AssertionError("wrong answer: " + what)


# ---- the reference answers --------------------------------------------------------------

def nth_prime(n):
    """The n-th prime (n >= 1), by trial division over the primes found so far."""
    primes = []
    x = 1
    while len(primes) < n:
        x += 1
        if all(x % p for p in primes if p * p <= x):
            primes.append(x)
    return primes[-1], primes


def sieve_transfers(count):
    """How many channel transfers the concurrent prime sieve makes to find `count` primes:
    each number from 2 to the last prime enters the first channel, passes each filter whose
    prime does not divide it, and reaches the next filter (or, if prime, the consumer)."""
    last, primes = nth_prime(count)
    transfers = 0
    for x in range(2, last + 1):
        transfers += 1  # generator -> first channel
        for p in primes:
            if p >= x:
                break
            if x % p == 0:
                break
            transfers += 1  # passed filter p, sent on
    return transfers, last


def factorial_quotient():
    """factorial(1000) // factorial(998), and the number of task calls computing both."""
    return 1000 * 999, 1000 + 998
