#!/usr/bin/env python3
"""Does recording move what it records? The recorded/unrecorded matrix of issue 20.

For every design, convoy-echo with 1 and 2 CPU threads, pinned spread and unpinned, runs the
same condition recorded (`record = true`) and unrecorded (`record = false`), interleaved:
each repetition runs every cell once, recorded and unrecorded next to each other, the
recorded run first in even repetitions and second in odd ones. Prints,
per cell, the medians over the repetitions of echo requests/s, p50 and p99, recorded over
unrecorded, and whether they are within the bounds:

    req/s within +-10%, p50 and p99 within +-20%, or, where the unrecorded runs themselves
    spread wider than that, the recorded median inside the unrecorded min-max.

A cell outside the bounds is told apart from noise by an exact two-sided Mann-Whitney test of
the recorded against the unrecorded runs: "NO" when the difference is significant (p < 0.05),
"noise?" when these repetitions cannot tell it from run-to-run noise (more repetitions would).
A cell whose runs answered fewer than 100 requests each is "too few": its rates and
percentiles are counting noise at this duration. Such a cell (and one with a run that
answered nothing) is run again for as long as its rate says 100 requests take, up to
--max-duration, with the client's timeout raised to --long-timeout (the long pass), and
judged on those runs; still too few, it says so.

Usage: observer_matrix.py [--gilbench PATH] [--repeat 5] [--duration 1s] [--locks a,b]
                          [--cpu-threads 1,2] [--pins spread,none] [--max-duration 30s]
                          [--long-timeout 10s]
                          [--json OUT] [--no-confirm] [--rejudge FILE]
Exit status: 0 when no cell differs significantly beyond its bounds, 1 otherwise, 2 on bad
usage.
"""

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time


class OneLineParser(argparse.ArgumentParser):
    """Bad usage is one line naming the problem (and exit 2), not the usage text."""

    def error(self, message):
        bad_usage(f"{message} (see --help)")


def parse_args(argv):
    ap = OneLineParser(description=__doc__.split("\n")[1])
    ap.add_argument("--gilbench", default="target/release/gilbench")
    ap.add_argument("--scenario", default="workloads/convoy-echo.toml")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--duration", default="1s")
    ap.add_argument("--max-duration", default="30s",
                    help="the longest run of the long pass for cells with too few requests")
    ap.add_argument("--long-timeout", default="10s",
                    help="the client's timeout in the long pass")
    ap.add_argument("--locks", default="")
    ap.add_argument("--cpu-threads", default="1,2")
    ap.add_argument("--pins", default="spread,none")
    ap.add_argument("--json", default="")
    ap.add_argument("--rejudge", default="",
                    help="judge the cells of a --json file written before, without running")
    ap.add_argument("--no-confirm", action="store_true",
                    help="judge on the first pass alone (no confirmation pass)")
    a = ap.parse_args(argv)
    for flag in ("duration", "max_duration", "long_timeout"):
        value = getattr(a, flag)
        try:
            ok = seconds_of(value) > 0
        except ValueError:
            ok = False
        if not ok:
            ap.error(f"--{flag.replace('_', '-')} {value!r} is not a positive duration (e.g. 2s, 500ms)")
    if a.repeat < 1:
        ap.error(f"--repeat {a.repeat} must be at least 1")
    return a


def bad_usage(why):
    print(f"observer_matrix: {why}", file=sys.stderr)
    sys.exit(2)


def read_cells(path):
    """The cells of a --json file, or exit 2 naming what is wrong with it."""
    try:
        with open(path) as f:
            raw = json.load(f)
        cells = {}
        for k, v in raw.items():
            lock, cpu, pin = k.split()
            if not isinstance(v.get("rec"), list) or not isinstance(v.get("unrec"), list):
                raise ValueError(f"cell {k!r} has no 'rec' and 'unrec' lists")
            cells[(lock, int(cpu), pin)] = v
        return cells
    except (OSError, ValueError, AttributeError) as e:
        bad_usage(f"--rejudge {path}: not a matrix this script wrote ({e})")


def designs(gilbench):
    out = subprocess.run([gilbench, "locks"], capture_output=True, text=True)
    if out.returncode != 0:
        bad_usage(f"--gilbench {gilbench}: 'locks' failed: {out.stderr.strip()}")
    return [line.split()[0] for line in out.stdout.splitlines() if line.strip()]


