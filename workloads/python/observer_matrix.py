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
--pins takes gilbench's --pin modes (spread, single, none) and core lists written with +
(0+1), since the comma separates the pins.
Exit status: 0 when no cell differs significantly beyond its bounds, 1 otherwise, 2 on bad
usage (one line, found before anything runs: the whole matrix takes over half an hour).
"""

import argparse
import json
import math
import os
import re
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
    ap.add_argument("--pins", default="spread,none",
                    help="spread, single, none or a core list with + between cores (0+1)")
    ap.add_argument("--json", default="")
    ap.add_argument("--rejudge", default="",
                    help="judge the cells of a --json file written before, without running")
    ap.add_argument("--no-confirm", action="store_true",
                    help="judge on the first pass alone (no confirmation pass)")
    a = ap.parse_args(argv)
    # gilbench's floors: a run lasts at least 1 ms, a timeout is longer than zero.
    for flag, least in (("duration", 1e-3), ("max_duration", 1e-3), ("long_timeout", 0)):
        value = getattr(a, flag)
        try:
            ok = seconds_of(value) > 0 and seconds_of(value) >= least
        except ValueError:
            ok = False
        if not ok:
            ap.error(f"--{flag.replace('_', '-')} {value!r} is not a positive duration of at least "
                     f"{'1ms' if least else '1ns'} (e.g. 2s, 500ms)")
    if a.repeat < 1:
        ap.error(f"--repeat {a.repeat} must be at least 1")
    return a


def listed(flag, value):
    """The comma list of a flag, or exit 2 when it is empty or has an empty item."""
    items = value.split(",")
    if not all(x.strip() for x in items):
        bad_usage(f"--{flag} {value!r} has an empty item")
    return [x.strip() for x in items]


# gilbench's most threads of a kind (MAX_THREADS in src/scenario/mod.rs).
MAX_THREADS = 1024


def cpu_threads_of(value):
    """--cpu-threads as whole numbers 0-1024, as gilbench takes them (0: the echo alone, no
    convoy, what the recorder costs an uncontended lock)."""
    counts = []
    for x in listed("cpu-threads", value):
        if not (x.isascii() and x.isdigit()) or int(x) > MAX_THREADS:
            bad_usage(f"--cpu-threads {value!r}: {x!r} is not a whole number of threads "
                      f"from 0 to {MAX_THREADS} (e.g. 1,2)")
        counts.append(int(x))
    return counts


def usable_cores():
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def pins_of(value):
    """--pins as gilbench's --pin values: spread, single, none, or cores joined by + (0+1)
    (the comma separates the pins here, so a core list is written with +)."""
    pins = []
    for x in listed("pins", value):
        if x in ("spread", "single", "none"):
            pins.append(x)
            continue
        cores = x.split("+")
        if not all(c.isascii() and c.isdigit() for c in cores):
            bad_usage(f"--pins {value!r}: {x!r} is not spread, single, none or a core list like 0+1")
        have = usable_cores()
        if have is None:
            bad_usage(f"--pins {value!r}: the OS does not say which cores this process may use")
        for c in cores:
            if int(c) not in have:
                bad_usage(f"--pins {value!r}: core {c} does not exist or is not usable here "
                          f"(usable cores: {','.join(map(str, have))})")
        pins.append(",".join(cores))
    return pins


def check_scenario(path):
    try:
        with open(path, "rb"):
            pass
    except OSError as e:
        bad_usage(f"--scenario {path}: cannot be read ({e.strerror or e})")
    if not os.path.isfile(path):
        bad_usage(f"--scenario {path}: not a file")


def check_output(path):
    """The --json file can be written: its directory exists and is writable, and the file,
    if there, is a regular file one may replace (found now, not after the whole matrix)."""
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        bad_usage(f"--json {path}: no such directory {folder}")
    if os.path.exists(path):
        if not os.path.isfile(path):
            bad_usage(f"--json {path}: not a regular file")
        try:
            with open(path, "r+b"):  # opened for writing, left as it is
                pass
        except OSError as e:
            bad_usage(f"--json {path}: cannot be written ({e.strerror or e})")
    elif not os.access(folder, os.W_OK | os.X_OK):
        bad_usage(f"--json {path}: directory {folder} is not writable")


def bad_usage(why):
    print(f"observer_matrix: {why}", file=sys.stderr)
    sys.exit(2)


class BadCells(ValueError):
    """A --rejudge file that is not a matrix this script wrote."""


def check_runs(where, runs):
    """`runs` is a non-empty list of runs whose rps, p50 and p99 are numbers >= 0 or null."""
    if not isinstance(runs, list) or not runs:
        raise BadCells(f"{where} is not a non-empty list of runs")
    for i, run in enumerate(runs):
        if not isinstance(run, dict):
            raise BadCells(f"{where}[{i}] is not an object")
        for k in BOUNDS:
            if k not in run:
                raise BadCells(f"{where}[{i}] has no {k}")
            x = run[k]
            ok = x is None or (isinstance(x, (int, float)) and not isinstance(x, bool)
                               and math.isfinite(x) and x >= 0)
            if not ok:
                raise BadCells(f"{where}[{i}].{k} is {json.dumps(x)}, not a number >= 0 or null")


def check_sides(where, sides):
    if not isinstance(sides, dict):
        raise BadCells(f"{where} is not an object with 'rec' and 'unrec' lists")
    for side in ("rec", "unrec"):
        check_runs(f"{where}.{side}", sides.get(side))


def check_duration(where, value):
    try:
        ok = isinstance(value, str) and seconds_of(value) > 0
    except ValueError:
        ok = False
    if not ok:
        raise BadCells(f"{where} is {json.dumps(value)}, not a positive duration like 2s")


def check_cell(k, v):
    """Every part of one cell the verdict reads, or BadCells naming the cell and field."""
    where = f"cell {k!r}"
    if not isinstance(v, dict):
        raise BadCells(f"{where} is not an object")
    if not isinstance(v.get("rec"), list) or not isinstance(v.get("unrec"), list):
        raise BadCells(f"{where} has no 'rec' and 'unrec' lists")
    check_sides(where, v)
    if "duration" in v:
        check_duration(f"{where}: duration", v["duration"])
    if "confirm" in v:
        check_sides(f"{where}: confirm", v["confirm"])
    if "long" in v:
        long = v["long"]
        if not isinstance(long, dict):
            raise BadCells(f"{where}: long is not an object with 'runs' and 'duration'")
        check_sides(f"{where}: long.runs", long.get("runs"))
        check_duration(f"{where}: long.duration", long.get("duration"))


def read_cells(path):
    """The cells of a --json file, or exit 2 naming what is wrong with it."""
    try:
        with open(path) as f:
            raw = json.load(f)
        if not isinstance(raw, dict):
            raise BadCells("not an object of cells")
        if not raw:
            raise BadCells("no cells")
        cells = {}
        for k, v in raw.items():
            parts = k.split()
            if len(parts) != 3 or not (parts[1].isascii() and parts[1].isdigit()):
                raise BadCells(f"cell {k!r} is not named 'design cpu-threads pin'")
            check_cell(k, v)
            cells[(parts[0], int(parts[1]), parts[2])] = v
        return cells
    except (OSError, ValueError) as e:
        bad_usage(f"--rejudge {path}: not a matrix this script wrote ({e})")


def designs(gilbench):
    try:
        out = subprocess.run([gilbench, "locks"], capture_output=True, text=True)
    except OSError as e:
        bad_usage(f"--gilbench {gilbench}: cannot be run ({e.strerror or e})")
    if out.returncode != 0:
        bad_usage(f"--gilbench {gilbench}: 'locks' failed: {out.stderr.strip()}")
    return [line.split()[0] for line in out.stdout.splitlines() if line.strip()]


def locks_of(a):
    """--locks checked against `gilbench locks` (all of them when not given)."""
    known = designs(a.gilbench)
    if not a.locks:
        return known
    locks = listed("locks", a.locks)
    for lock in locks:
        if lock not in known:
            bad_usage(f"--locks {a.locks!r}: no design {lock!r} (gilbench has {','.join(known)})")
    return locks


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
    """The exact two-sided p-value of the Mann-Whitney U test: the share of all splits of the
    pooled values into len(a) and len(b) whose U is at least as far from its mean as the one
    seen. Ties count half in U (U is then the rank sum of `a` with midranks, less its least),
    and the splits keep the tied values as they are (the permutation distribution given the
    ties). Counted by a dynamic program over the midranks, not by listing every split:
    ways[k][s] is how many k of the values seen so far have doubled midranks summing to s."""
    a = [x for x in a if x is not None]
    b = [x for x in b if x is not None]
    if not a or not b:
        return 1.0
    pooled, n, m = sorted(a + b), len(a), len(b)
    # Doubled midranks (whole numbers): the values i..j-1 tied share rank (i + j + 1) / 2.
    rank2, i = {}, 0
    while i < len(pooled):
        j = i
        while j < len(pooled) and pooled[j] == pooled[i]:
            j += 1
        rank2[pooled[i]] = i + j + 1
        i = j
    top = sum(sorted(rank2[x] for x in pooled)[-n:])
    ways = [[0] * (top + 1) for _ in range(n + 1)]
    ways[0][0] = 1
    for seen, x in enumerate(pooled):
        r = rank2[x]
        for k in range(min(seen + 1, n), 0, -1):
            row, below = ways[k], ways[k - 1]
            for s in range(top, r - 1, -1):
                if below[s - r]:
                    row[s] += below[s - r]
    # Twice U, less twice its mean n*m/2, from a doubled rank sum s.
    def off(s):
        return abs(s - n * (n + 1) - n * m)

    seen_off = off(sum(rank2[x] for x in a))
    extreme = sum(w for s, w in enumerate(ways[n]) if w and off(s) >= seen_off)
    return extreme / math.comb(n + m, n)


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


DURATION = re.compile(r"([0-9.]+)\s*(ns|us|µs|ms|s|m|min)")
SCALE = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "min": 60.0}


def seconds_of(duration):
    """Seconds of a duration as gilbench reads it (a number and a unit: 5ms, 250us, 2s,
    1.5s, 1m), or ValueError: what gilbench would refuse is refused before running."""
    m = DURATION.fullmatch(duration.strip())
    if not m:
        raise ValueError(f"{duration!r} is not a duration")
    secs = float(m.group(1)) * SCALE[m.group(2)]
    if not math.isfinite(secs) or secs > 1e9:
        raise ValueError(f"{duration!r} is too long")
    return secs


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
        rps_s = parts[0] if None in rps else f"{rps[0]:.0f}/{rps[1]:.0f} {parts[0]}"
        rows.append(f"| {lock} | {cpu} | {pin} | {rps_s} | {parts[1]} | {parts[2]} | {v} |")
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
    # Every flag is checked before the first run: the whole matrix takes half an hour.
    if not (os.path.isfile(a.gilbench) and os.access(a.gilbench, os.X_OK)):
        bad_usage(f"--gilbench {a.gilbench}: no such executable (run 'cargo build --release' first)")
    cpus, pins = cpu_threads_of(a.cpu_threads), pins_of(a.pins)
    check_scenario(a.scenario)
    if a.json:
        check_output(a.json)
    locks = locks_of(a)
    columns = {(cpu, pin): locks for cpu in cpus for pin in pins}
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
