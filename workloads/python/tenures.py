#!/usr/bin/env python3
"""How an I/O thread's time splits between waiting out switch intervals and holding the GIL
in between, read from the scheduler alone: the one-core instrument, for gilbench's `timed`
and for CPython (the twin) alike, with nothing added inside either process.

On one core every interpreter thread of a side shares that core, so its switches tell the
story. Record the core (the twin pinned with `--cores 0`, the model with `--pin single`,
the client elsewhere: `gilbench load --pin 1`, which spins as calibrate's client does):

    perf record -e sched:sched_switch -C 0 -o run.data -- sleep 4.8
    perf script -i run.data -F comm,tid,cpu,time,event,trace > run.txt
    python3 tenures.py [--min-wait MS] run.txt [more.txt ...]

An I/O thread (echo-N, or a connection's echo-N.cK) off the CPU for at least `--min-wait`
(default 1 ms; keep it under the switch interval and above a round trip) waited for the GIL
through an interval: a poll, a receive or a mutex ends in microseconds when a spinning
client is on the other core. Between two such waits lies a tenure, which serves one request
or more. For each I/O thread it reports the waits (count, per second, median length), the
thread's CPU time per tenure, and the escapes: tenures of 0.3 ms or more spent mostly (at
least half) on the CPU, in which the loop found each next request already queued and never
waited. Divide the waits per second by the client's requests per second to see how many
requests waited; the others were served without a wait, within some tenure. Timestamps are
perf's microseconds. Stdlib only.
"""

import re
import statistics
import sys

from perftrace import events, main as run_reader, role

SWITCH = re.compile(
    r"prev_comm=(.+?) prev_pid=(\d+) .*prev_state=(\S+) ==> next_comm=(.+?) next_pid=(\d+)")
ESCAPE_S = 300e-6


def analyse(path, min_wait):
    """Each I/O thread's CPU stretches (tid -> (name, [(on, off)])), the trace's span and
    `min_wait`."""
    evs = events(path)
    if not evs:
        return {}, 0.0, min_wait
    names, stretches, on = {}, {}, {}
    for t, _cpu, _comm, _tid, ev, rest in evs:
        m = ev == "sched:sched_switch" and SWITCH.match(rest)
        if not m:
            continue
        prev, ppid, _state, nxt, npid = m.groups()
        ppid, npid = int(ppid), int(npid)
        if role(prev) == "io" and ppid in on:
            stretches.setdefault(ppid, []).append((on.pop(ppid), t))
        if role(nxt) == "io":
            names[npid] = nxt
            on[npid] = t
    # With connection threads the acceptor (echo-N beside echo-N.cK) serves nothing.
    if any(".c" in n for n in names.values()):
        names = {tid: n for tid, n in names.items() if ".c" in n}
    span = evs[-1][0] - evs[0][0]
    return {tid: (names[tid], stretches.get(tid, [])) for tid in names}, span, min_wait


def tenures(stretches, min_wait):
    """The waits (lengths) and the tenures between them: (length, CPU time)."""
    waits, out = [], []
    start, cpu = None, 0.0
    for k, (a, b) in enumerate(stretches):
        if k > 0 and a - stretches[k - 1][1] >= min_wait:
            waits.append(a - stretches[k - 1][1])
            if start is not None:
                out.append((stretches[k - 1][1] - start, cpu))
            start, cpu = a, 0.0
        cpu += b - a
    return waits, out


def show(path, result):
    threads, span, min_wait = result
    if not threads:
        print("%s: no I/O thread (echo-N) in this trace" % path)
        return
    for tid in sorted(threads):
        name, stretches = threads[tid]
        waits, ten = tenures(stretches, min_wait)
        print("%s %s: %.2f s traced; %d waits of %g ms or more (%.1f/s, median %.2f ms)"
              % (path, name, span, len(waits), min_wait * 1e3, len(waits) / span if span else 0,
                 statistics.median(waits) * 1e3 if waits else 0))
        if not ten:
            print("  no tenure between two waits")
            continue
        cpu = [c for _, c in ten]

        def share(lo, hi):
            return 100.0 * sum(1 for c in cpu if lo <= c < hi) / len(cpu)

        print("  %d tenures between them; the thread's CPU per tenure: median %.0f us; "
              "under 50 us %.0f%%, 50-100 us %.0f%%, 100 us or more %.0f%%"
              % (len(ten), statistics.median(cpu) * 1e6, share(0, 50e-6),
                 share(50e-6, 100e-6), share(100e-6, float("inf"))))
        esc = [d for d, c in ten if d >= ESCAPE_S and c >= d / 2]
        print("  escapes (tenures of 0.3 ms or more, at least half on the CPU): %d, %.2f ms in "
              "all (%.2f%% of the trace), the longest %.2f ms"
              % (len(esc), sum(esc) * 1e3, 100.0 * sum(esc) / span if span else 0,
                 max(esc) * 1e3 if esc else 0))


def cli(argv):
    min_wait = 1e-3
    if argv[:1] == ["--min-wait"]:
        try:
            min_wait = float(argv[1]) / 1e3
            if not min_wait > 0 or min_wait == float("inf"):
                raise ValueError
        except (IndexError, ValueError):
            print("tenures.py: --min-wait takes a positive number of milliseconds",
                  file=sys.stderr)
            return 2
        argv = argv[2:]
    return run_reader(argv, "tenures.py", lambda p: analyse(p, min_wait), show)


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
