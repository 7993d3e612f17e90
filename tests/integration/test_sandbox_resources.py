#!/usr/bin/env python3
"""Resource attacks on the sandbox: memory, processes, threads, disk, files, output floods,
runaway and crashing kernels, signals sent everywhere, processes left behind.

The safe outcome of each: the run fails with a clear status and message, the limit holds at
the configured value, the host and its other processes are untouched, the service and other
sessions keep working, and nothing of a destroyed sandbox stays on the host.

Runs two private services (own sockets) with small limits from the env knobs, so the numbers
asserted are known; both are shut down at the end, the last case checking that the shutdown
leaves no process behind.
"""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sbx  # noqa: E402
from sbx import case, check, session  # noqa: E402

MEM_MB = 256
PIDS = 48
DISK_MB = 32
FILE_MB = 8
FILES = 64
OUT_MAX = 256 * 1024
GRACE_MS = 1500
LIMITS = {
    "CODEBOT_SANDBOX_MEMORY_MB": str(MEM_MB), "CODEBOT_SANDBOX_PIDS": str(PIDS),
    "CODEBOT_SANDBOX_DISK_MB": str(DISK_MB), "CODEBOT_SANDBOX_FILE_MB": str(FILE_MB),
    "CODEBOT_SANDBOX_FILES": str(FILES), "CODEBOT_SANDBOX_OUTPUT_MAX": str(OUT_MAX),
    "CODEBOT_SANDBOX_GRACE_MS": str(GRACE_MS), "CODEBOT_SANDBOX_TIMEOUT_MS": "60000",
}
CPU_S = 3
IDLE_S = 2
LIMITS2 = {"CODEBOT_SANDBOX_CPU_SECONDS": str(CPU_S), "CODEBOT_SANDBOX_IDLE_S": str(IDLE_S),
           "CODEBOT_SANDBOX_TIMEOUT_MS": "3000", "CODEBOT_SANDBOX_GRACE_MS": str(GRACE_MS)}

S = None   # the service with LIMITS
S2 = None  # the service with LIMITS2


def setup(ctx):
    global S, S2
    S = sbx.Service(LIMITS, tag="res")  # assigned first: teardown stops what started
    S.start()
    S2 = sbx.Service(LIMITS2, tag="res2")
    S2.start()
    ctx["sleeper"] = sbx.HostSleeper()


def teardown(ctx):
    for svc in (S, S2):
        if svc:
            svc.cleanup()
    if ctx.get("sleeper"):
        ctx["sleeper"].stop()


def sess(tag, svc=None):
    return session(tag, (svc or S).socket)


def run(svc, name, code, **kw):
    return svc.exec_(name, code, **kw)


def neighbours_fine(svc=None, why=""):
    """The service answers and a fresh session runs code right away."""
    svc = svc or S
    check(svc.ping(), "service stopped answering %s" % why)
    r = run(svc, sess("neighbour", svc), "print(6 * 7)", wall=60)
    check(r.rc == 0 and r.out.strip() == "42", "another session broken %s: %s"
          % (why, r.describe()))
    check(sbx.host_ok(), "host cannot fork %s" % why)


def mentions_memory(r):
    text = " ".join([str(r.end.get("message", "")), r.stderr_text, r.err]).lower()
    return "memory" in text or "oom" in text


def memory_failure(r):
    """The run failed because of the memory limit, said so, and did not succeed."""
    if r.status in ("limit", "crashed"):
        return mentions_memory(r)
    return r.status == "error" and any(e.get("name") == "MemoryError" for e in r.errors)


def fresh_kernel(svc, name, var):
    """The next run in NAME works and no longer has VAR."""
    r = run(svc, name, "print(%r in globals())" % var)
    check(r.rc == 0 and r.out.strip() == "False",
          "the run after the crash did not get a fresh working kernel: " + r.describe())


def state_kept(svc, name, var, value):
    r = run(svc, name, "print(%s)" % var)
    check(r.rc == 0 and r.out.strip() == str(value), "state lost: " + r.describe())
    check(r.end.get("state_lost") is False, "state_lost set on the run after")
    if r.start:
        check(r.start.get("new") is False, "a new sandbox was made after the timeout")


def cgroup_dirs_named(ident, depth=4):
    check(len(ident) >= 6, "sandbox id %r too short to look for its cgroups" % ident)
    found = []
    base = "/sys/fs/cgroup"
    for root, dirs, _ in os.walk(base):
        if root.count("/") - base.count("/") >= depth:
            dirs[:] = []
            continue
        for d in dirs:
            if ident in d:
                found.append(os.path.join(root, d))
    return found


def host_traces(ident, svc):
    """Files under the service's dirs and host mounts that name the sandbox IDENT."""
    found = []
    for root, dirs, files in os.walk(svc.dir):
        found += [os.path.join(root, n) for n in dirs + files if ident in n]
    with open("/proc/self/mountinfo") as f:
        found += [l.strip() for l in f if ident in l]
    return found


# ------------------------------------------------------------------------ memory


@case()
def memory_bomb_at_once():
    a = sess("membomb")
    r0 = run(S, a, "before_bomb = 1")
    check(r0.rc == 0, "setup run failed: " + r0.describe())
    r = run(S, a, "b = b'\\x01' * (%d << 20)\nprint('ALLOCATED', len(b))" % (2 * MEM_MB),
            timeout=60)
    check("ALLOCATED" not in r.out, "allocated %d MB past a %d MB limit" % (2 * MEM_MB, MEM_MB))
    check(memory_failure(r), "not a clear memory failure: " + r.describe())
    check(r.rc in (1, 2), "exit %s" % r.rc)
    check(r.stderr_text.strip() or r.end.get("message"), "no message for a person")
    neighbours_fine(why="after a memory bomb")
    if r.status in ("limit", "crashed"):
        check(r.end.get("state_lost") is True, "kernel died but state_lost is not true")
        fresh_kernel(S, a, "before_bomb")


