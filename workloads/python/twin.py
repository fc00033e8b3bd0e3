#!/usr/bin/env python3
"""gilbench's Python twin: the scenario of a gilbench socket run, in a real interpreter.

It runs an echo (or bulk) server in one of gilbench's two structures, N CPU-bound pure-Python
threads, and `sys.setswitchinterval(interval)`, optionally pinned with `os.sched_setaffinity`,
on a loopback address. An outside client (gilbench's own load generator, through `gilbench
calibrate`, or `gilbench load`) drives it, so that the model and the real interpreter meet the
same client. Standard library only.

Protocol: it prints `listening on tcp HOST:PORT` (or `ready` without a server) and flushes;
measures its CPU threads and context switches over [warmup, warmup + duration] from then (for
bulk over the transfer instead, from the accept to the end of the receive, as gilbench
measures a transfer whole); keeps serving until its standard input reaches end of file
(gilbench closes it when its load generator is done) and, for bulk, the transfer is complete
or the sender has closed, or `--linger` has passed after the window; then prints one JSON line
with its results and exits 0.

Server structures (as gilbench's `server` key):
  poll      one thread: selectors (epoll) select, recv, send; non-blocking sockets
            (three GIL releases per request, like asyncio or a selectors loop)
  threaded  an accepting thread (select with 0.5 s, as socketserver's serve_forever, then
            accept) and a thread per connection with blocking recv and sendall (two releases
            per request, like socketserver.ThreadingTCPServer); over UDP one thread with a
            blocking recvfrom and sendto; for bulk a blocking recv loop.

Context switches are the kernel's per-thread counters (what getrusage(RUSAGE_THREAD)
reports), read from /proc/self/task/TID/status at the window's start and end.

With --time-sends (a diagnostic, off in calibrate: two clock reads per request) the echo
server times each send call, which returns only once the thread holds the GIL again, and
reports as `send_timing` how many returned within half a switch interval (the GIL came back
without a drop request) and their median and 90th-percentile duration.
"""

import argparse
import json
import os
import platform
import select
import selectors
import socket
import sys
import threading
import time

VERSION = 1
# How long a poll loop's select waits before looking at the stop flag (gilbench: 20 ms).
POLL_SLICE = 0.02
# socketserver's serve_forever poll_interval.
ACCEPT_POLL = 0.5
# Pure-Python iterations between two updates of a CPU thread's counter.
CHUNK = 1000


def duration(text):
    """'5ms', '250us', '2s', '1.5s', or plain seconds -> seconds."""
    t = text.strip()
    for unit, scale in (("us", 1e-6), ("ms", 1e-3), ("s", 1.0)):
        if t.endswith(unit):
            t, f = t[: -len(unit)], scale
            break
    else:
        f = 1.0
    try:
        v = float(t) * f
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a duration like 5ms" % text)
    if v < 0:
        raise argparse.ArgumentTypeError("%r is negative" % text)
    return v


