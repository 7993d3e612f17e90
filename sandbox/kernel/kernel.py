"""codebot sandbox kernel: the zygote and the session kernels (the other side of sandbox/jail.h).

Run by jail.c as `/usr/bin/python3 -I /kernel.py --zygote` inside the jail's root. The zygote
imports the data stack once, then forks one session per spawn request: A unshares the
session's namespaces and forks B (the session's init, pid 1), B waits for the service's go
byte, sets up its mounts and forks C, the kernel that drops privileges and runs code.
Everything here runs with the standard library only; ctypes reaches the few system calls
Python 3.11 lacks (unshare, mount, sethostname, prctl).
"""
import ast
import base64
import ctypes
import errno
import fcntl
import gc
import io
import json
import linecache
import os
import re
import resource
import select
import signal
import socket
import stat
import struct
import subprocess
import sys
import traceback
import types

WORKDIR = "/home/sandbox"
# Each cell compiles under its own name, so that a traceback through a function defined in an
# earlier cell shows that cell's lines; tracebacks then call every cell "<cell>".
CELL = "<cell>"
CELL_NAME = "<cell-%d>"
CELL_NAME_RE = re.compile(r"<cell-\d+>")
CLEAN_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": WORKDIR,
    "USER": "sandbox",
    "LOGNAME": "sandbox",
    "LANG": "C.UTF-8",
    "TERM": "dumb",
    "MPLBACKEND": "Agg",
    "MPLCONFIGDIR": "/var/cache/mpl",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "PYTHONUNBUFFERED": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
}
FILE_EVENTS_MAX = 100
RESULT_MAX = 100_000  # characters of a value's repr; the rest is cut
SNAPSHOT_MAX = 5000
GET_FILE_MAX = 32 << 20

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWPID, CLONE_NEWNET = 0x20000000, 0x40000000
CLONE_NEWCGROUP = 0x02000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_MOVE = 32, 8192
MNT_DETACH = 2
PR_SET_SECCOMP, PR_SET_NO_NEW_PRIVS = 22, 38
SECCOMP_MODE_FILTER = 2
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP, IFF_RUNNING = 0x8913, 0x8914, 0x1, 0x40

libc = ctypes.CDLL(None, use_errno=True)
pylibc = ctypes.PyDLL(None, use_errno=True)  # keeps the GIL across the call, as os.fork does
pylibc.syscall.restype = ctypes.c_long
api = ctypes.pythonapi
SYS_CLONE = 56  # x86_64
sys.dont_write_bytecode = True


def check(ret, what):
    if ret != 0:
        e = ctypes.get_errno()
        raise OSError(e, "%s: %s" % (what, os.strerror(e)))


def mount(src, target, fstype, flags, data=None):
    enc = lambda s: s.encode() if s is not None else None
    check(libc.mount(enc(src), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)),
          "mount " + target)


def prctl(op, arg):
    check(libc.prctl(op, ctypes.c_ulong(arg), 0, 0, 0), "prctl %d" % op)


def send_json(fd, obj):
    text = json.dumps(obj, ensure_ascii=False) + "\n"
    try:
        data = text.encode()
    except UnicodeEncodeError:
        # A file name that is not UTF-8 arrives as surrogate escapes: show its bad bytes as
        # U+FFFD rather than send the service a line it cannot parse.
        try:
            data = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace").encode()
        except UnicodeEncodeError:
            data = text.encode("utf-8", "replace")
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except InterruptedError:
            continue
        view = view[n:]


# ---------------------------------------------------------------- zygote


def warm():
    """Imports and exercises the data stack so that every session starts with it in memory."""
    # fc-list (run by matplotlib's font manager at import) needs a writable cache, once.
    os.environ["XDG_CACHE_HOME"] = "/var/cache/mpl"
    import numpy  # noqa: F401
    import pandas  # noqa: F401
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import font_manager
    font_manager.findfont("DejaVu Sans")
    del os.environ["XDG_CACHE_HOME"]
    fig = plt.figure(figsize=(2, 2))
    fig.gca().plot([0, 1], [1, 0])
    fig.gca().set_title("warm")
    fig.savefig(io.BytesIO(), format="png")
    plt.close("all")
    import codeop, pprint, random, math, statistics, datetime, decimal, fractions  # noqa
    import collections, itertools, functools, csv, tempfile, shutil, glob, pathlib  # noqa
    # Sessions must not share a writable cache: freeze it now that it is built.
    try:
        mount(None, "/var/cache/mpl", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV |
              MS_NOEXEC)
    except OSError as e:
        print("kernel: /var/cache/mpl stays writable: %s" % e, file=sys.stderr)