def one_sweep(a, locks, cpu, pin, path, duration, sets=(), unrecorded_first=False):
    """One repetition of one (cpu threads, pin) column: every design, recorded and not
    (recorded first unless `unrecorded_first`: the repetitions alternate, so that neither
    side always runs first)."""
    order = "record=false,true" if unrecorded_first else "record=true,false"
    cmd = [
        a.gilbench, "sweep", a.scenario, "--locks", ",".join(locks),
        "--cpu-threads", str(cpu), "--pin", pin, "--duration", duration,
        "--set", order, "--repeat", "1", "--no-baseline",
        "--json", path, "--quiet",
    ]
    cmd += [arg for kv in sets for arg in ("--set", kv)]
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


def collect(a, columns, what="repetition", duration=None, sets=()):
    """Runs `a.repeat` interleaved repetitions of every column: {(cpu, pin): [locks]}, each
    run `duration` long (`a.duration` unless given), with the scenario `sets` (KEY=VALUE)."""
    cells = {}
    if not any(columns.values()):
        return cells
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(a.repeat):
            for (cpu, pin), locks in sorted(columns.items()):
                if locks:
                    path = os.path.join(tmp, f"r{rep}-{cpu}-{pin}.json")
                    for run in one_sweep(a, locks, cpu, pin, path, duration or a.duration, sets, rep % 2 == 1):
                        key = (run["lock"], cpu, pin)
                        side = "rec" if recorded(run) else "unrec"
                        cells.setdefault(key, {"rec": [], "unrec": []})[side].append(figures(run))
            print(f"{what} {rep + 1} of {a.repeat} done", file=sys.stderr)
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

# Fewer requests than this in a run leave its rate and percentiles to counting noise.
MIN_REQUESTS = 100


def mann_whitney_p(a, b):
    """The exact two-sided p-value of the Mann-Whitney U test (ties count half), by
    enumerating every split of the pooled values: fine for the few repetitions here."""
    a = [x for x in a if x is not None]
    b = [x for x in b if x is not None]
    if not a or not b:
        return 1.0

    def u(xs, ys):
        return sum((x > y) + 0.5 * (x == y) for x in xs for y in ys)

    pooled, n = a + b, len(a)
    mean = n * len(b) / 2
    seen = abs(u(a, b) - mean)
    total = extreme = 0
    for idx in itertools.combinations(range(len(pooled)), n):
        chosen = set(idx)
        xs = [pooled[i] for i in idx]
        ys = [pooled[i] for i in range(len(pooled)) if i not in chosen]
        total += 1
        extreme += abs(u(xs, ys) - mean) >= seen - 1e-9
    return extreme / total


def first_pass(c, seconds):
    """The first pass's verdict and its figures' cells: "yes" within bounds; otherwise
    "too few", "NO" (a significant difference) or "noise?"."""
    parts, outside, significant = [], False, False
    for k, bound in BOUNDS.items():
        rec, unrec = [x[k] for x in c["rec"]], [x[k] for x in c["unrec"]]
        ratio, ok = judge(rec, unrec, bound)
        p = mann_whitney_p(rec, unrec)
        outside |= not ok
        significant |= not ok and p < 0.05
        mark = "" if ok else f" ! p={p:.2f}"
        parts.append("-" if ratio is None else f"{ratio:.2f}x{mark}")
    fewest = min((x["rps"] or 0) * seconds for x in c["rec"] + c["unrec"])
    # A cell with a run that answered nothing has no rate or percentile to compare.
    if fewest == 0 or (outside and fewest < MIN_REQUESTS):
        return "too few", parts
    if not outside:
        return "yes", parts
    return ("NO" if significant else "noise?"), parts


def verdict(c, seconds):
    """The cell's verdict: with 132 tests at p < 0.05 a few fire by chance, so a cell outside
    its bounds is run again (the confirmation pass) and judged on those fresh runs alone: it
    is "NO" only if it is outside and significant there too, "yes (confirmed)" if the fresh
    runs are within bounds. A cell with too few requests is judged on its long pass."""
    v, parts = first_pass(c, seconds)
    if v == "too few" and "long" in c:
        long = c["long"]
        again, parts2 = first_pass(long["runs"], seconds_of(long["duration"]))
        shown = [f"{a} / {b}" for a, b in zip(parts, parts2)]
        return f"{again} (runs of {long['duration']})", shown
    if v in ("yes", "too few") or "confirm" not in c:
        return v, parts
    again, parts2 = first_pass(c["confirm"], seconds)
    shown = [f"{a} / {b}" for a, b in zip(parts, parts2)]
    if again == "yes":
        return "yes (confirmed)", shown
    return again, shown


