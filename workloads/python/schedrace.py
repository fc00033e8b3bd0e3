#!/usr/bin/env python3
"""Who gets the GIL at a hand-off, read from the kernel's side: the same instrument for
gilbench's `timed` and for CPython (the twin), with nothing added inside either process.

Record a served run of either side (threads named cpu-N, echo-0, echo-0.cK, as both name
them) and give this script the text `perf script` prints:

    perf record -e sched:sched_switch -e sched:sched_waking -e timer:hrtimer_expire_entry \\
        -e syscalls:sys_enter_futex -e syscalls:sys_exit_futex -a -o run.data -- sleep 3
    perf script -i run.data -F comm,tid,cpu,time,event,trace > run.txt
    python3 schedrace.py run.txt [more.txt ...]

Both sides build the GIL on glibc's pthread mutex and condition variable, so their futex
calls mark the same protocol steps:
  * the condition variable's futex words are the ones interpreter threads wait on with a
    timeout (the switch interval); a wake on them is a release's `pthread_cond_signal`;
  * the GIL's mutex is the word CPU threads most often block on (FUTEX_WAIT).
For every release by a CPU thread (a drop: CPU threads release only when asked to) it
reports whether the thread had just blocked on the GIL's mutex (the waiter that asked for
the drop still held it), whether the signal woke an I/O thread, and if so whether that
thread held the GIL next (it woke its client or signalled a release before any CPU thread
ran on for a millisecond) or a CPU thread did. Stdlib only.
"""

import bisect
import collections
import re
import sys

from perftrace import events as parse, main as run_reader, role, roles as roles_by_name

FUTEX_WAIT, FUTEX_WAKE, FUTEX_WAIT_BITSET = 0, 1, 9
# A release's signal follows the thread's blocking on the mutex this closely when the
# mutex was what held it up.
MUTEX_BEFORE_S = 200e-6
# A wake within this long after an hrtimer_wakeup on the same CPU is the timer's.
TIMER_S = 20e-6
# A CPU thread that ran on this long after a hand-off held the GIL (an interval is >= 1 ms
# in every scenario this is for; a waiter that finds the GIL taken sleeps within microseconds).
RUN_HELD_S = 1e-3


def futex_args(rest):
    """A sys_enter_futex event's operation (flags masked off), address, and whether it
    carries a timeout."""
    f = dict(re.findall(r"(\w+): (0x[0-9a-f]+)", rest))
    return int(f["op"], 16) & 0x7F, f["uaddr"], int(f["utime"], 16) != 0


def futex_calls(events, threads):
    """Each interpreter thread's futex calls: (enter time, tid, op, uaddr, timed, exit time),
    and the calls still open when the trace ends (a trace ends with waits open)."""
    open_calls, calls = {}, []
    for t, _cpu, _comm, tid, ev, rest in events:
        if tid not in threads:
            continue
        if ev == "syscalls:sys_enter_futex":
            open_calls[tid] = (t,) + futex_args(rest)
        elif ev == "syscalls:sys_exit_futex" and tid in open_calls:
            t0, op, addr, timed = open_calls.pop(tid)
            calls.append((t0, tid, op, addr, timed, t))
    return calls, list(open_calls.values())


def roles(events):
    """Interpreter threads by tid: "cpu", "io" (serves requests) or "acceptor". A thread
    named after it started (the twin names itself on its first step) counts by that name."""
    named = {}
    for _t, _cpu, comm, tid, _ev, _rest in events:
        if role(comm):
            named[tid] = comm
    return roles_by_name(named)