def reap(signum=None, frame=None):
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def zygote_main():
    ctl = socket.socket(fileno=3)
    bpf = b""
    while True:
        chunk = os.read(4, 65536)
        if not chunk:
            break
        bpf += chunk
    os.close(4)
    warm()
    gc.collect()
    gc.freeze()
    signal.signal(signal.SIGCHLD, reap)
    ctl.send(json.dumps({"ev": "ready"}).encode())
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(ctl, 1 << 16, 4)
        except InterruptedError:
            continue
        if not msg:
            return
        answer, gate = zygote_handle(ctl, msg, fds, bpf)
        try:
            ctl.sendmsg([json.dumps(answer).encode()],
                        [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", gate))]
                        if gate is not None else [])
        finally:
            if gate is not None:
                os.close(gate)


def zygote_handle(ctl, msg, fds, bpf):
    seq = None
    try:
        req = json.loads(msg)
        seq = req.get("seq")
        if req.get("op") != "spawn" or len(fds) != 3:
            raise ValueError("expected a spawn request with 3 fds")
        pid, gate = spawn(ctl, req, fds, bpf)
        return {"seq": seq, "ok": True, "pid": pid}, gate
    except Exception as e:
        return {"seq": seq, "ok": False, "error": "%s: %s" % (type(e).__name__, e)}, None
    finally:
        for fd in fds:
            os.close(fd)


def clone_session():
    """fork() into new pid, mount, net, ipc and uts namespaces in one step: the child is pid 1
    of its namespace and our direct child. It is os.fork() with clone's flags: the same
    interpreter bookkeeping around the system call (the zygote has a single thread, so the
    C library's fork handlers have nothing to do)."""
    flags = (CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS |
             signal.SIGCHLD)
    api.PyOS_BeforeFork()
    pid = pylibc.syscall(SYS_CLONE, ctypes.c_ulong(flags), None, None, None, None)
    err = ctypes.get_errno()
    if pid == 0:
        api.PyOS_AfterFork_Child()
        return 0
    api.PyOS_AfterFork_Parent()
    if pid < 0:
        raise OSError(err, "clone: %s" % os.strerror(err))
    return pid


def spawn(ctl, req, fds, bpf):
    gate_r, gate_w = os.pipe()
    try:
        pid = clone_session()
    except BaseException:
        os.close(gate_r)
        os.close(gate_w)
        raise
    if pid == 0:
        try:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            os.close(ctl.detach())
            os.close(gate_w)
        finally:
            session_init(req, fds, gate_r, bpf)
    os.close(gate_r)
    return pid, gate_w


# ---------------------------------------------------------------- session init (pid 1)


def session_mounts(req):
    disk = int(req.get("disk_bytes") or (256 << 20))
    uid = int(req["uid"])
    tmp = "size=%d,mode=1777" % disk
    mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, tmp)
    mount("tmpfs", "/var/tmp", "tmpfs", MS_NOSUID | MS_NODEV, tmp)
    mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
          "size=%d,mode=1777" % min(disk, 64 << 20))
    mount("tmpfs", WORKDIR, "tmpfs", MS_NOSUID | MS_NODEV,
          "size=%d,mode=0755,uid=%d,gid=%d" % (disk, uid, uid))
    # Our own proc, then drop the zygote's view of the host's: mount the new one aside while
    # the old one still makes the kernel accept it, then move it into place.
    os.mkdir("/tmp/.proc", 0o700)
    mount("proc", "/tmp/.proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    try:
        check(libc.umount2(b"/proc", MNT_DETACH), "umount /proc")
        mount("/tmp/.proc", "/proc", None, MS_MOVE)
    except OSError:
        mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        check(libc.umount2(b"/tmp/.proc", MNT_DETACH), "umount /tmp/.proc")
    os.rmdir("/tmp/.proc")
    check(libc.sethostname(b"sandbox", 7), "sethostname")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        ifr = fcntl.ioctl(s, SIOCGIFFLAGS, struct.pack("16sH22x", b"lo", 0))
        flags = struct.unpack("16sH", ifr[:18])[1] | IFF_UP | IFF_RUNNING
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags))
    finally:
        s.close()