@case()
def memory_gradual_growth():
    a = sess("memgrow")
    r = run(S, a, '''
import sys
keep = []
for i in range(1, 4 * %d):
    keep.append(b"\\x01" * (1 << 20))
    if i %% 8 == 0:
        print("MB", i, flush=True)
print("SURVIVED")
''' % MEM_MB, timeout=90, wall=120)
    check("SURVIVED" not in r.out, "grew to %d MB under a %d MB limit" % (4 * MEM_MB, MEM_MB))
    mbs = [int(l.split()[1]) for l in r.out.splitlines() if l.startswith("MB ")]
    check(mbs, "no progress printed: " + r.describe())
    check(max(mbs) <= MEM_MB, "held %d MB under a %d MB limit" % (max(mbs), MEM_MB))
    check(memory_failure(r), "not a clear memory failure: " + r.describe())
    neighbours_fine(why="after gradual growth")


@case()
def memory_limit_covers_child_processes():
    a = sess("memchild")
    r = run(S, a, '''
import subprocess, sys
p = subprocess.run([sys.executable, "-c", "b = b'\\\\x01' * (%d << 20); print('CHILD ALLOCATED')"],
                   capture_output=True, text=True)
print("child rc", p.returncode, p.stdout.strip())
''' % (2 * MEM_MB), timeout=60)
    check("CHILD ALLOCATED" not in r.out, "a child process allocated past the session limit")
    neighbours_fine(why="after a child's memory bomb")


@case(timeout=150)
def oom_spares_a_running_neighbour():
    a, b = sess("oom-a"), sess("oom-b")
    result = {}

    def neighbour():
        result["r"] = run(S, b, "import time\nfor i in range(6):\n    print(i, flush=True)\n"
                                "    time.sleep(0.5)\nprint('DONE')", timeout=60)

    t = threading.Thread(target=neighbour)
    t.start()
    time.sleep(0.5)
    bomb = run(S, a, "b = b'\\x01' * (%d << 20)" % (3 * MEM_MB), timeout=60)
    t.join(90)
    r = result.get("r")
    check(r is not None, "neighbour run did not finish")
    check(r.rc == 0 and "DONE" in r.out, "neighbour run hurt by another's OOM: " + r.describe())
    check(bomb.status != "ok", "the bomb run succeeded: " + bomb.describe())


# --------------------------------------------------------------------- processes


@case(timeout=120)
def fork_bomb_bounded(ctx):
    a = sess("forkbomb")
    r = run(S, a, '''
import os, time, errno
made, err = 0, None
for i in range(200):
    try:
        pid = os.fork()
    except OSError as e:
        err = errno.errorcode.get(e.errno, str(e.errno)); break
    if pid == 0:
        time.sleep(30); os._exit(0)
    made += 1
print("@@J " + __import__("json").dumps({"made": made, "err": err}), flush=True)
''', timeout=20, wall=60)
    res = sbx.jprobe(r)
    check(res, "no result: " + r.describe())
    check(res["made"] < PIDS, "forked %d processes under a %d pids limit" % (res["made"], PIDS))
    check(res["err"] == "EAGAIN", "fork failed with %s, not EAGAIN" % res["err"])
    sb = sbx.sandbox_of(a, S.socket)
    check(sb and sb.get("pid"), "session not in ls")
    kids = sbx.descendants(sb["pid"])
    check(len(kids) <= PIDS, "%d host processes under the session" % len(kids))
    code, _, err = S.cli("sandbox", "kill", sb["id"])
    check(code == 0, "sandbox kill failed: %s" % err)
    left = sbx.wait_until(lambda: not [k for k in kids if sbx.alive(k)], 10)
    check(left, "processes of the killed session remain: %s"
          % [k["pid"] for k in kids if sbx.alive(k)][:10])
    neighbours_fine(why="after a fork bomb")
    ctx["pids_limit_holds"] = True


@case(timeout=120)
def fork_bomb_classic_bash(ctx):
    # Only with the limit proven by the bounded bomb: an unbounded one must not hit the host.
    check(ctx.get("pids_limit_holds"), "not run: fork_bomb_bounded did not prove the limit")
    a = sess("bashbomb")
    warm = run(S, a, "echo ready", lang="bash")
    check(warm.rc == 0, "bash session failed: " + warm.describe())
    sb = sbx.sandbox_of(a, S.socket)
    check(sb and sb.get("pid"), "session not in ls")
    peak = [0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], len(sbx.descendants(sb["pid"])))
            time.sleep(0.2)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    r = run(S, a, ":(){ :|:& };:", lang="bash", timeout=5, wall=60)
    time.sleep(3)  # the bomb goes on in the background after the run returns
    done.set()
    t.join(5)
    check(r.rc is not None, "exec hung on a fork bomb")
    check(peak[0] <= PIDS + 2, "%d host processes under the session (limit %d)" % (peak[0], PIDS))
    code, _, err = S.cli("sandbox", "kill", sb["id"])
    check(code == 0, "sandbox kill failed: %s" % err)
    gone = sbx.wait_until(lambda: not sbx.descendants(sb["pid"]) and not sbx.proc_info(sb["pid"]),
                          10)
    check(gone, "processes of the bombed session remain: %d" % len(sbx.descendants(sb["pid"])))
    neighbours_fine(why="after a bash fork bomb")