def analyse(path):
    events = parse(path)
    threads = roles(events)
    calls, still_open = futex_calls(events, threads)
    # The condition variable: the words of every timed wait begun, finished or not.
    cond = {a for _t, _tid, op, a, timed, _e in calls if op == FUTEX_WAIT_BITSET and timed}
    cond |= {a for _t, op, a, timed in still_open if op == FUTEX_WAIT_BITSET and timed}
    waits = collections.Counter(
        a for _t, tid, op, a, _tm, _e in calls if op == FUTEX_WAIT and threads[tid] == "cpu"
    )
    mutex = waits.most_common(1)[0][0] if waits else None
    mutex_calls = {(tid, t0) for t0, tid, op, a, _tm, _e in calls if a == mutex}

    # The wakes each futex call does (the sched_waking events its thread emits inside it);
    # when an I/O thread shows it holds the GIL (it wakes its client, or wakes a thread from
    # anything but the GIL's mutex: a release's signal, a take's switch_cond signal); when
    # CPU threads ran on for more than a millisecond (they held the GIL).
    woken_by_call = collections.defaultdict(list)
    inside, timer_at, running = {}, {}, {}
    io_holds, cpu_runs = [], []
    responses = 0
    for t, cpu, _comm, tid, ev, rest in events:
        if ev == "syscalls:sys_enter_futex" and tid in threads:
            inside[tid] = t
        elif ev == "syscalls:sys_exit_futex":
            inside.pop(tid, None)
        elif ev == "timer:hrtimer_expire_entry" and "hrtimer_wakeup" in rest:
            timer_at[cpu] = t
        elif ev == "sched:sched_switch":
            prev = int(re.search(r"prev_pid=(\d+)", rest).group(1))
            nxt = int(re.search(r"next_pid=(\d+)", rest).group(1))
            if prev in running and t - running[prev] > RUN_HELD_S:
                cpu_runs.append((running[prev], t))
            running.pop(prev, None)
            if threads.get(nxt) == "cpu":
                running[nxt] = t
        elif ev == "sched:sched_waking":
            target = int(re.search(r"pid=(\d+)", rest).group(1))
            if t - timer_at.get(cpu, -1.0) < TIMER_S:
                continue
            if tid in inside:
                woken_by_call[(tid, inside[tid])].append(target)
                if threads.get(tid) == "io" and (tid, inside[tid]) not in mutex_calls:
                    io_holds.append(t)
            elif threads.get(tid) == "io" and target not in threads:
                responses += 1  # an I/O thread wakes its client: a response went out
                io_holds.append(t)
    cpu_runs.sort()

    last_call = {}
    drops = to_io = io_held = mutex_first = 0
    # Drops that woke an I/O thread, by whether the dropper had met the mutex held: how
    # many, and after how many of them the I/O thread held the GIL next.
    split = {True: [0, 0], False: [0, 0]}
    for t0, tid, op, a, _timed, t1 in calls:
        if op == FUTEX_WAKE and a in cond and threads[tid] == "cpu":
            drops += 1
            prev = last_call.get(tid)
            met = bool(
                prev
                and prev[0] == FUTEX_WAIT
                and prev[1] == mutex
                and t0 - prev[2] < MUTEX_BEFORE_S
            )
            mutex_first += met
            if any(threads.get(w) == "io" for w in woken_by_call.get((tid, t0), [])):
                to_io += 1
                k = bisect.bisect_right(io_holds, t0)
                io_next = io_holds[k] if k < len(io_holds) else float("inf")
                k = bisect.bisect_right(cpu_runs, (t0, float("inf")))
                cpu_next = cpu_runs[k][1] if k < len(cpu_runs) else float("inf")
                split[met][0] += 1
                if io_next < cpu_next:
                    io_held += 1
                    split[met][1] += 1
        last_call[tid] = (op, a, t1)
    return {
        "responses": responses,
        "drops": drops,
        "dropper_met_mutex_held": mutex_first,
        "drops_waking_io": to_io,
        "io_held_gil_next": io_held,
        "after_mutex_held": split[True],
        "after_mutex_free": split[False],
    }


def pct(a, b):
    return "%.0f%%" % (100.0 * a / b) if b else "-"


def show(path, r):
    print(
        "%s: %d responses; %d drops by CPU threads, %d (%s) right after blocking on the "
        "GIL's mutex; %d woke an I/O thread, which held the GIL next in %d (%s): "
        "%d of %d (%s) when the dropper had met the mutex held, %d of %d (%s) when not"
        % (
            path,
            r["responses"],
            r["drops"],
            r["dropper_met_mutex_held"],
            pct(r["dropper_met_mutex_held"], r["drops"]),
            r["drops_waking_io"],
            r["io_held_gil_next"],
            pct(r["io_held_gil_next"], r["drops_waking_io"]),
            r["after_mutex_held"][1],
            r["after_mutex_held"][0],
            pct(r["after_mutex_held"][1], r["after_mutex_held"][0]),
            r["after_mutex_free"][1],
            r["after_mutex_free"][0],
            pct(r["after_mutex_free"][1], r["after_mutex_free"][0]),
        )
    )


def main(argv):
    return run_reader(argv, "schedrace.py", analyse, show)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