def session_init(req, fds, gate_r, bpf):
    """Pid 1 of the session. Never returns."""
    code = 1
    try:
        for sig in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        # Our own setup runs while the service fills in the cgroups; the gate holds back
        # only the fork of the kernel, the first process that runs user code.
        try:
            session_mounts(req)
        except Exception as e:
            send_json(fds[0], {"ev": "fatal", "error": "session setup: %s" % e})
            os._exit(1)
        go = b""
        try:
            go = os.read(gate_r, 1)
        except OSError:
            pass
        if go != b"g":
            os._exit(0)
        os.close(gate_r)
        # Now that the service has put us in the session's cgroups: a cgroup namespace rooted
        # there, so the code sees "/" and not the host's cgroup layout. Where the kernel has
        # none, the session goes on without it.
        if libc.unshare(CLONE_NEWCGROUP) != 0:
            print("session init: no cgroup namespace: %s" % os.strerror(ctypes.get_errno()),
                  file=sys.stderr)
        c = os.fork()
        if c == 0:
            session_kernel(req, fds, bpf)
        for fd in fds[1:]:
            os.close(fd)
        code = init_loop(c, fds[0])
    except BaseException as e:
        traceback.print_exc()
        try:
            send_json(fds[0], {"ev": "fatal", "error": "session init: %s: %s" %
                               (type(e).__name__, e)})
        except Exception:
            pass
    finally:
        os._exit(code)


SAVED_OUT, SAVED_ERR = 4, 5
KERNEL_FILE = os.path.abspath(__file__)


class KernelExited(Exception):
    pass


def init_loop(child, ctl):
    """Reaps orphans, forwards SIGINT to the kernel's process group, and ends the session
    (returns) when the kernel exits or when the service hangs up its end of ctl, even if the
    kernel is too busy to notice: leaving kills everything in our pid namespace."""
    status = [0]

    def forward(signum, frame):
        try:
            os.killpg(child, signal.SIGINT)
        except OSError:
            try:
                os.kill(child, signal.SIGINT)
            except OSError:
                pass

    def reap_all(signum=None, frame=None):
        while True:
            try:
                pid, st = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                raise KernelExited()
            if pid == 0:
                return
            if pid == child:
                status[0] = os.waitstatus_to_exitcode(st) & 0xFF
                # How the kernel ended, for the service to tell the user (a CPU-time limit
                # is SIGXCPU, a plain crash SIGSEGV, ...).
                try:
                    send_json(ctl, {"ev": "exit",
                                    "signal": os.WTERMSIG(st) if os.WIFSIGNALED(st) else 0,
                                    "code": os.WEXITSTATUS(st) if os.WIFEXITED(st) else 0})
                except OSError:
                    pass
                raise KernelExited()

    gc.disable()
    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGCHLD, reap_all)
    poller = select.poll()
    poller.register(ctl, select.POLLRDHUP)
    try:
        reap_all()
        while True:
            if any(ev & (select.POLLRDHUP | select.POLLHUP | select.POLLERR)
                   for _, ev in poller.poll()):
                return 1
    except KernelExited:
        return status[0]


# ---------------------------------------------------------------- session kernel (pid 2)


def drop_privileges(req, bpf):
    uid = int(req["uid"])
    lim = resource.setrlimit
    cpu = int(req.get("cpu_seconds") or 600)
    lim(resource.RLIMIT_CPU, (cpu, cpu + 1))
    fsize = int(req.get("file_bytes") or (64 << 20))
    lim(resource.RLIMIT_FSIZE, (fsize, fsize))
    nofile = int(req.get("max_files") or 256)
    lim(resource.RLIMIT_NOFILE, (nofile, nofile))
    lim(resource.RLIMIT_CORE, (0, 0))
    nproc = int(req.get("max_pids") or 64)
    lim(resource.RLIMIT_NPROC, (nproc, nproc))
    if req.get("as_bytes"):
        lim(resource.RLIMIT_AS, (int(req["as_bytes"]), int(req["as_bytes"])))
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)  # all capabilities go with uid 0
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    if bpf:
        buf = ctypes.create_string_buffer(bpf, len(bpf))

        class SockFprog(ctypes.Structure):
            _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

        prog = SockFprog(len(bpf) // 8, ctypes.addressof(buf))
        check(libc.prctl(PR_SET_SECCOMP, ctypes.c_ulong(SECCOMP_MODE_FILTER),
                         ctypes.byref(prog), 0, 0), "seccomp")


def setup_fds(fds):
    """ctl to fd 3 (close-on-exec), output pipes to 1 and 2 and, kept to put them back
    before every run, to SAVED_OUT and SAVED_ERR (close-on-exec); nothing else open."""
    # Out of the way first: the received fds may sit where the copies go.
    ctl, out, err = (fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 64) for fd in fds)
    os.dup2(out, 1)
    os.dup2(err, 2)
    os.dup2(ctl, 3, inheritable=False)
    os.dup2(out, SAVED_OUT, inheritable=False)
    os.dup2(err, SAVED_ERR, inheritable=False)
    os.closerange(SAVED_ERR + 1, 1 << 16)
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)


