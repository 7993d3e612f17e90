"""Shared helpers for the sandbox integration tests (test_sandbox_*.py).

Runs `codebot exec` and parses its --json events, speaks the sandboxd protocol directly
(docs/sandbox-protocol.md) for ops the CLI does not expose, starts and stops a private
service with its own socket and environment, looks at host processes, and runs the cases
of a test file: one `PASS: name` / `FAIL: name (reason)` line each, exit 1 if any failed.

Every wait is bounded: subprocesses get timeouts, sockets get timeouts, and each case
runs under an alarm so a hang becomes a FAIL instead of a stuck suite.
Python 3 stdlib only.
"""
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import uuid

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("CODEBOT_BIN") or os.path.join(ROOT, "build", "codebot")
if not os.environ.get("CODEBOT_SANDBOX_SOCKET"):
    # Run by hand: keep off anybody else's service.
    os.makedirs("/tmp/sbtests", exist_ok=True)
    os.environ["CODEBOT_SANDBOX_SOCKET"] = "/tmp/sbtests/sandboxd.sock"
SOCKET = os.environ["CODEBOT_SANDBOX_SOCKET"]
RUN_ID = uuid.uuid4().hex[:8]


def uid(prefix="x"):
    return "%s-%s-%s" % (prefix, RUN_ID, uuid.uuid4().hex[:6])


# --------------------------------------------------------------------------- exec


class Run:
    """The outcome of one `codebot exec` call."""

    def __init__(self, rc, raw_out, raw_err, as_json, timed_out=False):
        self.rc = rc
        self.raw_out = raw_out
        self.raw_err = raw_err
        self.timed_out = timed_out
        self.events = []
        self.bad_lines = []
        if as_json:
            for line in raw_out.split(b"\n"):
                if not line.strip():
                    continue
                try:
                    ev = json.loads(line.decode("utf-8"))
                    if not isinstance(ev, dict):
                        raise ValueError("not an object")
                    self.events.append(ev)
                except (ValueError, UnicodeDecodeError):
                    self.bad_lines.append(line[:200])

    @staticmethod
    def kind(ev):
        return ev.get("ev", ev.get("type"))

    def of(self, kind):
        return [e for e in self.events if self.kind(e) == kind]

    @property
    def out(self):
        if self.events or self.bad_lines:
            return "".join(e.get("text", "") for e in self.of("stdout"))
        return self.raw_out.decode("utf-8", "replace")

    @property
    def err(self):
        if self.events or self.bad_lines:
            return "".join(e.get("text", "") for e in self.of("stderr"))
        return self.raw_err.decode("utf-8", "replace")

    @property
    def stderr_text(self):
        return self.raw_err.decode("utf-8", "replace")

    @property
    def end(self):
        ends = self.of("end")
        return ends[-1] if ends else {}

    @property
    def start(self):
        s = self.of("start")
        return s[0] if s else {}

    @property
    def status(self):
        return self.end.get("status")

    @property
    def ok(self):
        return self.end.get("ok") is True

    @property
    def results(self):
        return self.of("result")

    @property
    def errors(self):
        return self.of("error")

    @property
    def files(self):
        return self.of("file")

    def result_text(self):
        return "".join(r.get("data", "") for r in self.results if r.get("mime") == "text/plain")

    def describe(self):
        """One line for a failure reason."""
        return "rc=%s status=%s msg=%r out=%r err=%r stderr=%r%s" % (
            self.rc, self.status, self.end.get("message"), self.out[-150:], self.err[-150:],
            self.stderr_text[-200:], " TIMED-OUT" if self.timed_out else "")


