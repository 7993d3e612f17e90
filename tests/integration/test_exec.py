#!/usr/bin/env python3
"""Functional tests of `codebot exec`, `codebot sandbox ...` and the sandboxd protocol,
through the real binary and a real (private) service with real jails.

Each case prints `PASS: name` or `FAIL: name`; the exit status is non-zero on any failure.
The service runs on a socket of its own under $CODEBOT_VAR, with short grace/idle settings,
and is shut down at the end."""
import base64
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

BIN = os.environ.get("CODEBOT_BIN", "build/codebot")
VAR = os.environ.get("CODEBOT_VAR") or tempfile.mkdtemp(prefix="codebot-test-")
HOME = os.path.join(VAR, "test_exec-%d" % os.getpid())  # runs in parallel stay apart
os.makedirs(HOME, exist_ok=True)
SOCK = os.path.join(HOME, "sandboxd.sock")

ENV = dict(os.environ)
ENV.update({
    "CODEBOT_SANDBOX_SOCKET": SOCK,
    "CODEBOT_VAR": HOME,
    "CODEBOT_SANDBOX_GRACE_MS": "1000",
    "CODEBOT_SANDBOX_OUTPUT_MAX": "100000",
})

CASES = []


def case(fn):
    CASES.append(fn)
    return fn


def run_cases(names):
    failures = 0
    for fn in CASES:
        if names and fn.__name__ not in names:
            continue
        try:
            fn()
            print("PASS: %s" % fn.__name__, flush=True)
        except Exception:
            failures += 1
            print("FAIL: %s" % fn.__name__, flush=True)
            traceback.print_exc(file=sys.stdout)
    return failures


def codebot(*args, code=None, env=None, timeout=60):
    return subprocess.run([BIN, *args], input=code.encode() if code is not None else None,
                          capture_output=True, env=env or ENV, timeout=timeout)


def exec_(session, code, *flags, env=None):
    p = codebot("exec", "--session", session, *flags, code=code, env=env)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def exec_json(session, code, *flags, env=None):
    rc, out, err = exec_(session, code, "--json", *flags, env=env)
    events = [json.loads(line) for line in out.splitlines()]
    return rc, events, err


def text_of(events, stream="stdout"):
    return "".join(e["text"] for e in events if e["ev"] == stream)