def core_list(text):
    try:
        cores = [int(c) for c in text.split(",") if c.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a core list like 0,1" % text)
    if not cores:
        raise argparse.ArgumentTypeError("empty core list")
    return cores


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--io", choices=["echo", "bulk", "none"], default="echo")
    p.add_argument("--server", choices=["poll", "threaded"], default="poll")
    p.add_argument("--transport", choices=["tcp", "udp"], default="tcp")
    p.add_argument("--cpu-threads", type=int, default=1)
    p.add_argument("--interval", type=duration, default=0.005,
                   help="sys.setswitchinterval (default 5ms)")
    p.add_argument("--cores", type=core_list, default=None,
                   help="a core per thread, server thread first, then the CPU threads "
                        "(wrapping around; one core pins everything there); default: unpinned")
    p.add_argument("--listen", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--warmup", type=duration, default=0.5)
    p.add_argument("--duration", type=duration, default=3.0)
    p.add_argument("--linger", type=duration, default=10.0,
                   help="longest wait for end of input after the window")
    p.add_argument("--request-bytes", type=int, default=64)
    p.add_argument("--recv-bytes", type=int, default=8192)
    p.add_argument("--bulk-mib", type=int, default=10)
    p.add_argument("--time-sends", action="store_true",
                   help="time each echo send (GIL release and re-take included) and report "
                        "how many returned within half a switch interval (a diagnostic: "
                        "it adds two clock reads per request)")
    a = p.parse_args(argv)
    if a.cpu_threads < 0:
        p.error("--cpu-threads must be 0 or more")
    if a.io == "none" and a.cpu_threads == 0:
        p.error("nothing to run: no server and no CPU threads")
    if a.io == "bulk" and a.transport == "udp":
        p.error("bulk runs over tcp only")
    if a.interval <= 0:
        p.error("--interval must be longer than zero")
    if a.request_bytes < 1 or a.recv_bytes < 1 or a.bulk_mib < 1:
        p.error("sizes must be at least 1")
    return a


class Run:
    """State shared by the threads: stop flags, counters, registered threads."""

    def __init__(self, args):
        self.args = args
        self.stop = False
        self.counts = [0] * args.cpu_threads
        self.lock = threading.Lock()
        # tid -> [role, ctx at window start or None, ctx at exit or None]
        self.threads = {}
        self.window = None  # (start, end) once known
        self.server = {"requests": 0, "bytes_in": 0, "bytes_out": 0, "accepted": 0,
                       "dropped_peers": 0, "peer_errors": 0, "transfer_s": None,
                       "receive_s": None, "transfer_bytes": None}
        self.nthreads = 0
        # --time-sends: each echo send's duration in ns, GIL release and re-take included
        self.sends = [] if args.time_sends else None
        # bulk: snapshots at the accept and at the end of the receive
        self.bulk_window = None

    def pin(self, index):
        """Pins the calling thread to its core of --cores (index in spawn order)."""
        cores = self.args.cores
        if cores:
            os.sched_setaffinity(0, {cores[index % len(cores)]})

    def register(self, role):
        tid = threading.get_native_id()
        os_thread_name(threading.current_thread().name)
        with self.lock:
            self.threads[tid] = [role, None, None]
        return tid

    def leave(self, tid):
        c = ctx_of(tid)
        with self.lock:
            self.threads[tid][2] = c


def os_thread_name(name):
    """Names the calling OS thread as gilbench names its own (`cpu-0`, `echo-0`,
    `echo-0.c0`), so that `top -H`, `perf` and /proc show the same roles on both sides.
    Linux only (prctl PR_SET_NAME, 15 bytes); elsewhere, or without ctypes, a no-op."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(15, name.encode()[:15], 0, 0, 0)
    except (ImportError, OSError, AttributeError):
        pass


def ctx_of(tid):
    """(voluntary, involuntary) context switches of thread `tid` of this process."""
    vol = inv = 0
    try:
        with open("/proc/self/task/%d/status" % tid) as f:
            for line in f:
                if line.startswith("voluntary_ctxt_switches:"):
                    vol = int(line.split()[1])
                elif line.startswith("nonvoluntary_ctxt_switches:"):
                    inv = int(line.split()[1])
    except OSError:
        return None
    return (vol, inv)


def cpu_thread(run, i, index):
    run.pin(index)
    run.register("cpu")
    counts = run.counts
    x = i + 1
    while not run.stop:
        for _ in range(CHUNK):
            x = (x * 1103515245 + 12345) & 0xFFFFFFFF
        counts[i] += CHUNK


def sender(run, send):
    """`send` itself, or with --time-sends a wrapper that times each call (GIL release and
    re-take included: the call returns only once this thread holds the GIL again)."""
    if run.sends is None:
        return send
    times = run.sends
    clock = time.perf_counter_ns

    def timed(*args):
        t0 = clock()
        n = send(*args)
        times.append(clock() - t0)
        return n
    return timed


def send_timing(run):
    """The --time-sends summary: how many sends returned within half a switch interval
    (the thread got the GIL back without waiting for a drop request) and their duration."""
    if run.sends is None:
        return None
    half = run.args.interval * 1e9 / 2
    quick = sorted(x for x in run.sends if x < half)
    pct = lambda q: quick[min(len(quick) - 1, int(q * len(quick)))] / 1000 if quick else None
    return {"calls": len(run.sends), "within_half_interval": len(quick),
            "quick_p50_us": pct(0.5), "quick_p90_us": pct(0.9)}


def spawn(target, *args, name=None):
    t = threading.Thread(target=target, args=args, name=name, daemon=True)
    t.start()
    return t


# ---- echo over TCP ----------------------------------------------------------------------

def echo_tcp_threaded(run, lsock):
    run.pin(0)
    tid = run.register("server")
    sel = selectors.DefaultSelector()
    sel.register(lsock, selectors.EVENT_READ)
    k = 0
    while not run.stop:
        if not sel.select(ACCEPT_POLL):
            continue
        try:
            conn, _ = lsock.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            continue
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.setblocking(True)
        run.server["accepted"] += 1
        spawn(handle_conn, run, conn, name="echo-0.c%d" % k)
        k += 1
    run.leave(tid)


def handle_conn(run, conn):
    """A connection's thread: blocking recv, blocking sendall, until the peer closes."""
    tid = run.register("server")
    st = run.server
    sendall = sender(run, conn.sendall)
    try:
        while True:
            data = conn.recv(65536)
            if not data:
                break
            st["bytes_in"] += len(data)
            sendall(data)
            st["bytes_out"] += len(data)
    except OSError:
        st["peer_errors"] += 1
    finally:
        conn.close()
        run.leave(tid)


def echo_tcp_poll(run, lsock):
    run.pin(0)
    tid = run.register("server")
    st = run.server
    sel = selectors.DefaultSelector()
    lsock.setblocking(False)
    sel.register(lsock, selectors.EVENT_READ, None)
    send = sender(run, socket.socket.send)
    pending = {}
    while not run.stop:
        for key, mask in sel.select(POLL_SLICE):
            if key.data is None:
                while True:
                    try:
                        conn, _ = lsock.accept()
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:
                        break
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    conn.setblocking(False)
                    sel.register(conn, selectors.EVENT_READ, b"")
                    st["accepted"] += 1
                continue
            conn = key.fileobj
            out = pending.get(conn, b"")
            close = False
            if mask & selectors.EVENT_READ:
                try:
                    data = conn.recv(65536)
                except (BlockingIOError, InterruptedError):
                    data = None
                except OSError:
                    st["peer_errors"] += 1
                    data, close = None, True
                if data == b"":
                    close = True
                elif data:
                    st["bytes_in"] += len(data)
                    out += data
            while out and not close:
                try:
                    n = send(conn, out)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    st["peer_errors"] += 1
                    close = True
                    break
                st["bytes_out"] += n
                out = out[n:]
            if close:
                pending.pop(conn, None)
                sel.unregister(conn)
                conn.close()
                continue
            had = conn in pending
            if out:
                pending[conn] = out
                if not had:
                    sel.modify(conn, selectors.EVENT_READ | selectors.EVENT_WRITE, b"")
            elif had:
                del pending[conn]
                sel.modify(conn, selectors.EVENT_READ, b"")
    run.leave(tid)


# ---- echo over UDP ----------------------------------------------------------------------

def echo_udp_threaded(run, sock):
    run.pin(0)
    tid = run.register("server")
    st = run.server
    sock.setblocking(True)
    while not run.stop:
        try:
            data, peer = sock.recvfrom(65536)
        except OSError:
            st["peer_errors"] += 1
            continue
        st["bytes_in"] += len(data)
        try:
            st["bytes_out"] += sock.sendto(data, peer)
        except OSError:
            st["peer_errors"] += 1
    run.leave(tid)


def echo_udp_poll(run, sock):
    run.pin(0)
    tid = run.register("server")
    st = run.server
    sock.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ)
    while not run.stop:
        if not sel.select(POLL_SLICE):
            continue
        while True:
            try:
                data, peer = sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                st["peer_errors"] += 1
                continue
            st["bytes_in"] += len(data)
            try:
                st["bytes_out"] += sock.sendto(data, peer)
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                st["peer_errors"] += 1
    run.leave(tid)


# ---- bulk -------------------------------------------------------------------------------

def bulk(run, lsock):
    run.pin(0)
    tid = run.register("server")
    st = run.server
    a = run.args
    total = a.bulk_mib << 20
    poll = a.server == "poll"
    sel = selectors.DefaultSelector()
    sel.register(lsock, selectors.EVENT_READ)
    conn = None
    while conn is None and not run.stop:
        if sel.select(ACCEPT_POLL if not poll else POLL_SLICE):
            try:
                conn, _ = lsock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                pass
    if conn is None:
        run.leave(tid)
        return
    st["accepted"] = 1
    st["transfer_bytes"] = total
    s0 = snapshot(run)
    buf = bytearray(a.recv_bytes)
    view = memoryview(buf)
    got = 0
    first = None
    if poll:
        conn.setblocking(False)
        csel = selectors.DefaultSelector()
        csel.register(conn, selectors.EVENT_READ)
    else:
        conn.setblocking(True)
    try:
        while got < total and not run.stop:
            if poll and not csel.select(POLL_SLICE):
                continue
            try:
                n = conn.recv_into(view[: min(a.recv_bytes, total - got)])
            except (BlockingIOError, InterruptedError):
                continue
            if n == 0:
                break
            if first is None:
                first = time.perf_counter()
            got += n
            st["bytes_in"] = got
            st["requests"] += 1
    except OSError:
        st["peer_errors"] += 1
    end = time.perf_counter()
    st["bytes_in"] = got
    if first is not None:
        # From the first byte to the end of the receive: the last byte, or the sender's
        # close when it stopped first.
        st["receive_s"] = end - first
        if got >= total:
            st["transfer_s"] = end - first
    run.bulk_window = (s0, snapshot(run))
    conn.close()
    run.leave(tid)


# ---- measuring --------------------------------------------------------------------------

def snapshot(run):
    """Counters and every live thread's context switches, now."""
    now = time.perf_counter()
    counts = list(run.counts)
    with run.lock:
        tids = list(run.threads)
    ctx = {tid: ctx_of(tid) for tid in tids}
    return now, counts, ctx


def wait_for_eof(limit):
    """Reads standard input until end of file, for at most `limit` seconds."""
    deadline = time.perf_counter() + limit
    while True:
        left = deadline - time.perf_counter()
        if left <= 0:
            return
        try:
            ready, _, _ = select.select([0], [], [], left)
            if ready and not os.read(0, 65536):
                return
        except (OSError, ValueError):
            # No usable standard input: wait out the limit.
            time.sleep(left)
            return


def machine():
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "usable_cores": sorted(os.sched_getaffinity(0)),
        "cpu_model": model,
        "platform": platform.platform(),
    }