def exec_(session, code, lang=None, timeout=None, as_json=True, env=None, socket_path=None,
          wall=90, extra_args=()):
    """Runs CODE in SESSION through `codebot exec`. WALL bounds the whole call (seconds)."""
    args = [BIN, "exec", "--session", session]
    if lang:
        args += ["--lang", lang]
    if timeout is not None:
        args += ["--timeout", str(timeout)]
    if as_json:
        args.append("--json")
    args += list(extra_args)
    e = dict(os.environ)
    if socket_path:
        e["CODEBOT_SANDBOX_SOCKET"] = socket_path
    if env:
        e.update(env)
    data = code.encode("utf-8") if isinstance(code, str) else code
    p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=e, start_new_session=True)
    try:
        out, err = p.communicate(data, timeout=wall)
        return Run(p.returncode, out, err, as_json)
    except subprocess.TimeoutExpired:
        kill_group(p)
        out, err = p.communicate()
        return Run(None, out, err, as_json, timed_out=True)
    except BaseException:
        kill_group(p)
        p.wait()
        raise


def jprobe(run, tag="@@J "):
    """The JSON a probe printed on a line starting with TAG (the last one), or None."""
    for line in reversed(run.out.splitlines()):
        if line.startswith(tag):
            try:
                return json.loads(line[len(tag):])
            except ValueError:
                return None
    return None


def kill_group(p):
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except OSError:
        pass


def cli(*args, socket_path=None, env=None, wall=30):
    """`codebot ARGS...`; returns (rc, stdout text, stderr text)."""
    e = dict(os.environ)
    if socket_path:
        e["CODEBOT_SANDBOX_SOCKET"] = socket_path
    if env:
        e.update(env)
    try:
        p = subprocess.run([BIN] + list(args), stdin=subprocess.DEVNULL, capture_output=True,
                           env=e, timeout=wall)
    except subprocess.TimeoutExpired:
        return None, "", "timed out after %ss" % wall
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


# ----------------------------------------------------------------------- protocol