def request(req, sock_path=SOCK, keep_open=True):
    """One protocol request; returns the answer lines as objects."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock_path)
    s.sendall((json.dumps(req) + "\n").encode())
    if not keep_open:
        s.shutdown(socket.SHUT_WR)
    data = b""
    while True:
        chunk = s.recv(1 << 16)
        if not chunk:
            break
        data += chunk
    s.close()
    return [json.loads(line) for line in data.decode().splitlines()]


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


# ------------------------------------------------------------------------------ cases


@case
def state_persists_within_a_session():
    rc, out, err = exec_("s1", "x = 41\n")
    check(rc == 0, "rc %d, stderr %r" % (rc, err))
    rc, out, err = exec_("s1", "print(x + 1)\n")
    check(rc == 0 and out == "42\n", "rc %d out %r err %r" % (rc, out, err))


@case
def sessions_are_separate():
    exec_("s1", "only_in_s1 = 1\n")
    rc, out, err = exec_("s2", "print(only_in_s1)\n")
    check(rc == 1, "rc %d" % rc)
    check("NameError: name 'only_in_s1' is not defined" in err, err)
    check(err.startswith("Traceback (most recent call last):"), err)


@case
def json_event_shapes():
    rc, ev, err = exec_json("shape", "print('hi')\n1/0\n")
    check(rc == 1, "rc %d" % rc)
    start, end = ev[0], ev[-1]
    check(start["ev"] == "start" and re.fullmatch(r"sb-[0-9a-f]{16}", start["sandbox"]), start)
    check(start["new"] is True and start["lang"] == "python", start)
    check(text_of(ev) == "hi\n", ev)
    errs = [e for e in ev if e["ev"] == "error"]
    check(len(errs) == 1 and errs[0]["name"] == "ZeroDivisionError", errs)
    check(errs[0]["value"] == "division by zero" and "1/0" in errs[0]["traceback"], errs)
    for k, t in (("ok", bool), ("status", str), ("duration_ms", int), ("execution_count", int),
                 ("state_lost", bool), ("dropped_bytes", int), ("message", str)):
        check(isinstance(end.get(k), t), "end.%s: %r" % (k, end))
    check(end["ev"] == "end" and end["ok"] is False and end["status"] == "error", end)
    rc, ev, err = exec_json("shape", "2 + 3\n")
    check(rc == 0 and ev[0]["new"] is False and ev[0]["sandbox"] == start["sandbox"], ev)
    res = [e for e in ev if e["ev"] == "result"]
    check(res and res[0]["mime"] == "text/plain" and res[0]["data"] == "5", ev)
    check(ev[-1]["ok"] is True and ev[-1]["status"] == "ok" and "message" not in ev[-1], ev)
    check(ev[-1]["execution_count"] == end["execution_count"] + 1, ev)


@case
def exit_codes():
    check(exec_("codes", "pass\n")[0] == 0, "ok run")
    check(exec_("codes", "raise ValueError('v')\n")[0] == 1, "raising run")
    rc, out, err = exec_("codes", "pass\n", "--lang", "cobol")
    check(rc == 2 and "unknown language" in err, (rc, err))
    p = codebot("exec", code="pass\n")
    check(p.returncode == 2 and b"--session" in p.stderr, p)
    rc, out, err = exec_("codes", "pass\n", "--timeout", "soon")
    check(rc == 2 and "--timeout" in err, (rc, err))
    p = codebot("exec", "--session", "x", "--bogus", code="")
    check(p.returncode == 2 and p.stderr, p)
    bad = dict(ENV, CODEBOT_SANDBOX_SOCKET="/proc/nonexistent/dir/s.sock")
    rc, out, err = exec_("codes", "pass\n", env=bad)
    check(rc == 2 and "unreachable" in err, (rc, err))


@case
def other_languages():
    rc, out, err = exec_("langs", "echo from-bash; echo oops >&2; exit 3\n", "--lang", "bash")
    check("from-bash\n" in out and "oops" in err, (rc, out, err))
    rc, out, err = exec_("langs", "console.log(6 * 7)\n", "--lang", "javascript")
    check(rc == 0 and "42" in out, (rc, out, err))


@case
def timeout_interrupts_and_keeps_state():
    exec_("tmo", "kept = 'yes'\n")
    t0 = time.monotonic()
    rc, ev, err = exec_json("tmo", "import time\nprint('before', flush=True)\ntime.sleep(30)\n",
                            "--timeout", "1")
    took = time.monotonic() - t0
    end = ev[-1]
    check(rc == 1 and end["status"] == "timeout" and end["state_lost"] is False, ev)
    check(took < 10, "took %.1f s" % took)
    check(text_of(ev) == "before\n", ev)
    check(any(e["ev"] == "error" and e["name"] == "KeyboardInterrupt" for e in ev), ev)
    check("timeout" in err, err)
    rc, out, err = exec_("tmo", "print(kept)\n")
    check(rc == 0 and out == "yes\n", (rc, out, err))


@case
def stuck_code_is_killed_after_the_grace_period():
    exec_("stuck", "gone = 1\n")
    code = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(60)\n"
    rc, ev, err = exec_json("stuck", code, "--timeout", "0.5")
    end = ev[-1]
    check(rc == 1 and end["status"] == "killed" and end["state_lost"] is True, ev)
    rc, ev, err = exec_json("stuck", "print('gone' in dir())\n")
    check(rc == 0 and ev[0]["new"] is True and text_of(ev) == "False\n", ev)


@case
def crash_is_reported_and_the_next_run_is_fresh():
    exec_("crash", "v = 1\n")
    rc, ev, err = exec_json("crash", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n")
    end = ev[-1]
    check(rc == 1 and end["status"] == "crashed" and end["state_lost"] is True, ev)
    check(end["message"], end)
    rc, ev, err = exec_json("crash", "print('v' in dir())\n")
    check(rc == 0 and ev[0]["new"] is True and text_of(ev) == "False\n", ev)


@case
def running_out_of_memory_is_a_limit():
    rc, ev, err = exec_json("oom", "keep = 1\nx = bytearray(3 * 1024**3)\n")
    end = ev[-1]
    check(rc == 1, ev)
    if end["status"] == "limit":  # a memory cgroup killed it
        check(end["state_lost"] is True and "out of memory" in end["message"], end)
    else:  # no memory cgroup: the address-space rlimit made the allocation fail
        check(end["status"] == "error" and "MemoryError" in end["message"], end)
    rc, out, err = exec_("oom", "print('still usable')\n")
    check(rc == 0 and out == "still usable\n", (rc, out, err))


@case
def killing_a_busy_sandbox_ends_its_run():
    exec_("victim", "pass\n")
    p = subprocess.Popen([BIN, "exec", "--session", "victim", "--json"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, env=ENV)
    p.stdin.write(b"import time\ntime.sleep(30)\n")
    p.stdin.close()
    time.sleep(0.5)
    check(codebot("sandbox", "kill", "victim").returncode == 0, "kill")
    out = p.stdout.read().decode()
    check(p.wait(10) == 1, "exec exit")
    end = json.loads(out.splitlines()[-1])
    check(end["status"] == "killed" and end["state_lost"] is True, end)


@case
def big_code_and_big_results():
    code = "s = %r\nprint(len(s))\n" % ("y" * (8 << 20))
    rc, out, err = exec_("big", code)
    check(rc == 0 and out == "%d\n" % (8 << 20), (rc, out[:100], err[:300]))
    rc, ev, err = exec_json("big", "s\n")
    res = [e for e in ev if e["ev"] == "result"]
    check(rc == 0 and res and res[0]["data"].startswith("'yyyy"), (rc, err))


@case
def an_event_too_big_for_the_protocol_is_dropped_not_the_session():
    exec_("huge", "keep = 'kept'\n")
    rc, ev, err = exec_json("huge", "raise ValueError('x' * (70 << 20))\n")
    check(rc == 1 and ev[-1]["status"] == "error", ev[-1:])
    check(not [e for e in ev if e["ev"] == "error"], "an error line over 64 MiB")
    check("larger than 64 MiB from the kernel was dropped" in text_of(ev, "stderr"), ev)
    rc, out, err = exec_("huge", "print(keep)\n")
    check(rc == 0 and out == "kept\n", (rc, out, err))


@case
def output_cap_keeps_head_and_tail():
    code = "for i in range(20000):\n    print('line %06d' % i)\nprint('THE END')\n"
    rc, ev, err = exec_json("flood", code)
    end = ev[-1]
    out = text_of(ev)
    total = 20000 * 12 + 8
    check(rc == 0 and end["dropped_bytes"] > 0, end)
    check(out.startswith("line 000000\nline 000001\n"), out[:40])
    check(out.endswith("line 019999\nTHE END\n"), out[-40:])
    marker = "[... %d bytes dropped ...]\n" % end["dropped_bytes"]
    check(marker in out, "no marker %r" % marker)
    # the marker starts a line of its own: the head was cut inside a line
    head, tail = out.split(marker)
    check(head.endswith("\n") and not head[:-1].endswith("\n"), head[-20:])
    check(len(head) - 1 + len(tail) + end["dropped_bytes"] == total, (len(out), end))
    check(len(out) <= 100000 + 65536 + len(marker) + 1, len(out))


@case
def huge_line_without_newline():
    rc, ev, err = exec_json("flood", "import sys\nsys.stdout.write('z' * 3000000)\n")
    check(rc == 0 and ev[-1]["dropped_bytes"] > 0, ev[-1])
    out = text_of(ev)
    check(out.endswith("z" * 1000) and "bytes dropped" in out, out[-100:])


@case
def output_is_valid_utf8():
    code = ("import os, time\nos.write(1, b'bad:\\xff;')\nos.write(1, b'split:\\xc3')\n"
            "time.sleep(0.2)\nos.write(1, b'\\xa9\\n')\n")
    rc, ev, err = exec_json("utf8", code)
    check(rc == 0, ev)
    check(text_of(ev) == "bad:\ufffd;split:\u00e9\n", repr(text_of(ev)))


@case
def output_streams_as_it_arrives():
    code = "import time\nprint('first', flush=True)\ntime.sleep(1.5)\nprint('second')\n"
    p = subprocess.Popen([BIN, "exec", "--session", "stream", "--json"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, env=ENV)
    p.stdin.write(code.encode())
    p.stdin.close()
    t0 = time.monotonic()
    seen = None
    for line in p.stdout:
        e = json.loads(line)
        if e["ev"] == "stdout" and "first" in e["text"]:
            seen = time.monotonic() - t0
    p.wait()
    check(seen is not None and seen < 1.2, "first line after %r s" % seen)


@case
def a_busy_session_does_not_block_others_and_runs_queue_in_order():
    exec_("busy", "order = []\n")
    slow = subprocess.Popen([BIN, "exec", "--session", "busy"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, env=ENV)
    slow.stdin.write(b"import time\ntime.sleep(2)\norder.append('a')\n")
    slow.stdin.close()
    time.sleep(0.3)
    queued = subprocess.Popen([BIN, "exec", "--session", "busy"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, env=ENV)
    queued.stdin.write(b"order.append('b')\nprint(order)\n")
    queued.stdin.close()
    t0 = time.monotonic()
    rc, out, err = exec_("not-busy", "print('quick')\n")
    quick = time.monotonic() - t0
    check(rc == 0 and out == "quick\n" and quick < 1.5, (rc, out, quick))
    check(queued.wait(30) == 0 and slow.wait(30) == 0, "exit codes")
    check(queued.stdout.read() == b"['a', 'b']\n", "queue order")


@case
def sandbox_ls_stats_kill():
    rc, ev, err = exec_json("lsme", "pass\n")
    sbid = ev[0]["sandbox"]
    p = codebot("sandbox", "ls")
    out = p.stdout.decode()
    check(p.returncode == 0 and sbid in out and "lsme" in out, out)
    check(out.splitlines()[0].split()[:3] == ["ID", "SESSION", "PID"], out)
    row = [line for line in out.splitlines() if sbid in line][0]
    pid = int(row.split()[2])
    check(alive(pid), "kernel pid %d not alive" % pid)
    ans = request({"op": "stats"})[0]
    mine = [s for s in ans["sandboxes"] if s["id"] == sbid][0]
    for k in ("id", "session", "pid", "age_s", "idle_s", "mem_bytes", "cpu_ms", "runs", "state"):
        check(k in mine, "stats entry lacks %s" % k)
    check(mine["mem_bytes"] > 0 and mine["runs"] == 1 and mine["state"] == "idle", mine)
    check(ans["totals"]["sandboxes"] == len(ans["sandboxes"]), ans["totals"])
    p = codebot("sandbox", "stats")
    check(p.returncode == 0 and "total:" in p.stdout.decode(), p.stdout)
    p = codebot("sandbox", "kill", "lsme")
    check(p.returncode == 0, p)
    check(sbid not in codebot("sandbox", "ls").stdout.decode(), "still listed")
    deadline = time.monotonic() + 5
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    check(not alive(pid), "kernel survived kill")
    p = codebot("sandbox", "kill", sbid)
    check(p.returncode == 1 and b"no such sandbox" in p.stderr, p)
    check(codebot("sandbox", "frobnicate").returncode == 2, "bad subcommand")


@case
def files_through_the_protocol():
    exec_("files", "pass\n")
    blob = bytes(range(256)) * 10
    ans = request({"op": "put_file", "session": "files", "path": "data/in.bin",
                   "data": base64.b64encode(blob).decode()})
    check(ans == [{"ok": True, "size": len(blob)}], ans)
    rc, out, err = exec_("files", "print(len(open('data/in.bin','rb').read()))\n"
                                  "_ = open('out.txt', 'w').write('made here')\n")
    check(rc == 0 and out == "2560\n", (rc, out, err))
    ans = request({"op": "get_file", "session": "files", "path": "out.txt"})[0]
    check(ans["ok"] and base64.b64decode(ans["data"]) == b"made here" and ans["size"] == 9, ans)
    ans = request({"op": "list_files", "session": "files"})[0]
    paths = {f["path"] for f in ans["files"]}
    check(ans["ok"] and {"data/in.bin", "out.txt"} <= paths, ans)
    ans = request({"op": "get_file", "session": "files", "path": "missing.txt"})[0]
    check(ans["ok"] is False and ans["error"], ans)
    ans = request({"op": "get_file", "session": "files", "path": "../etc/passwd"})[0]
    check(ans["ok"] is False, ans)
    ans = request({"op": "get_file", "session": "no-such-session", "path": "x"})[0]
    check(ans["ok"] is False, ans)


@case
def a_new_client_reconnects_to_the_session():
    """The bot restarts: the service keeps the sandbox; the new bot process finds it by
    session name and the id it stored."""
    rc, ev, err = exec_json("bot-chan", "memory = 'survives'\n")
    sbid = ev[0]["sandbox"]
    ans = request({"op": "run", "session": "bot-chan", "sandbox": sbid,
                   "code": "print(memory)"})
    check(ans[0] == {"ev": "start", "sandbox": sbid, "new": False, "lang": "python"}, ans)
    check(text_of(ans) == "survives\n" and ans[-1]["ok"] is True, ans)
    ans = request({"op": "run", "session": "bot-chan", "sandbox": "sb-0000000000000000",
                   "code": "print(memory)"})
    check(ans[0]["new"] is True and ans[0]["sandbox"] == sbid, ans)


@case
def closing_the_connection_interrupts_the_run():
    rc, ev, err = exec_json("hangup", "state = 'kept'\n")
    check(rc == 0, (ev, err))
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(SOCK)
    s.sendall(b'{"op":"run","session":"hangup","code":"import time\\ntime.sleep(30)"}\n')
    s.recv(4096)
    s.close()
    t0 = time.monotonic()
    rc, out, err = exec_("hangup", "print(state)\n")
    check(rc == 0 and out == "kept\n", (rc, out, err))
    check(time.monotonic() - t0 < 5, "waited for the abandoned run")


@case
def interrupt_request():
    box = {}

    def runner():
        box["ans"] = request({"op": "run", "session": "intr", "code": "import time\n"
                              "time.sleep(30)"})
    exec_("intr", "pass\n")
    t = threading.Thread(target=runner)
    t.start()
    time.sleep(0.5)
    ans = request({"op": "interrupt", "session": "intr"})
    t.join(10)
    check(ans == [{"ok": True, "running": True}], ans)
    check(box["ans"][-1]["status"] == "interrupted", box)
    check(request({"op": "interrupt", "session": "intr"}) == [{"ok": True, "running": False}],
          "idle interrupt")


@case
def malformed_requests_get_an_error():
    for raw in (b"not json\n", b"[1,2]\n", b'{"op":"fly"}\n', b'{"op":"run","code":"1"}\n',
                b'{"op":"run","session":"x","code":"1","lang":"cobol"}\n',
                b'{"op":"run","session":"x","code":1}\n'):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(SOCK)
        s.sendall(raw)
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        s.close()
        ans = json.loads(data)
        check(ans["ok"] is False and ans["error"], (raw, ans))
    check(request({"op": "ping"})[0]["ok"] is True, "service still up")
    check(os.stat(SOCK).st_mode & 0o777 == 0o600, oct(os.stat(SOCK).st_mode))


@case
def a_silent_client_is_dropped():
    check(exec_("silent", "pass\n")[0] == 0, "service up")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(SOCK)
    s.settimeout(20)
    t0 = time.monotonic()
    check(s.recv(100) == b"", "expected the service to hang up")
    took = time.monotonic() - t0
    s.close()
    check(8 < took < 15, "hung up after %.1f s" % took)
    check(request({"op": "ping"})[0]["ok"] is True, "service still up")


@case
def idle_sandboxes_are_destroyed():
    home = os.path.join(HOME, "idle")
    os.makedirs(home, exist_ok=True)
    env = dict(ENV, CODEBOT_SANDBOX_SOCKET=os.path.join(home, "s.sock"), CODEBOT_VAR=home,
               CODEBOT_SANDBOX_IDLE_S="2")
    try:
        rc, ev, err = exec_json("idle", "pass\n", env=env)
        check(rc == 0, (ev, err))
        ls = request({"op": "ls"}, env["CODEBOT_SANDBOX_SOCKET"])[0]["sandboxes"]
        pid = ls[0]["pid"]
        check(alive(pid), "kernel not running")
        deadline = time.monotonic() + 10
        while ls and time.monotonic() < deadline:
            time.sleep(0.2)
            ls = request({"op": "ls"}, env["CODEBOT_SANDBOX_SOCKET"])[0]["sandboxes"]
        check(ls == [], ls)
        check(not alive(pid), "kernel still alive")
    finally:
        codebot("sandbox", "shutdown", env=env)


def zygote_of(service):
    """The service's zygote: its child that is not the init of a pid namespace."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/status" % pid) as f:
                st = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if int(st["PPid"]) == service and b"--zygote" in cmd and len(st["NSpid"].split()) == 1:
            return int(pid)
    return None


