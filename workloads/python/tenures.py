#!/usr/bin/env python3
"""How an I/O thread's time splits between waiting out switch intervals and holding the GIL
in between, read from the scheduler alone: the one-core instrument, for gilbench's `timed`
and for CPython (the twin) alike, with nothing added inside either process.

On one core every interpreter thread of a side shares that core, so its switches tell the
story. Put a side's threads on core 0 (the twin with `--cores 0`, the model's `serve` with
`--pin single`), its client on core 1 (`gilbench load --pin 1`, which spins as calibrate's
client does; docs/calibration.md, "One core"), and record core 0 once the client runs:

    perf record -e sched:sched_switch -C 0 -o run.data -- sleep 4.8
    perf script -i run.data -F comm,tid,cpu,time,event,trace > run.txt
    python3 tenures.py [--min-wait MS] run.txt [more.txt ...]

An I/O thread (echo-N, or a connection's thread echo-N.cK) off the CPU for at least
`--min-wait` milliseconds (default 1; keep it under the switch interval and above a round
trip) waited through an interval: with a spinning client on the other core, a poll, a
receive or a mutex ends within microseconds. A gap that began with a preemption (the thread
runnable, not asleep) counts too, since the request pays for it as well, and is reported
apart: it may be a wait for the core, or the start of a wait for a GIL that another thread
took meanwhile. Between two waits lies a tenure, which serves one request or more. For each
I/O thread it reports the waits (count, per second, median length), the thread's CPU time
per tenure, and the escapes: tenures of 0.3 ms or more spent mostly (at least half) on the
CPU, in which the loop found each next request already queued and never waited.

The client's requests per second less the waits per second are the requests served without
a wait, within some tenure; this undercounts them by the requests that waited twice (a
point or two of the requests on one core). Times are perf's (seconds, to the microsecond).
Stdlib only.
"""

import re
import statistics
import sys

from perftrace import events, main as run_reader, role, roles

SWITCH = re.compile(
    r"prev_comm=(.+?) prev_pid=(\d+) .*prev_state=(\S+) ==> next_comm=(.+?) next_pid=(\d+)")
ESCAPE_S = 300e-6


def analyse(path, min_wait):
    """Each I/O thread's CPU stretches (tid -> (name, [(on, off, state at off)])), the
    trace's span and `min_wait`."""
    evs = events(path)
    if not evs:
        return {}, 0.0, min_wait
    names, stretches, on = {}, {}, {}
    for t, _cpu, _comm, _tid, ev, rest in evs:
        m = ev == "sched:sched_switch" and SWITCH.match(rest)
        if not m:
            continue
        prev, ppid, state, nxt, npid = m.groups()
        ppid, npid = int(ppid), int(npid)
        if ppid in on:
            stretches.setdefault(ppid, []).append((on.pop(ppid), t, state))
        if role(nxt):
            names[npid] = nxt
        if role(nxt) == "io":
            on[npid] = t
    # With connection threads the acceptor (echo-N beside echo-N.cK) serves nothing.
    kinds = roles(names)
    io = {tid: n for tid, n in names.items() if kinds.get(tid) == "io"}
    span = evs[-1][0] - evs[0][0]
    return {tid: (io[tid], stretches.get(tid, [])) for tid in io}, span, min_wait


def tenures(stretches, min_wait):
    """The waits (gaps of `min_wait` or more: lengths), those of them that began with a
    preemption, and the tenures between waits: (length, CPU time)."""
    waits, preempted, out = [], [], []
    start, cpu = None, 0.0
    for k, (a, b, _) in enumerate(stretches):
        gap = a - stretches[k - 1][1] if k > 0 else 0.0
        if gap >= min_wait:
            waits.append(gap)
            if stretches[k - 1][2].startswith("R"):
                preempted.append(gap)
            if start is not None:
                out.append((stretches[k - 1][1] - start, cpu))
            start, cpu = a, 0.0
        cpu += b - a
    return waits, preempted, out


def plural(n, word):
    return "%d %s%s" % (n, word, "" if n == 1 else "s")


def show(path, result):
    threads, span, min_wait = result
    if not threads:
        print("%s: no I/O thread (echo-N) in this trace" % path)
        return
    for tid in sorted(threads):
        name, stretches = threads[tid]
        waits, preempted, ten = tenures(stretches, min_wait)
        print("%s %s: %.2f s traced; %s of %g ms or more (%.1f/s%s; %d of them began with a "
              "preemption)"
              % (path, name, span, plural(len(waits), "wait"), min_wait * 1e3,
                 len(waits) / span if span else 0,
                 ", median %.2f ms" % (statistics.median(waits) * 1e3) if waits else "",
                 len(preempted)))
        if not ten:
            print("  no tenure between two waits")
            continue
        cpu = [round(c * 1e6) for _, c in ten]  # whole microseconds, as perf gives them

        def share(lo, hi):
            return 100.0 * sum(1 for c in cpu if lo <= c < hi) / len(cpu)

        print("  %s between them; the thread's CPU per tenure: median %.0f us; "
              "under 50 us %.0f%%, 50-100 us %.0f%%, 100 us or more %.0f%%"
              % (plural(len(ten), "tenure"), statistics.median(cpu), share(0, 50),
                 share(50, 100), share(100, float("inf"))))
        esc = [d for d, c in ten if d >= ESCAPE_S and c >= d / 2]
        print("  escapes (tenures of 0.3 ms or more, at least half on the CPU): %d%s"
              % (len(esc), ", %.2f ms in all (%.2f%% of the trace), the longest %.2f ms"
                 % (sum(esc) * 1e3, 100.0 * sum(esc) / span, max(esc) * 1e3) if esc else ""))


def cli(argv):
    """`--min-wait MS` (or `--min-wait=MS`) anywhere, then the files."""
    min_wait, files, k = 1e-3, [], 0
    while k < len(argv):
        a = argv[k]
        if a == "--min-wait" or a.startswith("--min-wait="):
            raw = a.split("=", 1)[1] if "=" in a else (argv[k + 1] if k + 1 < len(argv) else "")
            k += 1 if "=" in a else 2
            try:
                min_wait = float(raw) / 1e3
                if not 0 < min_wait < float("inf"):
                    raise ValueError
            except ValueError:
                print("tenures.py: --min-wait takes a positive number of milliseconds, not %r"
                      % raw, file=sys.stderr)
                return 2
            continue
        files.append(a)
        k += 1
    return run_reader(files, "tenures.py", lambda p: analyse(p, min_wait), show,
                      "[--min-wait MS] PERF_SCRIPT.txt [...]")


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