def request(obj, socket_path=None, timeout=30, raw=None, half_close=False):
    """One request line; returns the list of answer lines parsed as JSON (a `run` answers
    many). RAW (bytes) is sent instead of OBJ when given; HALF_CLOSE shuts our side after
    sending. Raises OSError when unreachable."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(socket_path or SOCKET)
        s.sendall(raw if raw is not None else (json.dumps(obj) + "\n").encode())
        if half_close:
            s.shutdown(socket.SHUT_WR)
        buf = b""
        deadline = time.time() + timeout
        while time.time() < deadline:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            buf += chunk
    finally:
        s.close()
    out = []
    for line in buf.split(b"\n"):
        if line.strip():
            try:
                out.append(json.loads(line.decode("utf-8")))
            except (ValueError, UnicodeDecodeError):
                out.append({"unparsable": line[:200].decode("utf-8", "replace")})
    return out


def request1(obj, socket_path=None, timeout=30):
    ans = request(obj, socket_path, timeout)
    if not ans:
        raise AssertionError("no answer to %s" % obj.get("op"))
    return ans[0]


def ping(socket_path=None, timeout=5):
    try:
        return request1({"op": "ping"}, socket_path, timeout).get("ok") is True
    except (OSError, ValueError, AssertionError):
        return False


def sandboxes(socket_path=None):
    return request1({"op": "ls"}, socket_path).get("sandboxes", [])


def sandbox_of(session, socket_path=None):
    for sb in sandboxes(socket_path):
        if sb.get("session") == session:
            return sb
    return None


def kill_session(session, socket_path=None):
    try:
        request1({"op": "kill", "session": session}, socket_path, timeout=15)
    except (OSError, ValueError, AssertionError):
        pass


def get_file(session, path, socket_path=None):
    return request1({"op": "get_file", "session": session, "path": path}, socket_path)


def put_file(session, path, data, socket_path=None):
    return request1({"op": "put_file", "session": session, "path": path,
                     "data": base64.b64encode(data).decode()}, socket_path)


# ------------------------------------------------------------------ private service


class Service:
    """A private `codebot sandboxd` on its own socket with ENV added to its environment."""

    def __init__(self, env=None, tag="svc"):
        self.dir = tempfile.mkdtemp(prefix="sbt-%s-" % tag, dir="/tmp")
        self.socket = os.path.join(self.dir, "sandboxd.sock")
        self.var = os.path.join(self.dir, "var")
        os.makedirs(self.var)
        self.env = dict(os.environ)
        self.env["CODEBOT_SANDBOX_SOCKET"] = self.socket
        self.env["CODEBOT_VAR"] = self.var
        self.env.update(env or {})
        self.proc = None
        self.log_path = os.path.join(self.dir, "sandboxd.log")

    def start(self, wait=30):
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([BIN, "sandboxd"], stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=log, env=self.env, start_new_session=True)
        log.close()
        deadline = time.time() + wait
        while time.time() < deadline:
            if ping(self.socket, timeout=2):
                return self
            if self.proc.poll() not in (None, 0):
                break
            time.sleep(0.1)
        self.stop()
        raise AssertionError("private sandboxd did not answer ping: %s" % self.log_tail())

    def log_tail(self, n=300):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")[-n:].replace("\n", " | ")
        except OSError:
            return ""

    def exec_(self, session, code, **kw):
        kw["socket_path"] = self.socket
        env = dict(kw.pop("env", None) or {})
        kw["env"] = env
        return exec_(session, code, **kw)

    def cli(self, *args, **kw):
        return cli(*args, socket_path=self.socket, **kw)

    def ping(self):
        return ping(self.socket)

    def descendants(self):
        return descendants(self.proc.pid) if self.proc else []

    def stop(self, wait=20):
        """Asks the service to shut down; SIGKILLs it when it does not. Returns True when
        it exited on its own."""
        if not self.proc:
            return True
        if TERMINATING:  # a few seconds before SIGKILL: be quick
            wait = 2
        clean = False
        try:
            request({"op": "shutdown"}, self.socket, timeout=min(10, wait))
        except (OSError, ValueError):
            pass
        try:
            self.proc.wait(timeout=wait)
            clean = True
        except subprocess.TimeoutExpired:
            kill_group(self.proc)
            self.proc.wait()
        # A service that daemonized itself answers ping until the shutdown lands.
        deadline = time.time() + wait
        while time.time() < deadline and ping(self.socket, timeout=1):
            time.sleep(0.2)
        self.proc = None
        return clean

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------- host processes


def proc_info(pid):
    """(ppid, uid, start_time, cmdline) of a host process, or None when it is gone."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            stat = f.read().decode("utf-8", "replace")
        rest = stat[stat.rindex(")") + 2:].split()
        ppid, start = int(rest[1]), int(rest[19])
        state = rest[0]
        with open("/proc/%d/status" % pid) as f:
            uidline = [l for l in f if l.startswith("Uid:")][0]
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
        return {"pid": pid, "ppid": ppid, "uid": int(uidline.split()[1]), "start": start,
                "cmd": cmd, "state": state}
    except (OSError, ValueError, IndexError):
        return None


def host_procs():
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            info = proc_info(int(name))
            if info:
                out.append(info)
    return out


def alive(info):
    """True while the process INFO (from proc_info) still runs (same start time, not a
    zombie)."""
    now = proc_info(info["pid"])
    return bool(now and now["start"] == info["start"] and now["state"] != "Z")


def procs_with(marker):
    """Live host processes whose command line contains MARKER (never this process)."""
    me = os.getpid()
    return [p for p in host_procs()
            if marker in p["cmd"] and p["pid"] != me and p["state"] != "Z"]


def descendants(pid):
    procs = host_procs()
    kids = {}
    for p in procs:
        kids.setdefault(p["ppid"], []).append(p)
    out, todo = [], [pid]
    while todo:
        for p in kids.get(todo.pop(), []):
            out.append(p)
            todo.append(p["pid"])
    return out


def wait_until(pred, timeout, step=0.2):
    deadline = time.time() + timeout
    while True:
        v = pred()
        if v or time.time() >= deadline:
            return v
        time.sleep(step)