@case
def a_dead_zygote_is_restarted_and_sessions_survive():
    check(exec_("zyg", "before = 'alive'\n")[0] == 0, "first run")
    svc = service_pid(SOCK)
    zyg = zygote_of(svc)
    check(zyg, "no zygote under the service %r" % svc)
    os.kill(zyg, signal.SIGKILL)
    rc, out, err = exec_("zyg", "print(before)\n")
    check(rc == 0 and out == "alive\n", (rc, out, err))
    rc, ev, err = exec_json("zyg-new", "print('fresh')\n")
    check(rc == 0 and ev[0]["new"] is True and text_of(ev) == "fresh\n", (ev, err))
    new = zygote_of(svc)
    check(new and new != zyg, "zygote %r after %r" % (new, zyg))


@case
def secrets_in_the_clients_environment_stay_out():
    home = os.path.join(HOME, "secret")
    os.makedirs(home, exist_ok=True)
    env = dict(ENV, CODEBOT_SANDBOX_SOCKET=os.path.join(home, "s.sock"), CODEBOT_VAR=home,
               OPENAI_API_KEY="sk-test-do-not-leak-1234")
    try:
        rc, out, err = exec_("sec", "import os\nprint(sorted(os.environ))\n"
                                    "print(os.environ.get('OPENAI_API_KEY'))\n", env=env)
        check(rc == 0 and out.endswith("None\n") and "sk-test" not in out, (rc, out, err))
        svc = service_pid(env["CODEBOT_SANDBOX_SOCKET"])
        with open("/proc/%d/environ" % svc, "rb") as f:
            environ = f.read()
        check(b"sk-test-do-not-leak" not in environ and b"OPENAI_API_KEY" not in environ,
              "the service inherited the key")
    finally:
        codebot("sandbox", "shutdown", env=env)