@case()
def thread_bomb_bounded():
    a = sess("threads")
    r = run(S, a, '''
import threading, json
stop = threading.Event()
made, err = 0, None
for i in range(500):
    try:
        threading.Thread(target=stop.wait, daemon=True).start(); made += 1
    except RuntimeError as e:
        err = str(e); break
stop.set()
print("@@J " + json.dumps({"made": made, "err": err}), flush=True)
''', timeout=30)
    res = sbx.jprobe(r)
    check(res, "no result: " + r.describe())
    check(res["made"] < PIDS, "started %d threads under a %d pids limit" % (res["made"], PIDS))
    check(res["err"], "thread creation never failed")
    again = run(S, a, "import threading; t = threading.Thread(target=print, args=('T',)); "
                      "t.start(); t.join()")
    check(again.rc == 0 and "T" in again.out, "kernel unusable after the thread bomb: "
          + again.describe())


# ------------------------------------------------------------------------ output


def output_checks(r, produced, tail):
    got = len(r.out.encode()) + len(r.err.encode())
    dropped = r.end.get("dropped_bytes")
    check(r.end, "no end event: " + r.describe())
    check(not r.bad_lines, "unparsable event lines: %r" % r.bad_lines[:2])
    check(isinstance(dropped, int) and dropped > 0, "dropped_bytes = %r" % dropped)
    check(got <= 2 * OUT_MAX + 65536, "%d bytes reached the client (cap %d)" % (got, OUT_MAX))
    check(tail in r.out[-4096:], "the tail was not kept")
    check(got + dropped >= produced * 0.99, "received %d + dropped %d < produced %d"
          % (got, dropped, produced))


@case(timeout=180)
def output_flood_capped():
    a = sess("flood")
    tail = sbx.uid("TAIL")
    r = run(S, a, '''
line = "z" * 1023 + "\\n"
chunk = line * 1024
for i in range(50):
    print(chunk, end="")
print(%r)
''' % tail, timeout=120, wall=150)
    output_checks(r, 50 * 1024 * 1024 + len(tail) + 1, tail)
    check(r.rc == 0 and r.status == "ok", "the flooding run did not end ok: rc=%s status=%s"
          % (r.rc, r.status))
    neighbours_fine(why="after an output flood")


@case(timeout=150)
def huge_single_line_capped():
    a = sess("hugeline")
    tail = sbx.uid("END")
    r = run(S, a, 'import sys\nsys.stdout.write("y" * (20 << 20) + %r)\nsys.stdout.flush()'
            % tail, timeout=90, wall=120)
    output_checks(r, (20 << 20) + len(tail), tail)
    neighbours_fine(why="after a 20 MB line")


@case(timeout=150)
def stderr_flood_capped():
    a = sess("errflood")
    tail = sbx.uid("ETAIL")
    r = run(S, a, 'import sys\nfor i in range(10):\n    sys.stderr.write("e" * (1 << 20))\n'
                  'sys.stderr.write(%r)\nsys.stderr.flush()' % tail, timeout=90, wall=120)
    got = len(r.err.encode())
    check(got <= 2 * OUT_MAX + 65536, "%d stderr bytes reached the client" % got)
    check(tail in r.err[-4096:], "the stderr tail was not kept")
    check((r.end.get("dropped_bytes") or 0) > 0, "dropped_bytes not reported")


@case(timeout=120)
def binary_flood_keeps_stream_valid():
    a = sess("binflood")
    r = run(S, a, 'import os, sys\nfor i in range(4):\n    sys.stdout.buffer.write(os.urandom(1 << 20))\n'
                  'sys.stdout.buffer.write(b"\\nBIN-END\\n")\nsys.stdout.flush()', timeout=60)
    check(r.end, "no end event: " + r.describe())
    check(not r.bad_lines, "unparsable event lines: %r" % r.bad_lines[:2])
    check(all(isinstance(e.get("text"), str) for e in r.of("stdout")), "non-text stdout event")
    check("BIN-END" in r.out, "output after binary garbage lost")
    check(r.rc == 0, "run failed: " + r.describe())


# -------------------------------------------------------------------------- disk


def fill_code(directory, chunk_mb=1, limit_mb=4 * DISK_MB):
    return '''
import os, errno, json
d = %r
written, err, n = 0, None, 0
block = b"\\x01" * (%d << 20)
try:
    while written < (%d << 20):
        with open(os.path.join(d, "fill%%04d" %% n), "wb") as f:
            for _ in range(4):
                f.write(block); f.flush(); written += len(block)
        n += 1
except OSError as e:
    err = errno.errorcode.get(e.errno, str(e.errno))
st = os.statvfs(d)
print("@@J " + json.dumps({"written": written, "err": err, "size": st.f_blocks * st.f_frsize}), flush=True)
''' % (directory, chunk_mb, limit_mb)


def disk_fill_case(directory):
    a = sess("fill")
    r = run(S, a, fill_code(directory), timeout=60)
    res = sbx.jprobe(r)
    check(res, "no result: " + r.describe())
    check(res["err"] in ("ENOSPC", "EDQUOT"), "filling %s ended with %s" % (directory, res["err"]))
    check(res["written"] <= DISK_MB * 1.1 * (1 << 20), "wrote %d MB into %s (quota %d MB)"
          % (res["written"] >> 20, directory, DISK_MB))
    check(res["size"] <= DISK_MB * 1.1 * (1 << 20), "%s is %d MB (quota %d MB)"
          % (directory, res["size"] >> 20, DISK_MB))
    neighbours_fine(why="after filling %s" % directory)
    again = run(S, a, '''
import glob, os
for p in glob.glob(os.path.join(%r, "fill*")): os.unlink(p)
open(os.path.join(%r, "after.txt"), "w").write("fine"); print(open(os.path.join(%r, "after.txt")).read())
''' % (directory, directory, directory))
    check(again.rc == 0 and "fine" in again.out, "session unusable after the fill: "
          + again.describe())


