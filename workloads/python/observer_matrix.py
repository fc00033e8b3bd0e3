#!/usr/bin/env python3
"""Does recording move what it records? The recorded/unrecorded matrix of issue 20.

For every design, convoy-echo with 1 and 2 CPU threads, pinned spread and unpinned, runs the
same condition recorded (`record = true`) and unrecorded (`record = false`), interleaved:
each repetition runs every cell once, recorded and unrecorded next to each other. Prints,
per cell, the medians over the repetitions of echo requests/s, p50 and p99, recorded over
unrecorded, and whether they are within the bounds:

    req/s within +-10%, p50 and p99 within +-20%, or, where the unrecorded runs themselves
    spread wider than that, the recorded median inside the unrecorded min-max.

Usage: observer_matrix.py [--gilbench PATH] [--repeat 5] [--duration 1s] [--locks a,b]
                          [--cpu-threads 1,2] [--pins spread,none] [--json OUT]
Exit status: 0 when every cell is within bounds, 1 otherwise, 2 on bad usage.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--gilbench", default="target/release/gilbench")
    ap.add_argument("--scenario", default="workloads/convoy-echo.toml")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--duration", default="1s")
    ap.add_argument("--locks", default="")
    ap.add_argument("--cpu-threads", default="1,2")
    ap.add_argument("--pins", default="spread,none")
    ap.add_argument("--json", default="")
    return ap.parse_args(argv)


def designs(gilbench):
    out = subprocess.run([gilbench, "locks"], capture_output=True, text=True, check=True)
    return [line.split()[0] for line in out.stdout.splitlines() if line.strip()]


def one_sweep(a, locks, cpu, pin, path):
    """One repetition of one (cpu threads, pin) column: every design, recorded and not."""
    cmd = [
        a.gilbench, "sweep", a.scenario, "--locks", ",".join(locks),
        "--cpu-threads", str(cpu), "--pin", pin, "--duration", a.duration,
        "--set", "record=true,false", "--repeat", "1", "--no-baseline",
        "--json", path, "--quiet",
    ]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"observer_matrix: {' '.join(cmd)} failed: {r.stderr.strip()}")
    with open(path) as f:
        return json.load(f)["runs"]


def figures(run):
    io = run.get("io") or {}
    lat = io.get("latency_us") or {}
    return {"rps": io.get("requests_per_sec"), "p50": lat.get("p50"), "p99": lat.get("p99")}


def recorded(run):
    return "record=true" in run.get("label", "")


def collect(a, locks):
    cells = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(a.repeat):
            for cpu in a.cpu_threads.split(","):
                for pin in a.pins.split(","):
                    path = os.path.join(tmp, f"r{rep}-{cpu}-{pin}.json")
                    for run in one_sweep(a, locks, cpu, pin, path):
                        key = (run["lock"], int(cpu), pin)
                        side = "rec" if recorded(run) else "unrec"
                        cells.setdefault(key, {"rec": [], "unrec": []})[side].append(figures(run))
            print(f"repetition {rep + 1} of {a.repeat} done", file=sys.stderr)
    return cells


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def judge(rec, unrec, bound):
    """(ratio, ok) for one figure: the medians' ratio within 1 +- bound, or the recorded
    median inside the unrecorded min-max when those spread wider than the bound."""
    r, u = median(rec), median(unrec)
    if r is None or u is None or u == 0:
        return None, r == u
    ratio = r / u
    if abs(ratio - 1) <= bound:
        return ratio, True
    lo, hi = min(x for x in unrec if x is not None), max(x for x in unrec if x is not None)
    wide = (hi - lo) / u > 2 * bound
    return ratio, wide and lo <= r <= hi


BOUNDS = {"rps": 0.10, "p50": 0.20, "p99": 0.20}


def table(cells):
    rows, bad = [], 0
    rows.append("| design | CPU threads | pin | req/s rec/unrec | p50 rec/unrec | p99 rec/unrec | within |")
    rows.append("|---|---:|---|---:|---:|---:|---|")
    for (lock, cpu, pin), c in sorted(cells.items()):
        parts, ok_all = [], True
        for k, bound in BOUNDS.items():
            ratio, ok = judge([x[k] for x in c["rec"]], [x[k] for x in c["unrec"]], bound)
            ok_all &= ok
            parts.append("-" if ratio is None else f"{ratio:.2f}x{'' if ok else ' !'}")
        bad += not ok_all
        rps = median([x["rps"] for x in c["rec"]]), median([x["rps"] for x in c["unrec"]])
        rps_s = "-" if None in rps else f"{rps[0]:.0f}/{rps[1]:.0f} "
        rows.append(f"| {lock} | {cpu} | {pin} | {rps_s}{parts[0]} | {parts[1]} | {parts[2]} | {'yes' if ok_all else 'NO'} |")
    return "\n".join(rows), bad


def main(argv):
    a = parse_args(argv)
    locks = a.locks.split(",") if a.locks else designs(a.gilbench)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    cells = collect(a, locks)
    text, bad = table(cells)
    print(f"recorded/unrecorded, medians of {a.repeat} interleaved repetitions of {a.duration}, {started}")
    print(text)
    print(f"{len(cells) - bad} of {len(cells)} cells within bounds")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({f"{k[0]} {k[1]} {k[2]}": v for k, v in cells.items()}, f, indent=1)
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