def session_kernel(req, fds, bpf):
    try:
        setup_fds(fds)
        os.setsid()
        drop_privileges(req, bpf)
        os.chdir(WORKDIR)
        os.environ.clear()
        os.environ.update(CLEAN_ENV)
        Kernel(req).serve()
    except BaseException as e:
        traceback.print_exc()
        try:
            send_json(3, {"ev": "fatal", "error": "kernel: %s: %s" % (type(e).__name__, e)})
        except OSError:
            pass
        os._exit(1)
    os._exit(0)


class Kernel:
    def __init__(self, req):
        self.req = req
        self.pid = os.getpid()
        self.count = 0
        self.in_user = False
        self.running = False
        self.pending_interrupt = False
        self.bash = None
        self.node = None
        self.buf = b""
        self.file_max = int(req.get("file_bytes") or (64 << 20))
        self.ns = types.ModuleType("__main__")
        self.ns.__dict__["__builtins__"] = __builtins__
        sys.modules["__main__"] = self.ns
        sys.path.insert(0, "")
        sys.argv = [""]
        sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))
        sys.stdout = self.stream(1)
        sys.stderr = self.stream(2)
        import builtins
        builtins.input = no_input
        signal.signal(signal.SIGINT, self.on_sigint)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is not None:
            plt.show = lambda *a, **k: self.flush_figures()

    @staticmethod
    def stream(fd):
        raw = io.FileIO(fd, "w", closefd=False)
        return io.TextIOWrapper(raw, encoding="utf-8", errors="backslashreplace",
                                write_through=True)

    def on_sigint(self, signum, frame):
        if self.in_user:
            raise KeyboardInterrupt
        if self.running:
            # The run's code has not started yet: it is interrupted as soon as it does.
            self.pending_interrupt = True
        for child in (self.bash, self.node):
            if child is not None and child.busy:
                child.interrupt()

    def emit(self, **ev):
        self.only_kernel()
        send_json(3, ev)

    def only_kernel(self):
        """A process that user code forked (os.fork() without exit) returns into our frames:
        it must end here instead of speaking for the kernel on ctl."""
        if os.getpid() != self.pid:
            os._exit(0)

    def serve(self):
        self.emit(ev="ready")
        while True:
            line = self.read_line()
            if line is None:
                return
            try:
                req = json.loads(line)
                if not isinstance(req, dict):
                    raise ValueError("not an object")
            except ValueError as e:
                self.emit(ok=False, error="malformed request: %s" % e)
                continue
            self.dispatch(req)

    def read_line(self):
        """The next request line; None at EOF. Lines can be 64 MiB (files in base64): chunks
        are collected and joined once, and only new bytes are searched for the newline."""
        self.only_kernel()
        if b"\n" not in self.buf:
            parts = [self.buf]
            while True:
                try:
                    chunk = os.read(3, 1 << 20)
                except (InterruptedError, KeyboardInterrupt):
                    continue
                if not chunk:
                    return None
                parts.append(chunk)
                if b"\n" in chunk:
                    break
            self.buf = b"".join(parts)
        line, _, self.buf = self.buf.partition(b"\n")
        return line

    def dispatch(self, req):
        op = req.get("op")
        try:
            if op == "run":
                self.run(req)
            elif op == "put_file":
                self.emit(**put_file(req.get("path"), req.get("data"), self.file_max))
            elif op == "get_file":
                self.emit(**get_file(req.get("path")))
            elif op == "list_files":
                self.emit(ok=True, files=list_files())
            else:
                self.emit(ok=False, error="unknown op %r" % (op,))
        except KeyboardInterrupt:
            self.emit(ok=False, error="interrupted")

    # ---- runs

    def restore_streams(self):
        """Code that closed or redirected fds 1 and 2 (or sys.stdout) gets them back, so the
        next run still streams its output."""
        for saved, fd in ((SAVED_OUT, 1), (SAVED_ERR, 2)):
            try:
                os.dup2(saved, fd)
            except OSError:
                pass
        if getattr(sys.stdout, "closed", True):
            sys.stdout = self.stream(1)
        if getattr(sys.stderr, "closed", True):
            sys.stderr = self.stream(2)

    def run(self, req):
        self.running, self.pending_interrupt = True, False
        try:
            self.run_request(req)
        finally:
            self.running, self.pending_interrupt = False, False

    def run_request(self, req):
        self.restore_streams()
        self.count += 1
        lang = req.get("lang") or "python"
        code = req.get("code")
        before = snapshot()
        ok = False
        try:
            if not isinstance(code, str):
                self.error("ValueError", "code must be a string", "")
            elif lang == "python":
                ok = self.run_python(code)
            elif lang == "bash":
                ok = self.run_child("bash", code)
            elif lang in ("javascript", "js"):
                ok = self.run_child("node", code)
            else:
                self.error("ValueError", "unknown language %r" % lang, "")
        except KeyboardInterrupt:
            self.error("KeyboardInterrupt", "", "")
        try:
            if lang == "python":
                self.flush_figures()
            self.report_files(before)
        except KeyboardInterrupt:
            pass
        self.flush_output()
        self.emit(ev="end", ok=ok, execution_count=self.count)

    def error(self, name, value, tb):
        self.emit(ev="error", name=name, value=value, traceback=tb)

    def flush_output(self):
        for f in (sys.stdout, sys.stderr):
            try:
                f.flush()
            except Exception:
                pass
        libc.fflush(None)

    def run_python(self, code):
        name = CELL_NAME % self.count
        linecache.cache[name] = (len(code), None, code.splitlines(True), name)
        try:
            tree = ast.parse(code, name, "exec")
        except SyntaxError as e:
            self.error(type(e).__name__, public(str(e)),
                       public("".join(traceback.format_exception_only(type(e), e))))
            return False
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        g = self.ns.__dict__
        try:
            body = compile(tree, name, "exec")
            lastc = compile(last, name, "eval") if last is not None else None
            self.in_user = True
            try:
                if self.pending_interrupt:
                    raise KeyboardInterrupt
                exec(body, g)
                value = eval(lastc, g) if lastc is not None else None
            finally:
                self.in_user = False
                self.only_kernel()
        except SystemExit as e:
            if e.code in (None, 0):
                return True
            self.error("SystemExit", str(e.code), "")
            return False
        except BaseException as e:
            self.flush_output()
            self.error(type(e).__name__, public(str(e)), user_traceback(e))
            return False
        if value is not None:
            g["_"] = value
            try:
                text = repr(value)
            except Exception as e:
                text = "<repr failed: %s: %s>" % (type(e).__name__, e)
            if len(text) > RESULT_MAX:
                text = "%s\n[... %d more characters]" % (text[:RESULT_MAX],
                                                          len(text) - RESULT_MAX)
            self.flush_output()
            self.emit(ev="result", mime="text/plain", data=text)
        return True

    def flush_figures(self):
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is None:
            return
        for num in plt.get_fignums():
            fig = plt.figure(num)
            buf = io.BytesIO()
            try:
                fig.savefig(buf, format="png", bbox_inches="tight")
            except Exception as e:
                self.error(type(e).__name__, "saving figure %d: %s" % (num, e), "")
                continue
            self.emit(ev="result", mime="image/png",
                      data=base64.b64encode(buf.getvalue()).decode())
        plt.close("all")

    def report_files(self, before):
        after = snapshot()
        changed = [p for p, v in after.items() if before.get(p) != v]
        for p in sorted(changed)[:FILE_EVENTS_MAX]:
            self.emit(ev="file", path=p, size=after[p][1])

    def run_child(self, kind, code):
        child = self.bash if kind == "bash" else self.node
        lost = False
        if child is not None and not child.alive():
            child, lost = None, True
        if child is None:
            try:
                child = Bash() if kind == "bash" else Node()
            except OSError as e:
                self.error("RuntimeError", e.strerror or str(e), "")
                return False
            if kind == "bash":
                self.bash = child
            else:
                self.node = child
        if lost:
            print("[%s restarted: its state was lost]" % kind, file=sys.stderr)
        ok, err, result = child.run(code)
        self.flush_output()
        if err is not None:
            self.error(*err)
        if result is not None:
            self.emit(ev="result", mime="text/plain", data=result)
        return ok