@case()
def disk_fill_workdir():
    disk_fill_case(".")


@case()
def disk_fill_tmp():
    disk_fill_case("/tmp")


@case()
def disk_fill_var_tmp():
    disk_fill_case("/var/tmp")


@case()
def shm_fill_bounded():
    a = sess("shmfill")
    r = run(S, a, fill_code("/dev/shm", limit_mb=4 * (MEM_MB + DISK_MB)), timeout=60)
    res = sbx.jprobe(r)
    if res:
        check(res["err"] is not None, "wrote %d MB to /dev/shm without error" % (res["written"] >> 20))
        check(res["written"] <= (MEM_MB + DISK_MB) * (1 << 20), "wrote %d MB to /dev/shm"
              % (res["written"] >> 20))
    else:
        check(memory_failure(r), "filling /dev/shm: neither an error nor a memory limit: "
              + r.describe())
    neighbours_fine(why="after filling /dev/shm")


@case()
def file_size_limit():
    a = sess("fsize")
    r = run(S, a, '''
import errno, json, os
err = None
try:
    with open("big.bin", "wb") as f:
        for i in range(%d):
            f.write(b"\\x01" * (1 << 20)); f.flush()
except OSError as e:
    err = errno.errorcode.get(e.errno, str(e.errno))
print("@@J " + json.dumps({"err": err, "size": os.path.getsize("big.bin")}), flush=True)
os.unlink("big.bin")
''' % (FILE_MB + 2), timeout=30)
    res = sbx.jprobe(r)
    check(res, "no result: " + r.describe())
    check(res["err"] == "EFBIG", "writing past %d MB gave %s" % (FILE_MB, res["err"]))
    check(res["size"] <= FILE_MB << 20, "file grew to %d bytes" % res["size"])


@case()
def open_files_limit():
    a = sess("nofile")
    r = run(S, a, '''
import errno, json
fs, err = [], None
try:
    for i in range(1000):
        fs.append(open("/dev/null"))
except OSError as e:
    err = errno.errorcode.get(e.errno, str(e.errno))
n = len(fs)
for f in fs: f.close()
print("@@J " + json.dumps({"n": n, "err": err}), flush=True)
''', timeout=30)
    res = sbx.jprobe(r)
    check(res, "no result: " + r.describe())
    check(res["err"] == "EMFILE", "opening 1000 files gave %s after %d" % (res["err"], res["n"]))
    check(res["n"] < FILES, "opened %d files under a %d files limit" % (res["n"], FILES))
    again = run(S, a, "print(len(open('/dev/null').name))")
    check(again.rc == 0, "kernel unusable after EMFILE: " + again.describe())


# ------------------------------------------------------------ runaway and crashes


@case()
def infinite_loop_timeout_keeps_state():
    a = sess("loop")
    check(run(S, a, "kept = 41").rc == 0, "setup run failed")
    r = run(S, a, "while True:\n    pass", timeout=2, wall=40)
    check(r.status == "timeout" and r.ok is False, "status %s: %s" % (r.status, r.describe()))
    check(r.rc == 1, "exit %s on a timeout" % r.rc)
    check(r.end.get("state_lost") is False, "state_lost on an interruptible loop")
    check(r.stderr_text.strip(), "no message on stderr")
    state_kept(S, a, "kept", 41)


@case()
def sleep_timeout_keeps_state():
    a = sess("sleep")
    check(run(S, a, "kept = 'still here'").rc == 0, "setup run failed")
    r = run(S, a, "import time\ntime.sleep(100)", timeout=1, wall=40)
    check(r.status == "timeout" and r.ok is False, "status %s: %s" % (r.status, r.describe()))
    check(r.rc == 1, "exit %s on a timeout" % r.rc)
    check((r.end.get("duration_ms") or 0) < 30000, "the sleep was not cut (%s ms)"
          % r.end.get("duration_ms"))
    state_kept(S, a, "kept", "still here")


def unstoppable_case(code):
    a = sess("unstoppable")
    check(run(S, a, "doomed = 1").rc == 0, "setup run failed")
    t0 = time.time()
    r = run(S, a, code, timeout=1, wall=60)
    took = time.time() - t0
    check(r.rc is not None, "exec hung on code that ignores interrupts")
    check(r.status == "killed", "status %s: %s" % (r.status, r.describe()))
    check(r.end.get("state_lost") is True, "state_lost not set after a kill")
    check(r.rc == 1, "exit %s" % r.rc)
    check(took < 30, "took %.0fs to kill (timeout 1s, grace %dms)" % (took, GRACE_MS))
    fresh_kernel(S, a, "doomed")