def seconds_of(duration):
    units = {"ms": 1e-3, "us": 1e-6, "s": 1.0}
    duration = duration.strip()
    for unit, scale in units.items():
        if duration.endswith(unit):
            return float(duration[: -len(unit)]) * scale
    return float(duration)


def table(cells, seconds):
    rows, counts = [], {}
    rows.append("| design | CPU threads | pin | req/s rec/unrec | p50 rec/unrec | p99 rec/unrec | within |")
    rows.append("|---|---:|---|---:|---:|---:|---|")
    for (lock, cpu, pin), c in sorted(cells.items()):
        # A cell written by this script knows its runs' duration; --duration is for older files.
        v, parts = verdict(c, seconds_of(c["duration"]) if "duration" in c else seconds)
        key = "too few" if v.startswith("too few") else v.split()[0]
        counts[key] = counts.get(key, 0) + 1
        runs = c["long"]["runs"] if "long" in c and "(runs of" in v else c
        rps = median([x["rps"] for x in runs["rec"]]), median([x["rps"] for x in runs["unrec"]])
        rps_s = "-" if None in rps else f"{rps[0]:.0f}/{rps[1]:.0f} "
        rows.append(f"| {lock} | {cpu} | {pin} | {rps_s}{parts[0]} | {parts[1]} | {parts[2]} | {v} |")
    return "\n".join(rows), counts


def long_duration(c, seconds, cap):
    """How long a run of the cell must be for MIN_REQUESTS at its median rate (a fifth more,
    whole seconds), at most `cap` seconds; `cap` where it answered nothing."""
    rate = median([x["rps"] for x in c["rec"] + c["unrec"]]) or 0
    if rate <= 0:
        return cap
    return min(cap, max(seconds, float(int(MIN_REQUESTS * 1.2 / rate) + 1)))


def long_pass(a, cells):
    """Runs each cell with too few requests again, for as long as 100 requests take (up to
    --max-duration), with the client's timeout raised to --long-timeout (a request slower
    than the scenario's timeout fails and is never counted), and keeps those runs as its
    long pass."""
    seconds, cap = seconds_of(a.duration), seconds_of(a.max_duration)
    wanted = {}
    for (lock, cpu, pin), c in cells.items():
        if first_pass(c, seconds)[0] == "too few":
            d = long_duration(c, seconds, cap)
            if d > seconds:
                wanted.setdefault(d, {}).setdefault((cpu, pin), []).append(lock)
    for d, columns in sorted(wanted.items()):
        duration = f"{d:g}s"
        sets = [f"timeout={a.long_timeout}"]
        what = f"long pass ({duration} runs, timeout {a.long_timeout})"
        for key, c in collect(a, columns, what, duration, sets).items():
            cells[key]["long"] = {"runs": c, "duration": duration}


def main(argv):
    a = parse_args(argv)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    if a.rejudge:
        cells = read_cells(a.rejudge)
        text, counts = table(cells, seconds_of(a.duration))
        print(text)
        return 0 if counts.get("NO", 0) == 0 else 1
    if not os.access(a.gilbench, os.X_OK):
        bad_usage(f"--gilbench {a.gilbench}: no such executable (run 'cargo build --release' first)")
    locks = a.locks.split(",") if a.locks else designs(a.gilbench)
    columns = {(int(cpu), pin): locks for cpu in a.cpu_threads.split(",") for pin in a.pins.split(",")}
    cells = collect(a, columns)
    if not a.no_confirm:
        again = {}
        for (lock, cpu, pin), c in cells.items():
            if first_pass(c, seconds_of(a.duration))[0] in ("NO", "noise?"):
                again.setdefault((cpu, pin), []).append(lock)
        for key, c in collect(a, again, "confirmation pass").items():
            cells[key]["confirm"] = c
    long_pass(a, cells)
    text, counts = table(cells, seconds_of(a.duration))
    print(f"recorded/unrecorded, medians of {a.repeat} interleaved repetitions of {a.duration}, {started}; "
          "a cell outside its bounds shows its confirmation pass after a slash (a cell with "
          "too few requests, its long pass)")
    print(text)
    print(f"{counts.get('yes', 0)} of {len(cells)} cells within bounds; "
          f"outside: {counts.get('NO', 0)} significant (p < 0.05), "
          f"{counts.get('noise?', 0)} not told apart from noise, {counts.get('too few', 0)} with too few requests")
    bad = counts.get("NO", 0)
    if a.json:
        for c in cells.values():
            c["duration"] = a.duration
        with open(a.json, "w") as f:
            json.dump({f"{k[0]} {k[1]} {k[2]}": v for k, v in cells.items()}, f, indent=1)
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
