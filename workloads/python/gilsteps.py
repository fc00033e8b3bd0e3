#!/usr/bin/env python3
"""Where an I/O thread pays for the GIL, socket call by socket call, read from the kernel's
side: the same instrument for gilbench's `timed` and for CPython (the twin), with nothing
added inside either process.

Record the server process of a served run of either side (threads named echo-0, echo-0.cK,
as both name them) once the client is connected, and give this script the text `perf
script` prints (x86-64 system call numbers):

    perf record -e sched:sched_switch -e raw_syscalls:sys_enter -e raw_syscalls:sys_exit \\
        -p SERVER_PID -o run.data -- sleep 3
    perf script -i run.data -F comm,tid,cpu,time,event,trace > run.txt
    python3 gilsteps.py run.txt [more.txt ...]

Both sides release the GIL around every socket call and build the GIL on glibc's condition
variable, whose waits with a timeout (the switch interval) are the only timed futex waits
an I/O thread makes. For each kind of call (poll: epoll_wait/poll/select; recv; send) it
reports how often the thread then waited for the GIL before its next socket call, how many
of those waits timed out (each is an interval paid; the waiter then asks for a drop unless
the GIL changed hands meanwhile), and how long the thread ran without a system call before
its next socket call: the GIL-held work between calls, the longest such stretch after the
GIL came back (a gap in which the thread was switched out outside a system call, preempted,
gives no stretch). Timestamps are perf's microseconds (`perf script --ns` gives more
digits); check that `perf record` lost no events, as a lost wait moves its call to "no
wait". Stdlib only.
"""

import collections
import re
import statistics
import sys

from perftrace import LINE, main as run_reader, role, roles

# x86-64 system call numbers.
STEPS = {
    232: "poll", 281: "poll", 7: "poll", 271: "poll", 23: "poll", 270: "poll",
    45: "recv", 47: "recv", 0: "recv",
    44: "send", 46: "send", 1: "send",
}
FUTEX = 202
FUTEX_WAIT, FUTEX_WAIT_BITSET = 0, 9
ETIMEDOUT = -110


def parse(path):
    """Each I/O thread's system calls and switches, in order: tid -> [(time, kind, nr,
    detail)], kind "in" (detail: the arguments), "out" (detail: the result) or "switch"."""
    events = collections.defaultdict(list)
    names = {}
    with open(path) as f:
        for ln in f:
            m = LINE.match(ln)
            if not m:
                continue
            comm, tid, _cpu, t, ev, rest = m.groups()
            tid, t = int(tid), float(t)
            if ev == "sched:sched_switch":
                # perf may not know a thread's name; the switch carries the kernel's.
                p = re.search(r"prev_comm=(\S+) prev_pid=(\d+)", rest)
                if p:
                    names[int(p.group(2))] = p.group(1)
                    events[int(p.group(2))].append((t, "switch", None, None))
            elif ev == "raw_syscalls:sys_enter":
                s = re.match(r"NR (\d+) \(([^)]*)\)", rest)
                if s:
                    events[tid].append((t, "in", int(s.group(1)), s.group(2).split(", ")))
            elif ev == "raw_syscalls:sys_exit":
                s = re.match(r"NR (\d+) = (-?\d+)", rest)
                if s:
                    events[tid].append((t, "out", int(s.group(1)), int(s.group(2))))
            if role(comm):
                names[tid] = comm
    return {tid: events[tid] for tid, r in roles(names).items() if r == "io"}


class Step:
    def __init__(self):
        self.calls = 0
        self.waited = 0
        self.timeouts = collections.Counter()
        self.stretch = {False: [], True: []}


def is_gil_wait(nr, args):
    """A timed futex wait: the condition variable's, with the switch interval."""
    if nr != FUTEX or len(args) < 4:
        return False
    return int(args[1], 16) & 0x7F in (FUTEX_WAIT, FUTEX_WAIT_BITSET) and int(args[3], 16) != 0


def analyse(path):
    steps = collections.defaultdict(Step)
    for evs in parse(path).values():
        step = None  # the call in progress' kind, from its exit to the next call's entry
        waits = timeouts = 0
        longest = None  # the longest stretch so far (None: none seen whole)
        last = None  # when the thread last left the kernel (None: switched out since)
        in_call = in_wait = False
        preempted = False  # switched out outside a system call since the GIL came back
        for t, kind, nr, detail in evs:
            if kind == "switch":
                last = None
                preempted = preempted or not in_call
                continue
            if kind == "in":
                in_call = True
                if step is not None and last is not None:
                    longest = max(longest or 0.0, t - last)
                if nr in STEPS:
                    if step is not None:
                        s = steps[step]
                        s.calls += 1
                        s.waited += waits > 0
                        s.timeouts[min(timeouts, 2)] += 1
                        if longest is not None and not preempted:
                            s.stretch[waits > 0].append(longest)
                    step = None
                in_wait = is_gil_wait(nr, detail)
                if step is not None and in_wait:
                    waits += 1
                    # Only the work after the GIL came back counts.
                    longest, preempted = None, False
            else:
                if nr in STEPS:
                    step, waits, timeouts, longest = STEPS[nr], 0, 0, None
                    preempted = False
                elif in_wait and detail == ETIMEDOUT and step is not None:
                    timeouts += 1
                in_call = in_wait = False
                last = t
    return steps


def median_us(values):
    return "%.0f us" % (statistics.median(values) * 1e6) if values else "-"


def show(path, steps):
    print("%s:" % path)
    if not steps:
        print("  no socket calls by threads named echo-N or bulk-N (record with -p and "
              "raw_syscalls, see the top of this file)")
    for name in ("poll", "recv", "send"):
        s = steps.get(name)
        if not s or not s.calls:
            continue
        tc = s.timeouts
        print(
            "  after %-4s %6d calls: waited for the GIL after %3.0f%% (intervals paid "
            "0/1/2+: %.0f/%.0f/%.0f%%); GIL-held work before the next call, median: "
            "%s without a wait, %s after one"
            % (
                name,
                s.calls,
                100.0 * s.waited / s.calls,
                100.0 * tc[0] / s.calls,
                100.0 * tc[1] / s.calls,
                100.0 * tc[2] / s.calls,
                median_us(s.stretch[False]),
                median_us(s.stretch[True]),
            )
        )


def main(argv):
    return run_reader(argv, "gilsteps.py", analyse, show)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
