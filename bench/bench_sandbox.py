#!/usr/bin/env python3
"""Sandbox benchmarks: codebot exec against plain CPython measured in the same run.

  (a) warm `print(1)` through `codebot exec` vs `/usr/bin/python3 -c pass`   target <= 1/4
  (b) a brand-new session whose first run imports numpy, pandas, matplotlib.pyplot vs
      `/usr/bin/python3 -c 'import numpy, pandas, matplotlib.pyplot'`      target <= 15 %
  (c) memory of an idle session that imported that stack: USS/PSS of its processes
      (/proc/PID/smaps_rollup) and its cgroup's usage                       target <= 20 MiB
  (d) 8 sessions each running time.sleep(2) at once: wall time              target ~2 s

Medians of many runs. Uses its own service (a private socket), started on first use and shut
down at the end. CODEBOT_BIN names the binary (default build/codebot); BENCH_RUNS scales
the number of runs."""
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

BIN = os.environ.get("CODEBOT_BIN", "build/codebot")
PY = "/usr/bin/python3"
RUNS = int(os.environ.get("BENCH_RUNS", "40"))
HOME = tempfile.mkdtemp(prefix="codebot-bench-")
SOCK = os.path.join(HOME, "sandboxd.sock")
ENV = dict(os.environ, CODEBOT_SANDBOX_SOCKET=SOCK, CODEBOT_VAR=HOME)
STACK = "import numpy, pandas, matplotlib.pyplot"


def timed(argv, stdin=None):
    t0 = time.perf_counter()
    p = subprocess.run(argv, input=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       env=ENV)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (argv, p.returncode, p.stderr.decode()))
    return dt


def request(req):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(SOCK)
    s.sendall((json.dumps(req) + "\n").encode())
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    return [json.loads(line) for line in data.decode().splitlines()]


def exec_cmd(session):
    return [BIN, "exec", "--session", session]


def verdict(ok):
    return "target met" if ok else "target missed"


def ms(x):
    return "%.2f ms" % (x * 1000)


def bench_warm():
    timed(exec_cmd("bench-warm"), b"print(1)\n")  # starts the service and the session
    ex, py = [], []
    for _ in range(RUNS):
        ex.append(timed(exec_cmd("bench-warm"), b"print(1)\n"))
        py.append(timed([PY, "-c", "pass"]))
    e, p = statistics.median(ex), statistics.median(py)
    r = e / p
    print("(a) warm print(1): codebot exec %s, python3 -c pass %s, ratio %.3f (<= 0.25): %s"
          % (ms(e), ms(p), r, verdict(r <= 0.25)))


def bench_new_session():
    n = max(5, RUNS // 4)
    ex, py = [], []
    for i in range(n):
        name = "bench-new-%d" % i
        ex.append(timed(exec_cmd(name), (STACK + "\n").encode()))
        py.append(timed([PY, "-c", STACK]))
        request({"op": "kill", "session": name})
    e, p = statistics.median(ex), statistics.median(py)
    r = e / p
    print("(b) new session importing the data stack: codebot exec %s, python3 %s, "
          "ratio %.3f (<= 0.15): %s" % (ms(e), ms(p), r, verdict(r <= 0.15)))


def descendants(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for tid in os.listdir("/proc/%d/task" % p):
                with open("/proc/%d/task/%s/children" % (p, tid)) as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return out


def rollup(pid):
    vals = {}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[0].endswith(":"):
                vals[parts[0][:-1]] = int(parts[1]) * 1024
    uss = vals.get("Private_Clean", 0) + vals.get("Private_Dirty", 0)
    return uss, vals.get("Pss", 0)


def bench_idle_memory():
    timed(exec_cmd("bench-idle"), (STACK + "\nx = 1\n").encode())
    time.sleep(1)
    ans = request({"op": "stats"})[0]
    sb = [s for s in ans["sandboxes"] if s["session"] == "bench-idle"][0]
    uss = pss = 0
    pids = descendants(sb["pid"])
    for pid in pids:
        u, p = rollup(pid)
        uss += u
        pss += p
    mib = 1024 * 1024
    print("(c) idle session with the data stack: USS %.1f MiB, PSS %.1f MiB over %d "
          "processes, cgroup %.1f MiB (USS <= 20 MiB): %s"
          % (uss / mib, pss / mib, len(pids), sb["mem_bytes"] / mib, verdict(uss <= 20 * mib)))


def bench_concurrent():
    def one(i, out):
        out[i] = timed(exec_cmd("bench-par-%d" % i), b"import time\ntime.sleep(2)\n")

    for fresh in (False, True):
        if fresh:
            for i in range(8):
                request({"op": "kill", "session": "bench-par-%d" % i})
        else:
            for i in range(8):
                timed(exec_cmd("bench-par-%d" % i), b"pass\n")
        res = [0.0] * 8
        threads = [threading.Thread(target=one, args=(i, res)) for i in range(8)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        print("(d) 8 %s sessions running time.sleep(2) at once: wall %.2f s (~2 s, <= 2.5): %s"
              % ("new" if fresh else "warm", wall, verdict(wall <= 2.5)))


def main():
    if not os.access(BIN, os.X_OK):
        sys.exit("bench: no binary at %s (set CODEBOT_BIN)" % BIN)
    try:
        bench_warm()
        bench_new_session()
        bench_idle_memory()
        bench_concurrent()
    finally:
        subprocess.run([BIN, "sandbox", "shutdown"], env=ENV, stdout=subprocess.DEVNULL)
        shutil.rmtree(HOME, ignore_errors=True)


if __name__ == "__main__":
    main()
