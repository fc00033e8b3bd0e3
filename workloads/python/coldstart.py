#!/usr/bin/env python3
"""How much slower the interpreter runs right after a thread has been away from its core:
times one small pure-Python step (a selector's bookkeeping and a dispatch, no system call)
straight after sleeping each of a few durations, and prints the medians.

On a machine where a core's private caches do not survive a few milliseconds of the
thread's absence (deep idle states flush them; a hypervisor runs other work there), the
first microseconds of bytecode after every wait run several times slower than warm ones,
and an I/O thread's GIL-held work between socket calls grows with how long it waited for
the GIL. gilbench's model does its GIL-held work as SHA-256 over a small buffer, which
hardly slows down: see docs/calibration.md.

    python3 coldstart.py [--sleeps-ms 0,1,5,20] [--rounds 200] [--cpu N]

Stdlib only.
"""

import argparse
import math
import os
import statistics
import sys
import time


class Key:
    def __init__(self, fd):
        self.fd = fd
        self.events = 1
        self.data = "conn-%d" % fd


KEYS = {fd: Key(fd) for fd in range(3, 11)}
NAMES = {fd: str(fd) for fd in range(64)}


def step():
    """What a selectors-based loop does in Python between a poll's return and the next
    socket call: turn (fd, event) pairs into ready keys, then dispatch on each."""
    ready = []
    for fd, event in ((4, 1), (7, 1)):
        events = 0
        if event & ~4:
            events |= 2
        if event & ~1:
            events |= 1
        key = KEYS.get(fd)
        if key:
            ready.append((key, events & key.events))
    out = None
    for key, _mask in ready:
        out = NAMES[key.fd] + key.data
    return out


def measure(sleep_s, rounds):
    times = []
    for _ in range(rounds):
        if sleep_s:
            time.sleep(sleep_s)
        t0 = time.perf_counter_ns()
        step()
        times.append((time.perf_counter_ns() - t0) / 1000.0)
    times.sort()
    return statistics.median(times), times[len(times) * 9 // 10]


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sleeps-ms", default="0,1,5,20",
                   help="comma-separated sleeps before each timed step (default 0,1,5,20)")
    p.add_argument("--rounds", type=int, default=200, help="timed steps per sleep (default 200)")
    p.add_argument("--cpu", type=int, help="pin to this CPU first")
    a = p.parse_args(argv)
    try:
        a.sleeps = [float(s) for s in a.sleeps_ms.split(",")]
    except ValueError:
        p.error("--sleeps-ms: not a list of numbers: %r" % a.sleeps_ms)
    if not all(math.isfinite(s) and s >= 0 for s in a.sleeps) or a.rounds < 1:
        p.error("--sleeps-ms must be finite and >= 0, and --rounds >= 1")
    return a


def main(argv):
    a = parse_args(argv)
    if a.cpu is not None:
        try:
            os.sched_setaffinity(0, {a.cpu})
        except (OSError, ValueError) as e:
            print("coldstart.py: cannot pin to CPU %d: %s" % (a.cpu, e), file=sys.stderr)
            return 2
    step()  # compile and warm once
    first = None
    for ms in a.sleeps:
        p50, p90 = measure(ms / 1000.0, a.rounds)
        if first is None:
            first = (ms, p50)
        print("after %5.1f ms asleep: step p50 %7.2f us, p90 %7.2f us (%.1fx the median after %.1f ms)"
              % (ms, p50, p90, p50 / first[1] if first[1] else float("nan"), first[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