class HostSleeper:
    """A host process the sandbox must not be able to touch."""

    def __init__(self):
        self.marker = uid("host-sleeper")
        self.proc = subprocess.Popen(["/bin/sh", "-c", "sleep 300", self.marker],
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        time.sleep(0.05)
        self.info = proc_info(self.proc.pid)

    def alive(self):
        return self.proc.poll() is None and self.info is not None and alive(self.info)

    def stop(self):
        kill_group(self.proc)
        self.proc.wait()


def host_ok():
    """The host can still fork and run a program."""
    try:
        return subprocess.run(["/bin/true"], timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


# --------------------------------------------------------------------- test cases

CASES = []
TERMINATING = False
SESSIONS = []  # (name, socket) made during the current case; killed after it


def session(tag, socket_path=None):
    """A session name unique to this run, killed when the case ends."""
    name = uid(tag)
    SESSIONS.append((name, socket_path))
    return name


def case(timeout=120):
    def deco(fn):
        CASES.append((fn.__name__, fn, timeout))
        return fn
    return deco


class CaseTimeout(Exception):
    pass


def check(cond, reason):
    if not cond:
        raise AssertionError(reason)


def one_line(s, n=400):
    s = " ".join(str(s).split())
    return s if len(s) <= n else s[:n] + "..."


def main(setup=None, teardown=None):
    """Runs the registered cases (or those named on the command line)."""
    wanted = set(sys.argv[1:])
    failed = 0
    if not (os.path.isfile(BIN) and os.access(BIN, os.X_OK)):
        print("FAIL: binary (no executable at CODEBOT_BIN=%s)" % BIN)
        return 1

    def on_alarm(signum, frame):
        raise CaseTimeout("case exceeded its time bound")

    def on_term(signum, frame):
        global TERMINATING
        TERMINATING = True
        raise SystemExit("terminated")  # so that teardown stops private services

    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_term)
    # scripts/test.sh kills a test program after CODEBOT_TEST_TIMEOUT (doubled under ASan):
    # stop starting cases early enough to finish and tear down before that.
    budget = int(os.environ.get("CODEBOT_TEST_TIMEOUT", "300"))
    if os.environ.get("CODEBOT_ASAN"):
        budget *= 2
    deadline = time.time() + budget - 45
    ctx = {}
    try:
        if setup:
            try:
                setup(ctx)
            except Exception as e:  # every case depends on it: report and stop
                print("FAIL: setup (%s)" % one_line("%s: %s" % (type(e).__name__, e)))
                return 1
        for name, fn, tmo in CASES:
            if wanted and name not in wanted:
                continue
            t0 = time.time()
            left = int(deadline - t0)
            if left < 5:
                failed += 1
                print("FAIL: %s (not run: the file's time budget is spent)" % name, flush=True)
                continue
            signal.alarm(min(tmo, left))
            try:
                fn(ctx) if fn.__code__.co_argcount else fn()
                signal.alarm(0)
                print("PASS: %s (%.1fs)" % (name, time.time() - t0), flush=True)
            except Exception as e:
                signal.alarm(0)
                failed += 1
                if isinstance(e, AssertionError):
                    reason = str(e)
                else:
                    tb = traceback.extract_tb(e.__traceback__)
                    where = "%s:%d" % (os.path.basename(tb[-1].filename), tb[-1].lineno) \
                        if tb else "?"
                    reason = "%s: %s at %s" % (type(e).__name__, e, where)
                print("FAIL: %s (%s)" % (name, one_line(reason)), flush=True)
            finally:
                while SESSIONS:
                    sname, ssock = SESSIONS.pop()
                    if ssock is None or os.path.exists(ssock):
                        kill_session(sname, ssock)
    finally:
        signal.alarm(0)
        if teardown:
            try:
                teardown(ctx)
            except Exception as e:
                print("teardown: %s" % one_line(e), file=sys.stderr)
    return 1 if failed else 0