def no_input(prompt=""):
    raise EOFError("input() is not available in the sandbox: there is no stdin")


def public(text):
    return CELL_NAME_RE.sub(CELL, text)


def user_traceback(e):
    """The traceback of E without the kernel's frames: from the first frame of the cell on."""
    tb = e.__traceback__
    while tb is not None and not CELL_NAME_RE.fullmatch(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    if tb is None:
        return public("".join(traceback.format_exception_only(type(e), e)))
    # The kernel's frames also stand at the end when it raised into the code (the SIGINT
    # handler's KeyboardInterrupt): leave them out wherever they are.
    frames = [f for f in traceback.extract_tb(tb) if f.filename != KERNEL_FILE]
    return public("Traceback (most recent call last):\n" +
                  "".join(traceback.format_list(frames)) +
                  "".join(traceback.format_exception_only(type(e), e)))


# ---------------------------------------------------------------- bash and node children


class Child:
    """A persistent interpreter: commands go in on one pipe, one status line per command comes
    back on another; its output goes straight to our fds 1 and 2. run() returns (ok, error
    tuple or None, result text or None)."""

    def __init__(self, argv, name):
        self.name = name
        self.busy = False
        self.rbuf = b""
        cmd_r, self.cmd_w = os.pipe()
        self.st_r, st_w = os.pipe()
        # pass_fds keeps fd numbers: the child knows its ends by these numbers.
        self.cmd_fd, self.st_fd = cmd_r, st_w
        argv = [a.format(cmd=cmd_r, st=st_w) for a in argv]
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=1, stderr=2,
                                         pass_fds=(cmd_r, st_w), start_new_session=True,
                                         cwd=WORKDIR, env=dict(CLEAN_ENV))
        finally:
            os.close(cmd_r)
            os.close(st_w)

    def alive(self):
        return self.proc.poll() is None

    def interrupt(self):
        try:
            os.killpg(self.proc.pid, signal.SIGINT)
        except OSError:
            pass

    def send(self, line):
        try:
            os.write(self.cmd_w, line.encode() + b"\n")
        except BrokenPipeError:
            return False
        return True

    def read_status(self):
        """One status line, or None when the child died."""
        while b"\n" not in self.rbuf:
            try:
                chunk = os.read(self.st_r, 65536)
            except InterruptedError:
                continue
            except KeyboardInterrupt:
                self.interrupt()
                continue
            if not chunk:
                return None
            self.rbuf += chunk
        line, _, self.rbuf = self.rbuf.partition(b"\n")
        return line.decode(errors="replace")

    def died(self):
        try:
            self.proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self.cmd_w, self.st_r):
            try:
                os.close(fd)
            except OSError:
                pass
        st = self.proc.returncode
        how = "signal %d" % -st if st < 0 else "status %d" % st
        return False, ("RuntimeError", "%s exited (%s): its state is lost" % (self.name, how),
                       ""), None

    def exchange(self, line):
        """Sends LINE and returns the status line, or None when the child died."""
        self.busy = True
        try:
            if not self.send(line):
                return None
            return self.read_status()
        finally:
            self.busy = False


