"""One client run of the mailwire benchmark with Python's smtplib.

Started by the bench harness (see bench/README.md) as Debian's /usr/bin/python3;
prints one JSON line like the Go clients: sent, elapsed_ns, err. With
--conns N > 1 it forks N processes, one connection each (the harness reads the
peak RSS of the largest and the CPU time of all from rusage).
"""
import argparse
import json
import os
import smtplib
import sys
import time


def vm_hwm():
    """Peak RSS of this process in bytes (VmHWM), 0 if unknown."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run(host, port, n, rcpts, msg):
    s = smtplib.SMTP(host, port, local_hostname="bench.example")
    s.ehlo("bench.example")
    sent = 0
    for _ in range(n):
        refused = s.sendmail("sender@bench.example", rcpts, msg)
        if refused:
            raise RuntimeError("refused: %r" % (refused,))
        sent += 1
    s.quit()
    return sent


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", required=True)
    ap.add_argument("--n", type=int, default=1)
    ap.add_argument("--rcpts", type=int, default=1)
    ap.add_argument("--conns", type=int, default=1)
    ap.add_argument("--eml", required=True)
    a = ap.parse_args()
    host, port = a.addr.rsplit(":", 1)
    rcpts = ["rcpt%d@bench.example" % (i + 1) for i in range(a.rcpts)]
    with open(a.eml, "rb") as f:
        msg = f.read()  # smtplib.sendmail takes the whole message
    start = time.perf_counter_ns()
    out = {"sent": 0, "elapsed_ns": 0}
    try:
        if a.conns <= 1:
            out["sent"] = run(host, int(port), a.n, rcpts, msg)
        else:
            pids = []
            rfd, wfd = os.pipe()
            for i in range(a.conns):
                k = a.n // a.conns + (1 if i < a.n % a.conns else 0)
                pid = os.fork()
                if pid == 0:
                    os.close(rfd)
                    code = 0
                    try:
                        run(host, int(port), k, rcpts, msg)
                    except Exception as e:  # report through the exit code
                        sys.stderr.write("smtplib child: %r\n" % (e,))
                        code = 1
                    os.write(wfd, b"%d\n" % vm_hwm())
                    os._exit(code)
                pids.append((pid, k))
            os.close(wfd)
            with os.fdopen(rfd, "rb") as r:
                peaks = [int(x) for x in r.read().split()]
            out["peak_rss"] = max(peaks + [0])
            failed = 0
            for pid, k in pids:
                _, status = os.waitpid(pid, 0)
                if os.waitstatus_to_exitcode(status) == 0:
                    out["sent"] += k
                else:
                    failed += 1
            if failed:
                out["err"] = "%d of %d processes failed" % (failed, a.conns)
    except Exception as e:
        out["err"] = repr(e)
    out["elapsed_ns"] = time.perf_counter_ns() - start
    out["peak_rss"] = max(out.get("peak_rss", 0), vm_hwm())
    print(json.dumps(out))


if __name__ == "__main__":
    main()
