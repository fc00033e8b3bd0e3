"""What the trace readers (`schedrace.py`, `gilsteps.py`) share: reading `perf script`
text, the threads' roles by the names both sides give them, and the command line that runs a
reader over files. Stdlib only."""

import re
import sys

LINE = re.compile(r"^\s*(.+?)\s+(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+(\S+):\s+(.*)$")


def events(path):
    """The trace's events in order: (time, cpu, comm, tid, event, fields)."""
    out = []
    with open(path) as f:
        for ln in f:
            m = LINE.match(ln)
            if m:
                comm, tid, cpu, t, ev, rest = m.groups()
                out.append((float(t), int(cpu), comm, int(tid), ev, rest))
    return out


def role(comm):
    """"cpu" for cpu-N, "io" for echo-N, bulk-N and their connection threads echo-N.cK,
    else None."""
    if re.fullmatch(r"cpu-\d+", comm):
        return "cpu"
    if re.fullmatch(r"(echo|bulk)-\d+(\.c\d+)?", comm):
        return "io"
    return None


def roles(named):
    """Interpreter threads' roles from their names (tid -> comm): "cpu", "io" (serves
    requests) or "acceptor": with connection threads (echo-0.cK), the accepting thread
    (echo-0) serves nothing."""
    threads = {tid: role(c) for tid, c in named.items() if role(c)}
    if any(".c" in named[tid] for tid in threads):
        for tid, r in threads.items():
            if r == "io" and ".c" not in named[tid]:
                threads[tid] = "acceptor"
    return threads


def main(argv, prog, analyse, show, args="PERF_SCRIPT.txt [...]"):
    """Runs `show(path, analyse(path))` for every file in `argv`; a missing or binary file,
    or no file, is one line on standard error and exit 2. `args` is the usage's synopsis."""
    if not argv or any(a.startswith("-") for a in argv):
        print("usage: %s %s  (see the top of %s)" % (prog, args, prog), file=sys.stderr)
        return 2
    for path in argv:
        try:
            result = analyse(path)
        except OSError as e:
            print("%s: cannot read %s: %s" % (prog, path, e.strerror), file=sys.stderr)
            return 2
        except UnicodeDecodeError:
            print("%s: %s is not text: give it what `perf script` prints, not perf.data"
                  % (prog, path), file=sys.stderr)
            return 2
        try:
            show(path, result)
        except BrokenPipeError:  # e.g. piped into `head`
            sys.stdout = None
            return 0
    return 0