# A SIGINT makes the sourced cell return 130 instead of killing the shell, so state survives.
BASH_LOOP = ('trap "return 130 2>/dev/null" INT; cd %s; '
             'while IFS= read -r -u {cmd} __codebot_line; do eval "$__codebot_line"; done'
             % WORKDIR)


class Bash(Child):
    def __init__(self):
        super().__init__(["/bin/bash", "--noprofile", "--norc", "-c", BASH_LOOP], "bash")
        self.dir = "/tmp/.codebot-bash"
        os.makedirs(self.dir, mode=0o700, exist_ok=True)

    def run(self, code):
        nonce = base64.b16encode(os.urandom(8)).decode()
        path = os.path.join(self.dir, "cell.sh")
        with open(path, "w") as f:
            f.write(code if code.endswith("\n") else code + "\n")
        line = self.exchange('source %s; echo "%s $?" >&%d' % (path, nonce, self.st_fd))
        while line is not None and not line.startswith(nonce + " "):
            line = self.read_status()  # user code wrote to our status fd: skip it
        if line is None:
            return self.died()
        rc = int(line.split()[1])
        if rc == 0:
            return True, None, None
        if rc == 130:
            return False, ("KeyboardInterrupt", "interrupted (exit status 130)", ""), None
        return False, ("BashError", "exit status %d" % rc, ""), None