@case()
def sigint_ignored_gets_killed():
    unstoppable_case("import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                     "while True:\n    pass")


@case()
def keyboardinterrupt_swallowed_gets_killed():
    unstoppable_case("import time\nwhile True:\n    try:\n        time.sleep(10)\n"
                     "    except KeyboardInterrupt:\n        pass")


@case()
def kernel_stopping_itself_gets_killed():
    unstoppable_case("import os, signal\nos.kill(os.getpid(), signal.SIGSTOP)\nprint('resumed')")


@case()
def kernel_closing_its_channel():
    a = sess("ctlclose")
    check(run(S, a, "before = 1").rc == 0, "setup run failed")
    r = run(S, a, "import os, socket, stat\nfor fd in map(int, os.listdir('/proc/self/fd')):\n"
                  "    try:\n        if stat.S_ISSOCK(os.fstat(fd).st_mode): os.close(fd)\n"
                  "    except OSError: pass\nimport time\ntime.sleep(30)", timeout=5, wall=60)
    check(r.rc is not None and r.end, "no end after the kernel closed its channel: "
          + r.describe())
    check(r.status in ("crashed", "killed", "sandbox_error") and r.end.get("state_lost") is True,
          "status %s: %s" % (r.status, r.describe()))
    fresh_kernel(S, a, "before")


def crash_case(code, tag):
    a = sess(tag)
    check(run(S, a, "before_crash = 1").rc == 0, "setup run failed")
    r = run(S, a, code, timeout=30)
    check(r.status == "crashed", "status %s: %s" % (r.status, r.describe()))
    check(r.ok is False and r.rc in (1, 2), "rc=%s ok=%s" % (r.rc, r.ok))
    check(r.end.get("state_lost") is True, "state_lost not set after a crash")
    check(r.stderr_text.strip() or r.end.get("message"), "crash not reported to a person")
    fresh_kernel(S, a, "before_crash")
    neighbours_fine(why="after a kernel crash")


@case()
def segfault_reported_fresh_kernel():
    crash_case("import ctypes\nctypes.string_at(0)", "segv")


@case()
def abort_reported_fresh_kernel():
    crash_case("import os\nos.abort()", "abort")


@case()
def kernel_exit_reported_fresh_kernel():
    crash_case("import os\nos._exit(3)", "exit")


def kill_everything_case(ctx, code, lang=None):
    sl = ctx["sleeper"]
    check(sl.alive(), "host sleeper not running before")
    a = sess("killall")
    check(run(S, a, "echo hi" if lang == "bash" else "print('hi')", lang=lang).rc == 0,
          "setup run failed")
    r = run(S, a, code, lang=lang, timeout=10, wall=40)
    check(r.rc is not None, "exec hung")
    time.sleep(0.5)
    check(sl.alive(), "the host sleeper was killed from the sandbox")
    neighbours_fine(why="after kill -9 -1")
    again = run(S, a, "echo back" if lang == "bash" else "print('back')", lang=lang)
    check(again.rc == 0 and "back" in again.out, "the session did not recover: "
          + again.describe())


@case()
def kill_minus_one_python(ctx):
    kill_everything_case(ctx, "import os, signal\nos.kill(-1, signal.SIGKILL)")


@case()
def kill_minus_one_bash(ctx):
    kill_everything_case(ctx, "kill -9 -1", lang="bash")


@case()
def kill_parent_and_init(ctx):
    kill_everything_case(ctx, "import os, signal\nfor p in (os.getppid(), 1):\n"
                              "    try:\n        os.kill(p, signal.SIGKILL)\n"
                              "    except OSError as e:\n        print(p, e)")


@case()
def closing_output_pipes():
    a = sess("closefd")
    r = run(S, a, "import os\nos.close(1)\nos.close(2)", timeout=10, wall=40)
    check(r.rc is not None and r.end, "no end after closing the output pipes: " + r.describe())
    again = run(S, a, "print('visible')")
    check(again.rc == 0 and "visible" in again.out, "output lost for the next run: "
          + again.describe())
    neighbours_fine(why="after closing output pipes")


@case()
def busy_session_does_not_block_others():
    a, b = sess("busy-a"), sess("busy-b")
    check(run(S, a, "pass").rc == 0 and run(S, b, "pass").rc == 0, "setup runs failed")
    box = {}
    t = threading.Thread(target=lambda: box.update(r=run(S, a, "import time\ntime.sleep(6)\n"
                                                              "print('A done')", timeout=30)))
    t.start()
    time.sleep(0.5)
    rb = run(S, b, "print('B done')", timeout=30)
    a_still_running = t.is_alive()
    t.join(40)
    check(rb.rc == 0 and "B done" in rb.out, "session B failed: " + rb.describe())
    check(a_still_running, "session B waited for session A's run to finish")
    check(box.get("r") and box["r"].rc == 0, "session A failed")


@case()
def background_child_holding_stdout():
    a = sess("bgout")
    r = run(S, a, "import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', 'import time\\n"
                  "for i in range(150):\\n    print(\\'tick\\', i, flush=True)\\n    time.sleep(0.2)'])\n"
                  "print('started')", timeout=60, wall=60)
    check(r.rc == 0 and "started" in r.out, "run failed: " + r.describe())
    check((r.end.get("duration_ms") or 0) < 15000, "the run waited for its background child "
          "(%s ms)" % r.end.get("duration_ms"))
    nxt = run(S, a, "print('next')")
    check(nxt.rc == 0 and "next" in nxt.out and not nxt.bad_lines, "next run: " + nxt.describe())
    sh = sess("bgsh")
    r = run(S, sh, "sleep 30 &\necho done", lang="bash", timeout=60, wall=60)
    check(r.rc == 0 and "done" in r.out and (r.end.get("duration_ms") or 0) < 15000,
          "bash run with a background job: " + r.describe())


@case()
def bash_timeout_keeps_state():
    a = sess("bashto")
    check(run(S, a, "KEPT=five", lang="bash").rc == 0, "setup run failed")
    r = run(S, a, "sleep 100", lang="bash", timeout=1, wall=40)
    check(r.status == "timeout" and r.rc == 1, "status %s: %s" % (r.status, r.describe()))
    nxt = run(S, a, 'echo "$KEPT"', lang="bash")
    check(nxt.rc == 0 and nxt.out.strip() == "five", "bash state lost: " + nxt.describe())


@case()
def bash_ignoring_sigint_gets_killed():
    a = sess("bashtrap")
    check(run(S, a, "DOOMED=1", lang="bash").rc == 0, "setup run failed")
    r = run(S, a, "trap '' INT\nwhile true; do :; done", lang="bash", timeout=1, wall=60)
    check(r.rc is not None, "exec hung")
    check(r.status == "killed" and r.end.get("state_lost") is True,
          "status %s state_lost %s: %s" % (r.status, r.end.get("state_lost"), r.describe()))
    nxt = run(S, a, 'echo "[$DOOMED]"', lang="bash")
    check(nxt.rc == 0 and nxt.out.strip() == "[]", "not a fresh bash: " + nxt.describe())


@case()
def javascript_infinite_loop_stopped():
    a = sess("jsloop")
    first = run(S, a, "var keep = 7;", lang="javascript")
    check(first.rc == 0, "setup run failed: " + first.describe())
    r = run(S, a, "while (true) {}", lang="javascript", timeout=1, wall=60)
    check(r.rc is not None, "exec hung")
    check(r.status in ("timeout", "killed"), "status %s: %s" % (r.status, r.describe()))
    nxt = run(S, a, "console.log(typeof keep === 'undefined' ? 'gone' : keep);", lang="javascript")
    check(nxt.rc == 0, "next run: " + nxt.describe())
    want = "gone" if r.end.get("state_lost") else "7"
    check(nxt.out.strip() == want, "state_lost=%s but the next run printed %r"
          % (r.end.get("state_lost"), nxt.out))


@case()
def concurrent_runs_in_one_session():
    a = sess("samesess")
    check(run(S, a, "pass").rc == 0, "setup run failed")
    box = {}
    t = threading.Thread(target=lambda: box.update(r=run(S, a, "import time\ntime.sleep(2)\n"
                                                              "print('AAA')", timeout=30)))
    t.start()
    time.sleep(0.4)
    rb = run(S, a, "print('BBB')", timeout=30)
    t.join(40)
    ra = box.get("r")
    check(ra is not None and ra.rc == 0 and ra.out.strip() == "AAA", "first run: %s"
          % (ra.describe() if ra else "none"))
    check((rb.rc == 0 and rb.out.strip() == "BBB") or (rb.rc == 2 and rb.stderr_text.strip()),
          "second run: " + rb.describe())
    check(S.ping(), "service died")


@case()
def huge_result_capped():
    a = sess("bigresult")
    r = run(S, a, "s = 'x' * (40 << 20)\ns", timeout=60, wall=120)
    check(r.end, "no end: " + r.describe())
    check(r.status == "ok", "displaying a value broke the run: " + r.describe())
    got = len(r.raw_out)
    check(got <= 2 * OUT_MAX + (1 << 20), "%d bytes of result reached the client (cap %d)"
          % (got, OUT_MAX))
    nxt = run(S, a, "print(len(s))")
    check(nxt.rc == 0 and nxt.out.strip() == str(40 << 20), "state after a big result: "
          + nxt.describe())


@case()
def special_files_in_workdir():
    a = sess("special")
    r = run(S, a, "import os\nos.mkfifo('trap.fifo')\nos.symlink('/dev/zero', 'zero.lnk')\n"
                  "os.symlink('.', 'loop.lnk')\nos.symlink('/proc/self/fd/0', 'stdin.lnk')\n"
                  "print('made')", timeout=20, wall=40)
    check(r.rc == 0 and "made" in r.out, "run with special files: " + r.describe())
    for p in ("trap.fifo", "zero.lnk", "loop.lnk/loop.lnk/trap.fifo", "stdin.lnk"):
        t0 = time.time()
        try:
            ans = sbx.get_file(a, p, S.socket)
        except (OSError, ValueError, AssertionError) as e:
            raise AssertionError("get_file %s: %s" % (p, e))
        check(time.time() - t0 < 10, "get_file %s took %.0fs" % (p, time.time() - t0))
        check(ans.get("ok") is False or len(ans.get("data", "")) < (1 << 20),
              "get_file %s returned %d bytes" % (p, len(ans.get("data", ""))))
    lf = sbx.request1({"op": "list_files", "session": a}, S.socket, timeout=15)
    check(lf.get("ok") is True, "list_files: %s" % lf)
    neighbours_fine(why="after special files")


@case()
def many_files_created():
    a = sess("manyfiles")
    r = run(S, a, "for i in range(20000):\n    open('f%d' % i, 'w').write('x')", timeout=60,
            wall=90)
    check(r.rc == 0 and not r.bad_lines, "run creating 20000 files: " + r.describe())
    check(len(r.raw_out) < 8 << 20, "%d bytes of events for 20000 files" % len(r.raw_out))
    nxt = run(S, a, "import os\nprint(len(os.listdir('.')))")
    check(nxt.rc == 0 and int(nxt.out) >= 20000, "next run: " + nxt.describe())


@case()
def non_utf8_file_name_does_not_wedge_session():
    a = sess("badname")
    r = run(S, a, "open(b'bad\\xff\\xfename.txt', 'w').write('x')\nkept = 1\nprint('made')",
            timeout=20)
    check(r.rc == 0 and "made" in r.out and not r.bad_lines, "run: " + r.describe())
    try:
        lf = sbx.request({"op": "list_files", "session": a}, S.socket, timeout=10)
    except OSError as e:
        lf = "no answer (%s)" % e
    check(isinstance(lf, list) and lf and lf[0].get("ok") is True, "list_files: %s" % lf)
    nxt = run(S, a, "print(kept)", timeout=20, wall=30)
    check(nxt.rc == 0 and nxt.out.strip() == "1", "the session after an odd file name: "
          + nxt.describe())


@case()
def deep_directory_nesting():
    a = sess("deep")
    r = run(S, a, "import os\ntop = os.getcwd()\nfor i in range(1500):\n    os.mkdir('d')\n"
                  "    os.chdir('d')\nopen('leaf.txt', 'w').write('x')\nos.chdir(top)\nkept = 2",
            timeout=60, wall=90)
    check(r.rc == 0 and r.status == "ok" and not r.bad_lines, "run: " + r.describe())
    nxt = run(S, a, "print(kept)", timeout=30, wall=60)
    check(nxt.rc == 0 and nxt.out.strip() == "2", "next run: " + nxt.describe())
    lf = sbx.request1({"op": "list_files", "session": a}, S.socket, timeout=30)
    check(lf.get("ok") is True, "list_files: %s" % str(lf)[:200])


@case()
def client_vanishes_during_flood():
    a = sess("vanish")
    p = sbx.subprocess.Popen([sbx.BIN, "exec", "--session", a, "--json"], stdin=sbx.subprocess.PIPE,
                             stdout=sbx.subprocess.PIPE, stderr=sbx.subprocess.DEVNULL,
                             env=S.env, start_new_session=True)
    try:
        p.stdin.write(b"while True:\n    print('f' * 4000)\n")
        p.stdin.close()
        p.stdout.read(65536)
    finally:
        sbx.kill_group(p)
        p.wait()
    time.sleep(1)
    check(S.proc.poll() is None and S.ping(), "the service died when a client vanished "
          "mid-stream")
    nxt = run(S, a, "print('back')", timeout=20, wall=40)
    check(nxt.rc == 0 and "back" in nxt.out, "the session after its client vanished: "
          + nxt.describe())
    neighbours_fine(why="after a client vanished mid-stream")


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@case()
def client_that_never_reads():
    a = sess("noread")
    check(run(S, a, "pass").rc == 0, "setup run failed")
    before = rss_kb(S.proc.pid)
    s = sbx.socket.socket(sbx.socket.AF_UNIX)
    s.setsockopt(sbx.socket.SOL_SOCKET, sbx.socket.SO_RCVBUF, 4096)
    s.connect(S.socket)
    try:
        s.sendall((sbx.json.dumps({"op": "run", "session": a, "timeout_ms": 30000,
                                   "code": "for i in range(20000):\n    print('n' * 4000)\n"
                                           "r = 'x' * (20 << 20)\nr"}) + "\n").encode())
        time.sleep(8)
        t0 = time.time()
        other = run(S, sess("noread-other"), "print('responsive')", timeout=20, wall=30)
        took = time.time() - t0
        grown = rss_kb(S.proc.pid) - before
    finally:
        s.close()
    check(other.rc == 0 and "responsive" in other.out, "service stalled by a client that "
          "does not read: " + other.describe())
    check(took < 10, "another session's run took %.1fs while a client did not read" % took)
    check(grown < 100 * 1024, "the service grew by %d MB buffering for a client that does "
          "not read" % (grown // 1024))
    check(S.ping(), "service died")


@case()
def workdir_locked_by_code():
    a = sess("lockwd")
    r = run(S, a, "import os\nos.chmod('.', 0)\nprint('locked')", timeout=20)
    check(r.rc == 0, "run: " + r.describe())
    nxt = run(S, a, "print(6 * 7)")
    check(nxt.rc == 0 and nxt.out.strip() == "42", "session unusable after chmod 0 of its "
          "working dir: " + nxt.describe())
    neighbours_fine(why="after a locked working dir")


@case()
def oversized_request_rejected():
    a = sess("hugecode")
    r = run(S, a, "#" + "x" * (70 << 20) + "\nprint(1)", timeout=30, wall=90)
    check(r.rc == 2 and r.stderr_text.strip(), "70 MB of code: " + r.describe())
    neighbours_fine(why="after an oversized request")


# -------------------------------------------------------------------- leftovers


@case()
def killed_sandbox_leaves_no_process():
    a = sess("leftover")
    marker = sbx.uid("bgmark")
    r = run(S, a, '''
import os, signal, subprocess, sys
code = "import signal, time\\nfor s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT): signal.signal(s, signal.SIG_IGN)\\ntime.sleep(300)"
subprocess.Popen([sys.executable, "-c", code, %r])
if os.fork() == 0:  # daemonize: double fork + setsid
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, [sys.executable, "-c", code, %r])
    os._exit(0)
os.wait()
subprocess.Popen(["/bin/sh", "-c", "sleep 300 & sleep 300", %r], start_new_session=True)
print("spawned")
''' % (marker, marker, marker))
    check(r.rc == 0 and "spawned" in r.out, "run failed: " + r.describe())
    procs = sbx.wait_until(lambda: len(sbx.procs_with(marker)) >= 3 and sbx.procs_with(marker),
                           5)
    check(procs, "the background processes are not visible on the host")
    sb = sbx.sandbox_of(a, S.socket)
    check(sb, "session not in ls")
    procs += sbx.descendants(sb["pid"])
    if os.path.exists("/sys/fs/cgroup/pids") or os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        check(cgroup_dirs_named(sb["id"]), "the live sandbox's cgroups are not found on the host "
              "(the check after the kill would prove nothing)")
    code, _, err = S.cli("sandbox", "kill", sb["id"])
    check(code == 0, "sandbox kill: rc %s %s" % (code, err))
    gone = sbx.wait_until(lambda: not [p for p in procs if sbx.alive(p)], 10)
    check(gone, "processes outlived `sandbox kill`: %s"
          % [(p["pid"], p["cmd"][:40]) for p in procs if sbx.alive(p)])
    check(not sbx.proc_info(sb["pid"]) or not sbx.alive(sbx.proc_info(sb["pid"])),
          "the session's init still runs")
    check(sbx.sandbox_of(a, S.socket) is None, "the killed sandbox is still listed")
    cg = sbx.wait_until(lambda: not cgroup_dirs_named(sb["id"]), 5)
    check(cg, "cgroups of the killed sandbox remain: %s" % cgroup_dirs_named(sb["id"]))
    check(not host_traces(sb["id"], S), "host traces of the killed sandbox: %s"
          % host_traces(sb["id"], S)[:3])
    nxt = run(S, a, "print('x' in globals())")
    check(nxt.rc == 0 and nxt.out.strip() == "False", "run after kill: " + nxt.describe())
    if nxt.start:
        check(nxt.start.get("new") is True, "run after kill did not report a new sandbox")


@case()
def default_timeout_from_env():
    a = sess("deftimeout", S2)
    r = run(S2, a, "import time\ntime.sleep(100)", wall=60)
    check(r.status == "timeout", "no --timeout, CODEBOT_SANDBOX_TIMEOUT_MS=3000: status %s: %s"
          % (r.status, r.describe()))


@case()
def cpu_time_limit():
    a = sess("cpu", S2)
    r = run(S2, a, "import time\nwhile True:\n    for i in range(200000): pass\n"
                   "    print('CPU', time.process_time(), flush=True)", timeout=40, wall=80)
    check(r.status in ("crashed", "limit", "killed"),
          "a busy loop ran past %ds of CPU: status %s: %s" % (CPU_S, r.status, r.describe()))
    used = [float(l.split()[1]) for l in r.out.splitlines() if l.startswith("CPU ")]
    check(used, "no progress printed: " + r.describe())
    check(max(used) <= CPU_S + 0.5, "used %.1fs of CPU under a %ds limit" % (max(used), CPU_S))
    nxt = run(S2, a, "print('alive')")
    check(nxt.rc == 0 and "alive" in nxt.out, "run after the CPU kill: " + nxt.describe())


@case()
def cpu_limit_reported_clearly():
    a = sess("cpumsg", S2)
    r = run(S2, a, "while True:\n    pass", timeout=40, wall=80)
    text = " ".join([str(r.end.get("message", "")), r.stderr_text]).lower()
    check(r.ok is False and "cpu" in text, "the CPU limit is not named: status %s message %r"
          % (r.status, r.end.get("message")))


@case()
def idle_sandbox_destroyed():
    a = sess("idle", S2)
    marker = sbx.uid("idlemark")
    r = run(S2, a, '''
import subprocess, sys
idle_var = 1
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", %r])
print("ok")''' % marker)
    check(r.rc == 0, "run failed: " + r.describe())
    procs = sbx.wait_until(lambda: sbx.procs_with(marker), 5)
    check(procs, "background process not visible on the host")
    sb = sbx.sandbox_of(a, S2.socket)
    check(sb, "session not in ls")
    gone = sbx.wait_until(lambda: sbx.sandbox_of(a, S2.socket) is None, IDLE_S + 10)
    check(gone, "sandbox still listed %ds after CODEBOT_SANDBOX_IDLE_S=%d" % (IDLE_S + 10, IDLE_S))
    dead = sbx.wait_until(lambda: not [p for p in procs if sbx.alive(p)], 5)
    check(dead, "processes of the idle sandbox remain")
    check(sbx.wait_until(lambda: not cgroup_dirs_named(sb["id"]), 5),
          "cgroups of the idle sandbox remain: %s" % cgroup_dirs_named(sb["id"]))
    check(not host_traces(sb["id"], S2), "host traces of the idle sandbox: %s"
          % host_traces(sb["id"], S2)[:3])
    nxt = run(S2, a, "print('idle_var' in globals())")
    check(nxt.rc == 0 and nxt.out.strip() == "False", "run after idle: " + nxt.describe())


@case(timeout=90)
def shutdown_leaves_nothing():
    """Last: shuts S down and checks nothing of its sandboxes stays on the host."""
    global S
    marker = sbx.uid("shutmark")
    ids = []
    for i in range(2):
        a = sess("shut%d" % i)
        r = run(S, a, "import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', "
                      "'import time; time.sleep(300)', %r], start_new_session=True)" % marker)
        check(r.rc == 0, "run failed: " + r.describe())
        sb = sbx.sandbox_of(a, S.socket)
        check(sb and sb.get("id"), "session not in ls")
        ids.append(sb["id"])
    procs = sbx.wait_until(lambda: len(sbx.procs_with(marker)) >= 2 and sbx.procs_with(marker), 5)
    check(procs, "background processes not visible on the host")
    tree = S.descendants()
    check(S.stop(), "the service did not exit on shutdown")
    gone = sbx.wait_until(lambda: not [p for p in tree + procs if sbx.alive(p)], 10)
    check(gone, "processes outlived the service: %s"
          % [(p["pid"], p["cmd"][:40]) for p in tree + procs if sbx.alive(p)][:8])
    for ident in ids:
        check(not cgroup_dirs_named(ident), "cgroups remain: %s" % cgroup_dirs_named(ident))
    mounts = open("/proc/self/mountinfo").read()
    check(S.dir not in mounts and not any(i in mounts for i in ids),
          "host mounts of the service's sandboxes remain")


if __name__ == "__main__":
    sys.exit(sbx.main(setup, teardown))