def main(argv):
    a = parse_args(argv)
    sys.setswitchinterval(a.interval)
    run = Run(a)
    family = socket.AF_INET6 if ":" in a.listen else socket.AF_INET
    server = None
    lsock = None
    if a.io != "none":
        if a.transport == "udp":
            lsock = socket.socket(family, socket.SOCK_DGRAM)
            lsock.bind((a.listen, a.port))
            server = echo_udp_threaded if a.server == "threaded" else echo_udp_poll
        else:
            lsock = socket.socket(family, socket.SOCK_STREAM)
            lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            lsock.bind((a.listen, a.port))
            lsock.listen(128)
            if a.io == "bulk":
                server = bulk
            else:
                server = echo_tcp_threaded if a.server == "threaded" else echo_tcp_poll
    io_threads = 1 if server else 0
    for i in range(a.cpu_threads):
        spawn(cpu_thread, run, i, io_threads + i, name="cpu-%d" % i)
    server_thread = None
    if server:
        server_thread = spawn(server, run, lsock, name="bulk-0" if a.io == "bulk" else "echo-0")
        host, port = lsock.getsockname()[:2]
        shown = "[%s]:%d" % (host, port) if family == socket.AF_INET6 else "%s:%d" % (host, port)
        kind = "tcp (bulk)" if a.io == "bulk" else a.transport
        print("listening on %s %s" % (kind, shown), flush=True)
    else:
        print("ready", flush=True)
    t0 = time.perf_counter()
    if a.io == "bulk" and server_thread is not None:
        # The transfer is measured whole: its window is the receiver's, from the accept to
        # the end of the receive. It ends complete, or when the sender stops and closes.
        server_thread.join(a.warmup + a.duration + a.linger)
        wait_for_eof(a.linger)
        run.stop = True
        s0, s1 = run.bulk_window or (snapshot(run),) * 2
        req0 = req1 = 0
        exited = {}
    else:
        time.sleep(a.warmup)
        s0 = snapshot(run)
        req0 = run.server["bytes_in"]
        time.sleep(max(0.0, t0 + a.warmup + a.duration - time.perf_counter()))
        s1 = snapshot(run)
        req1 = run.server["bytes_in"]
        with run.lock:
            exited = {tid: v[2] for tid, v in run.threads.items() if v[2] is not None}
        # Keep serving until the client is done: end of input, or --linger.
        wait_for_eof(a.linger)
        run.stop = True
    with run.lock:
        roles = {tid: v[0] for tid, v in run.threads.items()}
    ctx = {}
    for tid, role in roles.items():
        end = s1[2].get(tid) or exited.get(tid)
        if end is None:
            continue  # started after the window
        start = s0[2].get(tid) or (0, 0)
        acc = ctx.setdefault(role, [0, 0])
        acc[0] += max(0, end[0] - start[0])
        acc[1] += max(0, end[1] - start[1])
    window = s1[0] - s0[0]
    iters = [b - c for b, c in zip(s1[1], s0[1])]
    total = [sum(v[i] for v in ctx.values()) for i in (0, 1)]
    out = {
        "twin": VERSION,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "gil_enabled": getattr(sys, "_is_gil_enabled", lambda: True)(),
        "switchinterval_s": sys.getswitchinterval(),
        "io": a.io,
        "server": a.server,
        "transport": a.transport,
        "cores": a.cores,
        "window_s": window,
        "cpu": {
            "threads": a.cpu_threads,
            "iterations": sum(iters),
            "iterations_per_sec": sum(iters) / window if window > 0 else 0.0,
            "per_thread": [i / window if window > 0 else 0.0 for i in iters],
        },
        "ctx_switches": {
            "cpu": {"voluntary": ctx.get("cpu", [0, 0])[0],
                    "involuntary": ctx.get("cpu", [0, 0])[1]},
            "server": {"voluntary": ctx.get("server", [0, 0])[0],
                       "involuntary": ctx.get("server", [0, 0])[1]},
            "total": {"voluntary": total[0], "involuntary": total[1]},
        },
        "send_timing": send_timing(run),
        "server": dict(run.server, requests_in_window=(req1 - req0) // a.request_bytes
                       if a.io == "echo" else None),
        "machine": machine(),
    }
    if a.io == "echo":
        out["server"]["requests"] = run.server["bytes_in"] // a.request_bytes
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    # Daemon threads may still sit in blocking socket calls: leave without finalizing them.
    os._exit(code)