class Node(Child):
    def __init__(self):
        if not os.access("/usr/bin/node", os.X_OK) or not os.path.exists("/jskernel.js"):
            raise OSError(errno.ENOENT, "javascript is not available on this host")
        super().__init__(["/usr/bin/node", "/jskernel.js", "{cmd}", "{st}"], "node")

    def run(self, code):
        line = self.exchange(json.dumps({"code": code}))
        if line is None:
            return self.died()
        try:
            ans = json.loads(line)
        except ValueError:
            return False, ("RuntimeError", "node said %r" % line[:200], ""), None
        if ans.get("ok"):
            return True, None, ans.get("result")
        return False, (ans.get("name") or "Error", ans.get("value") or "",
                       ans.get("stack") or ""), None


# ---------------------------------------------------------------- files


def snapshot():
    """{relative path: (mtime_ns, size)} of the regular files under the working dir."""
    out = {}
    stack = [""]
    while stack and len(out) < SNAPSHOT_MAX:
        rel = stack.pop()
        try:
            it = os.scandir(os.path.join(WORKDIR, rel) if rel else WORKDIR)
        except OSError:
            continue
        with it:
            for e in it:
                p = os.path.join(rel, e.name) if rel else e.name
                try:
                    if e.is_dir(follow_symlinks=False):
                        if not e.name.startswith(".") or rel:
                            stack.append(p)
                    elif e.is_file(follow_symlinks=False):
                        st = e.stat(follow_symlinks=False)
                        out[p] = (st.st_mtime_ns, st.st_size)
                except OSError:
                    continue
                if len(out) >= SNAPSHOT_MAX:
                    break
    return out


def list_files():
    return [{"path": p, "size": s, "mtime": m // 1_000_000_000}
            for p, (m, s) in sorted(snapshot().items())]


def split_path(path):
    if not isinstance(path, str) or not path or "\0" in path:
        raise ValueError("path must be a non-empty string")
    if path.startswith("/"):
        raise ValueError("path must be relative to the working directory")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise ValueError("path must stay inside the working directory")
    return parts


def open_parent(parts, create):
    """An fd of the directory holding the last component, walked without following links."""
    fd = os.open(WORKDIR, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for name in parts[:-1]:
            if create:
                try:
                    os.mkdir(name, 0o755, dir_fd=fd)
                except FileExistsError:
                    pass
            nfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = nfd
        return fd
    except BaseException:
        os.close(fd)
        raise


def put_file(path, data, limit):
    try:
        parts = split_path(path)
        if not isinstance(data, str):
            raise ValueError("data must be base64 text")
        raw = base64.b64decode(data, validate=True)
        if len(raw) > limit:
            raise ValueError("file too large (%d bytes, limit %d)" % (len(raw), limit))
        dfd = open_parent(parts, True)
        try:
            fd = os.open(parts[-1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW,
                         0o644, dir_fd=dfd)
        finally:
            os.close(dfd)
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        return {"ok": True, "size": len(raw)}
    except (OSError, ValueError) as e:
        return {"ok": False, "error": file_error(e)}


def get_file(path):
    try:
        parts = split_path(path)
        dfd = open_parent(parts, False)
        try:
            fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dfd)
        finally:
            os.close(dfd)
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise ValueError("not a regular file")
            if st.st_size > GET_FILE_MAX:
                raise ValueError("file too large (%d bytes, limit %d)" %
                                 (st.st_size, GET_FILE_MAX))
            raw = f.read(GET_FILE_MAX + 1)
        return {"ok": True, "path": "/".join(parts), "size": len(raw),
                "data": base64.b64encode(raw).decode()}
    except (OSError, ValueError) as e:
        return {"ok": False, "error": file_error(e)}


def file_error(e):
    if isinstance(e, OSError):
        if e.errno == errno.ELOOP:
            return "refusing to follow a symbolic link"
        if e.errno == errno.ENOENT:
            return "no such file"
        return os.strerror(e.errno) if e.errno else str(e)
    return str(e)


if __name__ == "__main__":
    if sys.argv[1:] == ["--zygote"]:
        zygote_main()
    else:
        print("usage: kernel.py --zygote (started by codebot sandboxd)", file=sys.stderr)
        sys.exit(2)