@case
def sigterm_and_shutdown_destroy_every_sandbox():
    home = os.path.join(HOME, "term")
    os.makedirs(home, exist_ok=True)
    env = dict(ENV, CODEBOT_SANDBOX_SOCKET=os.path.join(home, "s.sock"), CODEBOT_VAR=home)
    for how in ("sigterm", "shutdown"):
        exec_("a", "pass\n", env=env)
        exec_("b", "pass\n", env=env)
        sock = env["CODEBOT_SANDBOX_SOCKET"]
        pids = [s["pid"] for s in request({"op": "ls"}, sock)[0]["sandboxes"]]
        check(len(pids) == 2 and all(alive(p) for p in pids), pids)
        if how == "sigterm":
            svc = service_pid(sock)
            check(svc, "service pid")
            os.kill(svc, signal.SIGTERM)
        else:
            p = codebot("sandbox", "shutdown", env=env)
            check(p.returncode == 0, p)
        deadline = time.monotonic() + 10
        while (os.path.exists(sock) or any(alive(p) for p in pids)) and \
                time.monotonic() < deadline:
            time.sleep(0.05)
        check(not os.path.exists(sock), "%s: socket left behind" % how)
        check(not any(alive(p) for p in pids), "%s: kernels left behind" % how)


def service_pid(sock_path):
    """The pid of the process listening on SOCK_PATH (from /proc/net/unix and fd links)."""
    inode = None
    with open("/proc/net/unix") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 8 and parts[-1] == sock_path:
                inode = parts[6]
    if inode is None:
        return None
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir("/proc/%s/fd" % pid)
        except OSError:
            continue
        for fd in fds:
            try:  # descriptors come and go while we look
                if os.readlink("/proc/%s/fd/%s" % (pid, fd)) == "socket:[%s]" % inode:
                    return int(pid)
            except OSError:
                pass
    return None


def main():
    codebot("sandbox", "shutdown")
    try:
        failures = run_cases(sys.argv[1:])
    finally:
        codebot("sandbox", "shutdown")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
