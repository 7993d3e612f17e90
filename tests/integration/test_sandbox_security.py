#!/usr/bin/env python3
"""Adversarial tests of the sandbox's containment: code that tries to escape, snoop on the
host or on other sessions, or reach the network, and must fail in a concrete, checked way.

Runs against the service on $CODEBOT_SANDBOX_SOCKET (started by `codebot exec` when none
answers) and, for the environment case, a private service started with planted secrets.
Each case prints PASS/FAIL; the exit status is 1 when any failed.
"""
import base64
import os
import platform
import shutil
import socket
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sbx  # noqa: E402
from sbx import case, check, session  # noqa: E402

SECRET = "sbt-secret-" + sbx.uid("s")
PROBE_HEAD = r'''
import ctypes, errno, json, os, signal, socket, struct, sys
R = {}
def out(): print("@@J " + json.dumps(R), flush=True)
def err_name(e): return errno.errorcode.get(e.errno, str(e.errno)) if isinstance(e, OSError) else type(e).__name__
'''


def probe(session_name, body, timeout=30, lang=None, **kw):
    """Runs PROBE_HEAD + BODY (which fills R and calls out()); returns (run, R)."""
    run = sbx.exec_(session_name, PROBE_HEAD + body, timeout=timeout, wall=timeout + 30, **kw)
    return run, sbx.jprobe(run)


def need(run, r):
    check(r is not None, "probe printed no result: " + run.describe())
    return r


# ----------------------------------------------------------------------- planted


def setup(ctx):
    """Plants secrets on the host the sandbox must never see; warms the service."""
    tag = sbx.uid("plant")
    ctx["tmpdir"] = tempfile.mkdtemp(prefix="sbt-host-")
    os.chmod(ctx["tmpdir"], 0o755)
    planted = [os.path.join(ctx["tmpdir"], "secret.txt"),
               "/var/tmp/%s.txt" % tag, "/dev/shm/%s.txt" % tag,
               "/root/.%s.txt" % tag, "/home/.%s.txt" % tag]
    ctx["planted"] = []
    for p in planted:
        try:
            with open(p, "w") as f:
                f.write(SECRET + "\n")
            os.chmod(p, 0o644)
            ctx["planted"].append(p)
        except OSError:
            pass
    # The first exec may start the service (zygote import); do it outside any case.
    warm = sbx.exec_(sbx.uid("warm"), "print(1)", wall=120)
    if warm.rc != 0:
        raise AssertionError("warm-up exec failed: " + warm.describe())
    ctx["sleeper"] = sbx.HostSleeper()


def teardown(ctx):
    for p in ctx.get("planted", []):
        try:
            os.unlink(p)
        except OSError:
            pass
    shutil.rmtree(ctx.get("tmpdir", "/nonexistent"), ignore_errors=True)
    if ctx.get("sleeper"):
        ctx["sleeper"].stop()


# ------------------------------------------------------------------ identity


@case()
def runs_as_unprivileged_uid():
    run, r = probe(session("uid"), '''
R["uid"] = os.getuid(); R["euid"] = os.geteuid(); R["gid"] = os.getgid(); R["egid"] = os.getegid()
R["groups"] = os.getgroups()
out()''')
    need(run, r)
    check(r["uid"] != 0 and r["euid"] != 0, "code runs as uid 0: %s" % r)
    check(r["gid"] != 0 and r["egid"] != 0, "code runs as gid 0: %s" % r)
    check(0 not in r["groups"], "supplementary group 0: %s" % r["groups"])


@case()
def host_root_not_mapped():
    run, r = probe(session("uidmap"), '''
R["uid_map"] = open("/proc/self/uid_map").read(); R["gid_map"] = open("/proc/self/gid_map").read()
R["uid"] = os.getuid()
out()''')
    need(run, r)
    for name in ("uid_map", "gid_map"):
        rows = [list(map(int, line.split())) for line in r[name].splitlines() if line.strip()]
        check(rows, "%s is empty" % name)
        for inside, outside, count in rows:
            check(not (outside <= 0 < outside + count),
                  "%s maps host id 0 (line %d %d %d)" % (name, inside, outside, count))
    # The uid the code runs as, seen from the host, is not root either.
    rows = [list(map(int, l.split())) for l in r["uid_map"].splitlines() if l.strip()]
    host = [o + (r["uid"] - i) for i, o, c in rows if i <= r["uid"] < i + c]
    check(host and host[0] != 0, "the code's uid %d maps to host uid %s" % (r["uid"], host))


@case()
def host_sees_unprivileged_uid():
    """A process the code starts runs, as seen by the host, under a non-root uid."""
    s = session("hostuid")
    marker = sbx.uid("mark")
    run = sbx.exec_(s, '''
import subprocess, sys
p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "%s"])
print("started", p.pid)
''' % marker)
    check(run.rc == 0, "run failed: " + run.describe())
    procs = sbx.wait_until(lambda: sbx.procs_with(marker), 5)
    check(procs, "the sandboxed process is not visible in host /proc (marker %s)" % marker)
    check(all(p["uid"] != 0 for p in procs),
          "sandboxed process runs as host root: %s" % [(p["pid"], p["uid"]) for p in procs])


@case()
def no_capabilities_nnp_seccomp():
    run, r = probe(session("caps"), '''
st = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines() if ":" in l)
for k in ("CapEff", "CapPrm", "CapAmb", "NoNewPrivs", "Seccomp"):
    R[k] = st.get(k, "").strip()
out()''')
    need(run, r)
    for k in ("CapEff", "CapPrm", "CapAmb"):
        check(r[k] and int(r[k], 16) == 0, "%s is %r (capabilities held)" % (k, r[k]))
    check(r["NoNewPrivs"] == "1", "no_new_privs not set: %r" % r["NoNewPrivs"])
    check(r["Seccomp"] == "2", "no seccomp filter (Seccomp: %r)" % r["Seccomp"])


@case()
def setuid_root_fails():
    run, r = probe(session("setuid"), '''
for name, fn in (("setuid", lambda: os.setuid(0)), ("setgid", lambda: os.setgid(0)),
                 ("setresuid", lambda: os.setresuid(0, 0, 0)),
                 ("setgroups", lambda: os.setgroups([0]))):
    try:
        fn(); R[name] = "ok"
    except OSError as e:
        R[name] = err_name(e)
R["uid_after"] = os.getuid(); R["euid_after"] = os.geteuid()
out()''')
    need(run, r)
    for name in ("setuid", "setgid", "setresuid", "setgroups"):
        check(r[name] == "EPERM", "%s(0) gave %s, not EPERM" % (name, r[name]))
    check(r["uid_after"] != 0 and r["euid_after"] != 0, "became root: %s" % r)


# ----------------------------------------------------------------- filesystem


@case()
def etc_shadow_unreadable():
    run, r = probe(session("shadow"), '''
for p in ("/etc/shadow", "/etc/gshadow", "/proc/1/root/etc/shadow"):
    try:
        R[p] = "READ:" + open(p).read()[:60]
    except OSError as e:
        R[p] = err_name(e)
out()''')
    need(run, r)
    for p, v in r.items():
        check(v in ("EACCES", "ENOENT", "EPERM"), "%s -> %r (should be absent or denied)" % (p, v))


@case()
def host_home_dirs_hidden(ctx):
    host_root = set(os.listdir("/root"))
    host_home = set(os.listdir("/home"))
    plants = [p for p in ctx["planted"] if p.startswith(("/root/", "/home/"))]
    check(plants, "could not plant a secret in /root or /home")
    run, r = probe(session("home"), '''
for d in ("/root", "/home"):
    try:
        R[d] = sorted(os.listdir(d))
    except OSError as e:
        R[d] = err_name(e)
R["plants"] = {}
for p in %r:
    try:
        R["plants"][p] = open(p).read()
    except OSError as e:
        R["plants"][p] = err_name(e)
out()''' % plants)
    need(run, r)
    for d, host in (("/root", host_root), ("/home", host_home)):
        if isinstance(r[d], list):
            seen = host & set(r[d])
            check(not seen, "host entries of %s visible: %s" % (d, sorted(seen)[:8]))
    for p, v in r["plants"].items():
        check(SECRET not in v and v in ("ENOENT", "EACCES"), "%s -> %r" % (p, v[:80]))


@case()
def host_tmp_shm_vartmp_hidden(ctx):
    plants = [p for p in ctx["planted"] if not p.startswith(("/root/", "/home/"))]
    check(len(plants) == 3, "could not plant the /tmp, /var/tmp and /dev/shm secrets")
    run, r = probe(session("tmp"), '''
for p in %r:
    try:
        R[p] = open(p).read()
    except OSError as e:
        R[p] = err_name(e)
    try:
        R[p + ":listed"] = os.path.basename(p) in os.listdir(os.path.dirname(p))
    except OSError as e:
        R[p + ":listed"] = False
out()''' % plants)
    need(run, r)
    for p in plants:
        check(SECRET not in r[p] and r[p] in ("ENOENT", "EACCES"), "%s -> %r" % (p, r[p][:80]))
        check(r[p + ":listed"] is False, "%s is listed in its directory" % p)


@case()
def service_state_hidden():
    paths = [sbx.SOCKET, os.path.dirname(sbx.SOCKET), sbx.ROOT]
    if os.environ.get("CODEBOT_VAR"):
        paths.append(os.environ["CODEBOT_VAR"])
    run, r = probe(session("svcstate"), '''
for p in %r:
    try:
        R[p] = sorted(os.listdir(p))[:5] if os.path.isdir(p) else ("EXISTS" if os.path.lexists(p) else "ENOENT")
    except OSError as e:
        R[p] = err_name(e)
s = socket.socket(socket.AF_UNIX)
s.settimeout(3)
try:
    s.connect(%r); s.sendall(b'{"op":"ping"}\\n'); R["connect"] = "CONNECTED:" + s.recv(200).decode("utf-8", "replace")
except OSError as e:
    R["connect"] = err_name(e)
out()''' % (paths, sbx.SOCKET))
    need(run, r)
    for p in paths:
        check(r[p] in ("ENOENT", "EACCES"), "%s is visible: %r" % (p, r[p]))
    check(not r["connect"].startswith("CONNECTED"), "sandbox reached sandboxd: %r" % r["connect"])


@case()
def service_socket_owner_only():
    check(os.path.exists(sbx.SOCKET), "no socket at %s" % sbx.SOCKET)
    mode = os.stat(sbx.SOCKET).st_mode & 0o777
    check(mode & 0o077 == 0, "socket %s has mode %o (others can drive the sandbox)"
          % (sbx.SOCKET, mode))


@case()
def system_dirs_read_only():
    run, r = probe(session("rofs"), '''
for d in ("/", "/usr", "/etc", "/bin", "/lib", "/usr/lib/python3"):
    p = os.path.join(d, "sbt-write-test")
    try:
        with open(p, "w") as f: f.write("x")
        R[d] = "WROTE"
        os.unlink(p)
    except OSError as e:
        R[d] = err_name(e)
for p in ("/etc/passwd", "/usr/bin/python3", "/bin/sh"):
    try:
        os.chmod(p, 0o777); R["chmod " + p] = "CHMODDED"
    except OSError as e:
        R["chmod " + p] = err_name(e)
    try:
        with open(p, "ab") as f: pass
        R["append " + p] = "OPENED"
    except OSError as e:
        R["append " + p] = err_name(e)
out()''')
    need(run, r)
    for k, v in r.items():
        check(v in ("EROFS", "EACCES", "EPERM", "ENOENT"), "%s -> %s" % (k, v))
    for d in ("/", "/usr", "/etc", "/bin", "/lib"):
        check(not os.path.exists(os.path.join(d, "sbt-write-test")), "file appeared in host %s" % d)


@case()
def dev_is_minimal():
    allowed = {"null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm", "fd",
               "stdin", "stdout", "stderr", "mqueue", "core"}
    run, r = probe(session("dev"), '''
import stat
R["ls"] = sorted(os.listdir("/dev")); R["blk"] = []; R["chr"] = {}
for root, dirs, files in os.walk("/dev"):
    if root.startswith(("/dev/shm", "/dev/mqueue")): continue
    for n in dirs + files:
        p = os.path.join(root, n)
        try: st = os.lstat(p)
        except OSError: continue
        if stat.S_ISBLK(st.st_mode): R["blk"].append(p)
        if stat.S_ISCHR(st.st_mode): R["chr"][p] = [os.major(st.st_rdev), os.minor(st.st_rdev)]
with open("/dev/null", "w") as f: f.write("x")
R["urandom"] = len(open("/dev/urandom", "rb").read(16))
out()''')
    need(run, r)
    extra = set(r["ls"]) - allowed
    check(not extra, "/dev has more than the basics: %s" % sorted(extra))
    check(not r["blk"], "block devices in /dev: %s" % r["blk"])
    # null zero full random urandom, tty, ptmx, pts/*.
    ok_chr = {(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 2)}
    bad = {p: d for p, d in r["chr"].items() if tuple(d) not in ok_chr and d[0] != 136}
    check(not bad, "unexpected char devices: %s" % bad)
    check(r["urandom"] == 16, "/dev/urandom unusable")


@case()
def mknod_denied():
    run, r = probe(session("mknod"), '''
import stat
for name, mode, dev in (("chr_mem", stat.S_IFCHR, os.makedev(1, 1)),
                        ("blk_sda", stat.S_IFBLK, os.makedev(8, 0))):
    for d in (".", "/tmp"):
        p = os.path.join(d, name)
        try:
            os.mknod(p, mode | 0o666, dev); R[p] = "CREATED"
        except OSError as e:
            R[p] = err_name(e)
out()''')
    need(run, r)
    for p, v in r.items():
        check(v == "EPERM", "mknod %s -> %s (want EPERM)" % (p, v))


@case()
def chroot_and_pivot_denied():
    run, r = probe(session("chroot"), '''
try:
    os.chroot("/tmp"); R["chroot"] = "OK"
except OSError as e:
    R["chroot"] = err_name(e)
out()''')
    need(run, r)
    check(r["chroot"] == "EPERM", "chroot -> %s" % r["chroot"])


@case()
def kernel_tunables_not_writable():
    run, r = probe(session("tunables"), '''
import glob
paths = ["/proc/sysrq-trigger", "/proc/sys/kernel/core_pattern", "/proc/sys/kernel/modprobe",
         "/proc/sys/vm/drop_caches", "/proc/sys/kernel/hostname", "/sys/kernel/uevent_helper",
         "/proc/sys/kernel/panic"]
paths += glob.glob("/sys/fs/cgroup/*/release_agent") + glob.glob("/sys/fs/cgroup/release_agent")
paths += glob.glob("/sys/fs/cgroup/*/cgroup.procs")[:3] + glob.glob("/sys/fs/cgroup/*/notify_on_release")[:3]
for p in paths:
    try:
        fd = os.open(p, os.O_WRONLY); os.close(fd); R[p] = "OPENED_FOR_WRITE"
    except OSError as e:
        R[p] = err_name(e)
R["mkdir_cgroup"] = {}
for d in glob.glob("/sys/fs/cgroup/*") + ["/sys/fs/cgroup"]:
    if os.path.isdir(d):
        try:
            os.mkdir(os.path.join(d, "sbt-escape")); R["mkdir_cgroup"][d] = "CREATED"
        except OSError as e:
            R["mkdir_cgroup"][d] = err_name(e)
out()''')
    need(run, r)
    mk = r.pop("mkdir_cgroup")
    for p, v in list(r.items()) + list(mk.items()):
        check(v != "OPENED_FOR_WRITE" and v != "CREATED", "%s writable (%s)" % (p, v))
    leaked = [d for d in os.listdir("/sys/fs/cgroup")
              if os.path.exists(os.path.join("/sys/fs/cgroup", d, "sbt-escape"))]
    check(not leaked, "cgroup created on the host under %s" % leaked)


@case()
def proc_is_own_pid_namespace(ctx):
    sl = ctx["sleeper"]
    check(sl.alive(), "host sleeper not running")
    run, r = probe(session("pidns"), '''
import subprocess
pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
R["pids"] = pids; R["cmds"] = []
for p in pids:
    try: R["cmds"].append(open("/proc/%%d/cmdline" %% p, "rb").read().replace(b"\\0", b" ").decode("utf-8", "replace"))
    except OSError: pass
try:
    R["ps"] = subprocess.run(["ps", "-e", "-o", "pid="], capture_output=True, text=True, timeout=10).stdout.split()
except OSError as e:
    R["ps"] = err_name(e)
try:
    os.kill(%d, signal.SIGKILL); R["kill"] = "SENT"
except OSError as e:
    R["kill"] = err_name(e)
out()''' % sl.info["pid"])
    need(run, r)
    check(len(r["pids"]) <= 10, "sees %d processes: %s" % (len(r["pids"]), r["pids"][:20]))
    check(not any(sl.marker in c for c in r["cmds"]), "host sleeper visible in the sandbox /proc")
    if isinstance(r["ps"], list):
        check(len(r["ps"]) <= 10, "ps -e lists %d processes" % len(r["ps"]))
    check(r["kill"] in ("ESRCH", "EPERM"), "kill of the host pid -> %s" % r["kill"])
    time.sleep(0.3)
    check(sl.alive(), "the host sleeper died")


@case()
def hostname_is_private():
    host = socket.gethostname()
    run, r = probe(session("uts"), '''
R["hostname"] = socket.gethostname()
if R["hostname"] != %r:
    libc = ctypes.CDLL(None, use_errno=True)
    n = b"sbt-pwned"
    rc = libc.sethostname(n, len(n)); R["sethostname"] = "OK" if rc == 0 else errno.errorcode[ctypes.get_errno()]
out()''' % host)
    need(run, r)
    check(r["hostname"] != host, "sandbox hostname is the host's (%s)" % host)
    check(socket.gethostname() == host, "the host's hostname changed to %s" % socket.gethostname())
    check(r.get("sethostname") == "EPERM", "sethostname -> %s" % r.get("sethostname"))


@case()
def no_leaked_fds():
    # Host home dirs, not the sandbox's own working dir (/home/sandbox).
    forbid = [sbx.ROOT, os.path.dirname(sbx.SOCKET), "/root"]
    forbid += ["/home/" + n for n in os.listdir("/home") if n != "sandbox"]
    if os.environ.get("CODEBOT_VAR"):
        forbid.append(os.environ["CODEBOT_VAR"])
    run, r = probe(session("fds"), '''
R["links"] = {}; R["listening"] = []; R["names"] = []
for pid in [p for p in os.listdir("/proc") if p.isdigit()] + ["self"]:
    try: fds = os.listdir("/proc/%s/fd" % pid)
    except OSError: continue
    for fd in fds:
        try: R["links"]["%s/%s" % (pid, fd)] = os.readlink("/proc/%s/fd/%s" % (pid, fd))
        except OSError: pass
for fd in map(int, os.listdir("/proc/self/fd")):
    try:
        s = socket.socket(fileno=os.dup(fd))
    except OSError:
        continue
    try:
        if s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN): R["listening"].append(fd)
        n = s.getsockname()
        R["names"].append(n if isinstance(n, str) else repr(n))
        try: R["names"].append(repr(s.getpeername()))
        except OSError: pass
    except OSError:
        pass
    finally:
        s.close()
out()''')
    need(run, r)
    for k, v in r["links"].items():
        check(not any(v.startswith(f) for f in forbid), "fd %s points at host path %s" % (k, v))
    check(not r["listening"], "the code holds listening sockets it did not create: %s"
          % r["listening"])
    check(not any(sbx.SOCKET in n for n in r["names"]), "a socket is bound to sandboxd's path")


@case()
def namespaces_differ_from_host_and_each_other():
    kinds = ("net", "pid", "mnt", "uts", "ipc", "user", "cgroup")
    host = {}
    for k in kinds:
        try:
            host[k] = os.readlink("/proc/1/ns/" + k)
        except OSError:
            pass
    code = """
R["ns"] = {}
for k in %r:
    try: R["ns"][k] = os.readlink("/proc/self/ns/" + k)
    except OSError as e: R["ns"][k] = err_name(e)
out()""" % (kinds,)
    ra, a = probe(session("ns-a"), code)
    rb, b = probe(session("ns-b"), code)
    need(ra, a)
    need(rb, b)
    for k in ("net", "pid", "mnt", "uts", "ipc", "user"):
        check(a["ns"][k] != host.get(k), "%s namespace is the host's (%s)" % (k, host.get(k)))
    for k in ("net", "pid", "mnt", "uts", "ipc"):
        check(a["ns"][k] != b["ns"][k], "two sessions share the %s namespace" % k)


@case()
def mountinfo_shows_no_host_paths():
    forbid = [sbx.ROOT, os.path.dirname(sbx.SOCKET)]
    if os.environ.get("CODEBOT_VAR"):
        forbid.append(os.environ["CODEBOT_VAR"])
    run, r = probe(session("mounts"), '''
R["m"] = open("/proc/self/mountinfo").read()
out()''')
    need(run, r)
    for f in forbid:
        check(f not in r["m"], "mountinfo reveals the host path %s" % f)
    check(" - overlay " not in r["m"] or "upperdir=" not in r["m"],
          "mountinfo reveals overlay host dirs")


@case()
def kernel_logs_and_memory_unreadable():
    run, r = probe(session("klog"), '''
for p in ("/proc/kcore", "/proc/kmsg", "/dev/kmsg", "/dev/mem", "/proc/kpageflags"):
    try:
        with open(p, "rb") as f: f.read(16)
        R[p] = "READ"
    except OSError as e:
        R[p] = err_name(e)
libc = ctypes.CDLL(None, use_errno=True)
buf = ctypes.create_string_buffer(4096)
rc = libc.klogctl(3, buf, 4096)
R["syslog"] = "OK" if rc >= 0 else errno.errorcode[ctypes.get_errno()]
try:
    addrs = [l.split()[0] for l in open("/proc/kallsyms").read().splitlines()[:50]]
    R["kallsyms_nonzero"] = [a for a in addrs if int(a, 16) != 0][:3]
except OSError as e:
    R["kallsyms_nonzero"] = []
out()''')
    need(run, r)
    for p in ("/proc/kcore", "/proc/kmsg", "/dev/kmsg", "/dev/mem", "/proc/kpageflags"):
        check(r[p] != "READ", "%s is readable" % p)
    check(r["syslog"] in ("EPERM", "ENOSYS"), "syslog(READ_ALL) -> %s" % r["syslog"])
    check(not r["kallsyms_nonzero"], "kernel addresses visible: %s" % r["kallsyms_nonzero"])


@case()
def no_controlling_terminal():
    run, r = probe(session("tty"), '''
try:
    os.close(os.open("/dev/tty", os.O_RDWR)); R["tty"] = "OPENED"
except OSError as e:
    R["tty"] = err_name(e)
R["isatty"] = [os.isatty(fd) for fd in (0, 1, 2)]
out()''')
    need(run, r)
    check(r["tty"] in ("ENXIO", "ENOENT", "EACCES"), "/dev/tty -> %s" % r["tty"])
    check(r["isatty"] == [False, False, False], "a terminal reaches the code: %s" % r["isatty"])


@case()
def limits_cannot_be_raised():
    run, r = probe(session("rlimit"), '''
import resource
for name in ("RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_AS", "RLIMIT_CORE"):
    res = getattr(resource, name)
    soft, hard = resource.getrlimit(res)
    if hard == resource.RLIM_INFINITY:
        R[name] = "unlimited"; continue
    try:
        resource.setrlimit(res, (hard + 1, hard + 1)); R[name] = "RAISED"
    except (ValueError, OSError) as e:
        R[name] = "refused"
try:
    open("/proc/self/oom_score_adj", "w").write("-1000"); R["oom_adj"] = "LOWERED"
except OSError as e:
    R["oom_adj"] = err_name(e)
out()''')
    need(run, r)
    for k in ("RLIMIT_NOFILE", "RLIMIT_CPU", "RLIMIT_FSIZE"):
        check(r[k] == "refused", "%s: %s (the limit should be set and fixed)" % (k, r[k]))
    check(r["RLIMIT_NPROC"] != "RAISED" and r["RLIMIT_AS"] != "RAISED" and
          r["RLIMIT_CORE"] != "RAISED", "a hard limit was raised: %s" % r)
    check(r["oom_adj"] in ("EACCES", "EPERM"), "oom_score_adj -1000 -> %s" % r["oom_adj"])


# ---------------------------------------------------------------------- seccomp

SYSCALLS = {  # name: (x86_64, aarch64)
    "mount": (165, 40), "umount2": (166, 39), "unshare": (272, 97), "setns": (308, 268),
    "ptrace": (101, 117), "process_vm_readv": (310, 270), "process_vm_writev": (311, 271),
    "kexec_load": (246, 104), "kexec_file_load": (320, 294), "bpf": (321, 280),
    "perf_event_open": (298, 241), "keyctl": (250, 219), "add_key": (248, 217),
    "userfaultfd": (323, 282), "reboot": (169, 142), "swapon": (167, 224),
    "init_module": (175, 105), "finit_module": (313, 273),
    # The rest of the list docs/security.md promises (None: no such call on that arch).
    "pivot_root": (155, 41), "fsopen": (430, 430), "fsconfig": (431, 431),
    "fsmount": (432, 432), "fspick": (433, 433), "move_mount": (429, 429),
    "open_tree": (428, 428), "mount_setattr": (442, 442), "sethostname": (170, 161),
    "setdomainname": (171, 162), "pidfd_getfd": (438, 438), "kcmp": (312, 272),
    "open_by_handle_at": (304, 265), "name_to_handle_at": (303, 264),
    "io_uring_setup": (425, 425), "request_key": (249, 218), "fanotify_init": (300, 262),
    "move_pages": (279, 239), "migrate_pages": (256, 238), "modify_ldt": (154, None),
    "uselib": (134, None), "vhangup": (153, 58), "delete_module": (176, 106),
    "acct": (163, 89), "quotactl": (179, 60), "iopl": (172, None), "ioperm": (173, None),
    "syslog": (103, 116), "clock_settime": (227, 112), "clock_adjtime": (305, 266),
    "settimeofday": (164, 170), "adjtimex": (159, 171), "swapoff": (168, 225),
    "personality": (135, 92), "clone": (56, 220), "clone3": (435, 435), "ioctl": (16, 29),
}

SECCOMP_HEAD = r'''
import platform
NR = %r[%r][0 if platform.machine() == "x86_64" else 1]
assert NR is not None, "no such system call on " + platform.machine()
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def A(v):
    if isinstance(v, int): return ctypes.c_long(v)
    if isinstance(v, bytes): return ctypes.c_char_p(v)
    return v
def in_child(fn):
    """Runs FN (returning an int) in a child; returns its errno name, OK, or the signal."""
    rd, wr = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            ctypes.set_errno(0)
            rc = fn()
            res = "OK" if rc >= 0 else errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))
        except BaseException as e:
            res = "EXC:" + type(e).__name__
        os.write(wr, res.encode()); os._exit(0)
    os.close(wr)
    _, st = os.waitpid(pid, 0)
    res = os.read(rd, 100).decode()
    if os.WIFSIGNALED(st): return "SIG%%d" %% os.WTERMSIG(st)
    return res
def sc(*args):
    return in_child(lambda: libc.syscall(ctypes.c_long(NR), *[A(a) for a in args]))
'''


def seccomp_case(name, call):
    def fn():
        body = SECCOMP_HEAD % (SYSCALLS, name) + "\nR['res'] = " + call + "\nout()\n"
        run, r = probe(session("sc-" + name.replace("_", "")), body)
        need(run, r)
        check(r["res"] in ("EPERM", "ENOSYS", "SIG31"),
              "%s -> %s (want EPERM/ENOSYS or SIGSYS)" % (name, r["res"]))
    fn.__name__ = "seccomp_" + name
    case()(fn)


seccomp_case("mount", 'sc(b"none", b"/tmp", b"tmpfs", 0, 0)')
# A missing path gives ENOENT when only the lookup stands in the way.
seccomp_case("umount2", 'sc(b"/sbt-nonexistent", 0)')
seccomp_case("unshare", 'sc(0x10000000)')  # CLONE_NEWUSER: allowed to plain users otherwise
seccomp_case("setns", 'sc(os.open("/proc/self/ns/uts", os.O_RDONLY), 0)')
seccomp_case("ptrace", 'sc(0, 0, 0, 0)')  # PTRACE_TRACEME: allowed to plain users otherwise
seccomp_case("process_vm_readv", '''(lambda buf, dst: sc(os.getpid(),
    ctypes.byref((ctypes.c_void_p * 2)(ctypes.cast(dst, ctypes.c_void_p), 8)), 1,
    ctypes.byref((ctypes.c_void_p * 2)(ctypes.cast(buf, ctypes.c_void_p), 8)), 1, 0))(
    ctypes.create_string_buffer(b"12345678"), ctypes.create_string_buffer(8))''')
seccomp_case("process_vm_writev", '''(lambda buf, dst: sc(os.getpid(),
    ctypes.byref((ctypes.c_void_p * 2)(ctypes.cast(buf, ctypes.c_void_p), 8)), 1,
    ctypes.byref((ctypes.c_void_p * 2)(ctypes.cast(dst, ctypes.c_void_p), 8)), 1, 0))(
    ctypes.create_string_buffer(b"12345678"), ctypes.create_string_buffer(8))''')
seccomp_case("kexec_load", 'sc(0, 0, 0, 0xdead0000)')
seccomp_case("kexec_file_load", 'sc(-1, -1, 0, 0, 0xdead0000)')
seccomp_case("bpf", 'sc(0, ctypes.create_string_buffer(b"\\x02\\0\\0\\0\\x04\\0\\0\\0\\x04\\0\\0\\0\\x01" + b"\\0" * 115), 128)')
# PERF_TYPE_SOFTWARE cpu-clock, user space only: allowed at perf_event_paranoid 2 otherwise.
seccomp_case("perf_event_open", 'sc(ctypes.create_string_buffer(struct.pack("IIQQQQQ", 1, 64, 0, 0, 0, 0, 1 | 32 | 64) + b"\\0" * 16), 0, -1, -1, 0)')
seccomp_case("keyctl", 'sc(0, -3, 0)')  # KEYCTL_GET_KEYRING_ID of the session keyring
seccomp_case("add_key", 'sc(b"user", b"sbt-key", b"x", 1, -2)')
seccomp_case("userfaultfd", 'sc(0o2000000 | 1)')  # O_CLOEXEC | UFFD_USER_MODE_ONLY
seccomp_case("reboot", 'sc(0, 0, 0, 0)')  # bad magic: EINVAL if it ever got past seccomp
seccomp_case("swapon", 'sc(b"/sbt-nonexistent", 0)')
seccomp_case("init_module", 'sc(0, 0, b"")')
seccomp_case("finit_module", 'sc(-1, b"", 0)')
# Each call is made so that it is harmless if it ever got through, and most of them succeed or
# fail differently for a plain user without the filter.
seccomp_case("pivot_root", 'sc(b"/tmp", b"/tmp")')
seccomp_case("fsopen", 'sc(b"tmpfs", 0)')
seccomp_case("fsconfig", 'sc(-1, 0, 0, 0, 0)')
seccomp_case("fsmount", 'sc(-1, 0, 0)')
seccomp_case("fspick", 'sc(-100, b"/tmp", 0)')
seccomp_case("move_mount", 'sc(-1, b"", -1, b"", 0)')
seccomp_case("open_tree", 'sc(-100, b"/tmp", 0)')
seccomp_case("mount_setattr", 'sc(-1, b"", 0, 0, 0)')
seccomp_case("sethostname", 'sc(b"x", 1)')
seccomp_case("setdomainname", 'sc(b"x", 1)')
seccomp_case("pidfd_getfd", 'sc(-1, 0, 0)')
seccomp_case("kcmp", 'sc(os.getpid(), os.getpid(), 0, 0, 0)')  # KCMP_FILE of fd 0 with itself
seccomp_case("open_by_handle_at", 'sc(-1, 0, 0)')
seccomp_case("name_to_handle_at", 'sc(-100, b"/tmp", ctypes.create_string_buffer(128), ctypes.byref(ctypes.c_int()), 0)')
seccomp_case("io_uring_setup", 'sc(1, ctypes.create_string_buffer(120))')
seccomp_case("request_key", 'sc(b"user", b"sbt-key", 0, 0)')
seccomp_case("fanotify_init", 'sc(0x200, 0)')  # FAN_REPORT_FID: allowed to plain users otherwise
seccomp_case("move_pages", 'sc(0, 0, 0, 0, 0, 0)')
seccomp_case("migrate_pages", 'sc(0, 0, 0, 0)')
seccomp_case("modify_ldt", 'sc(0, ctypes.create_string_buffer(16), 16)')  # read: allowed otherwise
seccomp_case("uselib", 'sc(b"/sbt-nonexistent")')
seccomp_case("vhangup", 'sc()')
seccomp_case("delete_module", 'sc(b"sbt_nonexistent", 0o4000)')
seccomp_case("acct", 'sc(0)')
seccomp_case("quotactl", 'sc(0, 0, 0, 0)')
seccomp_case("iopl", 'sc(0)')  # lowering to 0 is allowed to anybody otherwise
seccomp_case("ioperm", 'sc(0x80, 1, 0)')  # dropping access is allowed to anybody otherwise
seccomp_case("syslog", 'sc(10, 0, 0)')  # SYSLOG_ACTION_SIZE_BUFFER
seccomp_case("clock_settime", 'sc(0, ctypes.create_string_buffer(struct.pack("qq", 0, 2000000000)))')
seccomp_case("clock_adjtime", 'sc(0, ctypes.create_string_buffer(256))')  # modes 0: a read
seccomp_case("settimeofday", 'sc(0, 0)')  # both NULL: a no-op otherwise
seccomp_case("adjtimex", 'sc(ctypes.create_string_buffer(256))')  # modes 0: a read
seccomp_case("swapoff", 'sc(b"/sbt-nonexistent")')
seccomp_case("personality", 'sc(0x0040000)')  # ADDR_NO_RANDOMIZE
seccomp_case("clone", 'sc(0x10000000 | 17, 0, 0, 0, 0)')  # CLONE_NEWUSER | SIGCHLD
seccomp_case("clone3", 'sc(0, 0)')
seccomp_case("ioctl", 'sc(0, 0x5412, b"x")')  # TIOCSTI


def foreign_abi_case(name, body):
    def fn():
        check(platform.machine() == "x86_64", "x86_64 only")
        code = SECCOMP_HEAD % (SYSCALLS, "unshare") + body + "\nout()\n"
        run, r = probe(session("abi-" + name), code)
        need(run, r)
        # SIGSYS (filter kills), SIGSEGV (no ia32 emulation), or an error; never success.
        check(r["res"] in ("SIG31", "SIG11", "EPERM", "ENOSYS"),
              "%s -> %s" % (name, r["res"]))
    fn.__name__ = "seccomp_foreign_abi_" + name
    case()(fn)


# unshare(CLONE_NEWUSER) through the i386 ABI (nr 310): push rbx; mov eax, 310;
# mov ebx, 0x10000000; int 0x80; pop rbx; ret.
foreign_abi_case("int80", r'''
import mmap
code = bytes.fromhex("53b836010000bb00000010cd805bc3")
m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
m.write(code)
fn = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(m)))
def call():
    rc = fn()
    if rc < 0:
        ctypes.set_errno(-rc)
        return -1
    return rc
R["res"] = in_child(call)
''')
# unshare(CLONE_NEWUSER) through the x32 ABI (nr | __X32_SYSCALL_BIT).
foreign_abi_case("x32", '''
R["res"] = in_child(lambda: libc.syscall(ctypes.c_long(0x40000000 | 272), ctypes.c_long(0x10000000)))
''')


# ---------------------------------------------------------------------- network


@case()
def only_loopback_interface():
    run, r = probe(session("ifaces"), '''
R["ifaces"] = sorted(n for _, n in socket.if_nameindex())
try: R["sysnet"] = sorted(os.listdir("/sys/class/net"))
except OSError as e: R["sysnet"] = err_name(e)
R["route"] = open("/proc/net/route").read().splitlines()[1:]
out()''')
    need(run, r)
    check(r["ifaces"] == ["lo"], "interfaces: %s" % r["ifaces"])
    if isinstance(r["sysnet"], list):
        check(r["sysnet"] == ["lo"], "/sys/class/net: %s" % r["sysnet"])
    check(not r["route"], "IPv4 routes present: %s" % r["route"][:3])


class HostListener:
    """A TCP (or abstract unix) listener on the host that counts connections."""

    def __init__(self, family=socket.AF_INET, addr=("127.0.0.1", 0)):
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind(addr)
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.addr = self.sock.getsockname()
        self.accepted = 0
        self.stop = False
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def loop(self):
        while not self.stop:
            try:
                c, _ = self.sock.accept()
                self.accepted += 1
                c.close()
            except OSError:
                pass

    def close(self):
        self.stop = True
        self.t.join(2)
        self.sock.close()


def host_ip():
    """A non-loopback address of this host, or None."""
    try:
        out = sbx.subprocess.run(["hostname", "-I"], capture_output=True, text=True,
                                 timeout=5).stdout.split()
        v4 = [a for a in out if "." in a and not a.startswith("127.")]
        return v4[0] if v4 else None
    except (OSError, sbx.subprocess.SubprocessError):
        return None


@case()
def host_loopback_unreachable():
    lis = HostListener()
    any_lis = HostListener(addr=("0.0.0.0", 0))
    hip = host_ip()
    try:
        check(socket.create_connection(lis.addr, 2) is not None, "host listener not reachable")
        time.sleep(0.3)
        base = lis.accepted
        run, r = probe(session("hostlo"), '''
def conn(addr):
    s = socket.socket(); s.settimeout(3)
    try:
        s.connect(addr); return "CONNECTED"
    except OSError as e:
        return err_name(e)
    finally:
        s.close()
R["lo"] = conn(("127.0.0.1", %d))
R["any_via_lo"] = conn(("127.0.0.1", %d))
R["host_ip"] = conn((%r, %d)) if %r else "n/a"
out()''' % (lis.addr[1], any_lis.addr[1], hip or "", any_lis.addr[1], hip))
        need(run, r)
        time.sleep(0.3)
        # Refused by the sandbox's own loopback (or unreachable if that is down).
        check(r["lo"] in ("ECONNREFUSED", "ENETUNREACH"), "connect to host 127.0.0.1:%d -> %s"
              % (lis.addr[1], r["lo"]))
        check(r["any_via_lo"] in ("ECONNREFUSED", "ENETUNREACH"),
              "connect to host *:%d via lo -> %s" % (any_lis.addr[1], r["any_via_lo"]))
        check(r["host_ip"] in ("ENETUNREACH", "EHOSTUNREACH", "n/a"),
              "connect to host address %s -> %s" % (hip, r["host_ip"]))
        check(lis.accepted == base and any_lis.accepted == 0, "the host listener accepted a "
              "connection from the sandbox")
    finally:
        lis.close()
        any_lis.close()


@case()
def outside_network_unreachable():
    # One attempt only, to an address nobody answers: with no interface but lo the kernel
    # refuses at once and nothing is sent. The interface and route checks come first.
    run, r = probe(session("net"), '''
R["ifaces"] = sorted(n for _, n in socket.if_nameindex())
R["route"] = open("/proc/net/route").read().splitlines()[1:]
try:
    R["route6"] = [l for l in open("/proc/net/ipv6_route").read().splitlines() if not l.rstrip().endswith(" lo")]
except OSError as e:
    R["route6"] = []
s = socket.socket(); s.settimeout(2)
try:
    s.connect(("10.255.255.1", 80)); R["tcp"] = "CONNECTED"
except OSError as e:
    R["tcp"] = err_name(e)
out()''', timeout=20)
    need(run, r)
    check(r["ifaces"] == ["lo"], "interfaces: %s" % r["ifaces"])
    check(not r["route"], "IPv4 routes: %s" % r["route"][:3])
    check(not r["route6"], "IPv6 routes off lo: %s" % r["route6"][:3])
    check(r["tcp"] == "ENETUNREACH", "tcp to 10.255.255.1 -> %s" % r["tcp"])


@case()
def host_abstract_unix_socket_unreachable():
    name = "\0" + sbx.uid("sbt-abstract")
    lis = HostListener(socket.AF_UNIX, name)
    try:
        run, r = probe(session("abstract"), '''
s = socket.socket(socket.AF_UNIX); s.settimeout(3)
try:
    s.connect(%r); R["c"] = "CONNECTED"
except OSError as e:
    R["c"] = err_name(e)
out()''' % name)
        need(run, r)
        time.sleep(0.3)
        check(r["c"] in ("ECONNREFUSED", "ENOENT"), "abstract socket -> %s" % r["c"])
        check(lis.accepted == 0, "the host's abstract socket accepted a sandbox connection")
    finally:
        lis.close()


@case()
def raw_and_packet_sockets_denied():
    run, r = probe(session("raw"), '''
for name, args in (("packet", (socket.AF_PACKET, socket.SOCK_RAW, 0)),
                   ("raw", (socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP))):
    try:
        s = socket.socket(*args)
        R[name] = "OPENED"
        s.close()
    except OSError as e:
        R[name] = err_name(e)
out()''')
    need(run, r)
    check(r["packet"] in ("EPERM", "EAFNOSUPPORT", "EACCES"), "AF_PACKET -> %s" % r["packet"])
    check(r["raw"] in ("EPERM", "EACCES"), "SOCK_RAW -> %s" % r["raw"])


# ----------------------------------------------------------- other sessions


@case()
def sessions_do_not_see_each_other():
    a, b = session("iso-a"), session("iso-b")
    marker = sbx.uid("amark")
    ra = sbx.exec_(a, '''
import os, subprocess, sys
secret_var = %r
open("a-secret.txt", "w").write(%r)
open("/tmp/a-secret.txt", "w").write(%r)
open("/dev/shm/a-secret.txt", "w").write(%r)
bg = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", %r])
print("@@J " + __import__("json").dumps({"cwd": os.getcwd()}))
''' % (SECRET, SECRET, SECRET, SECRET, marker))
    pa = sbx.jprobe(ra)
    check(ra.rc == 0 and pa, "session A failed: " + ra.describe())
    run, r = probe(b, '''
R["var"] = "secret_var" in globals()
R["found"] = []
for d in (%r, ".", "/tmp", "/dev/shm"):
    try:
        for n in os.listdir(d):
            p = os.path.join(d, n)
            try:
                if os.path.isfile(p) and %r.encode() in open(p, "rb").read(): R["found"].append(p)
            except OSError: pass
    except OSError: pass
R["procs"] = []
for p in os.listdir("/proc"):
    if p.isdigit():
        try:
            if %r.encode() in open("/proc/%%s/cmdline" %% p, "rb").read(): R["procs"].append(p)
        except OSError: pass
out()''' % (pa["cwd"], SECRET, marker))
    need(run, r)
    check(r["var"] is False, "session B sees session A's variable")
    check(not r["found"], "session B reads session A's files: %s" % r["found"])
    check(not r["procs"], "session B sees session A's process")
    g = sbx.get_file(b, "a-secret.txt")
    check(not g.get("ok") or SECRET not in base64.b64decode(g.get("data", "")).decode("utf-8", "replace"),
          "get_file in session B returned session A's file")


@case()
def other_sessions_sandbox_id_gives_no_access():
    """A run that names session A but carries session B's sandbox id runs in A, never in B."""
    a, b = session("idmix-a"), session("idmix-b")
    rb = sbx.exec_(b, "b_secret = %r" % SECRET)
    check(rb.rc == 0 and rb.start.get("sandbox"), "session B failed: " + rb.describe())
    ans = sbx.request({"op": "run", "session": a, "sandbox": rb.start["sandbox"],
                       "code": "print('b_secret' in globals())"}, timeout=60)
    start = [e for e in ans if e.get("ev") == "start"]
    outs = "".join(e.get("text", "") for e in ans if e.get("ev") == "stdout")
    check(start and start[0].get("sandbox") != rb.start["sandbox"],
          "the run went to session B's sandbox: %s" % start)
    check(outs.strip() == "False", "session A saw session B's variable: %r" % outs)


@case()
def sessions_have_separate_loopback():
    a, b = session("lo-a"), session("lo-b")
    ra = sbx.exec_(a, '''
import socket, threading
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(8)
PORT = srv.getsockname()[1]
def serve():
    while True:
        c, _ = srv.accept(); c.sendall(b"A-SAYS-HI"); c.close()
threading.Thread(target=serve, daemon=True).start()
print("@@J {\\"port\\": %d}" % PORT)
''')
    pa = sbx.jprobe(ra)
    check(ra.rc == 0 and pa, "session A failed: " + ra.describe())
    port = pa["port"]
    again = sbx.exec_(a, 'import socket; print(socket.create_connection(("127.0.0.1", %d), 3).recv(20).decode())' % port)
    check("A-SAYS-HI" in again.out, "A cannot reach its own listener: " + again.describe())
    run, r = probe(b, '''
s = socket.socket(); s.settimeout(3)
try:
    s.connect(("127.0.0.1", %d)); R["c"] = "CONNECTED:" + s.recv(20).decode()
except OSError as e:
    R["c"] = err_name(e)
out()''' % port)
    need(run, r)
    check(r["c"] == "ECONNREFUSED", "session B reached session A's port: %s" % r["c"])


# ------------------------------------------------------------ environment


@case(timeout=150)
def caller_environment_never_reaches_code():
    names = {"CODEBOT_TEST_SECRET": SECRET, "ANTHROPIC_API_KEY": "sk-ant-" + SECRET,
             "OPENAI_API_KEY": "sk-" + SECRET, "CODEBOT_TOKEN": SECRET + "-tok",
             "AWS_SECRET_ACCESS_KEY": SECRET + "-aws", "REDIS_URL": "redis://:%s@h/0" % SECRET}
    svc = sbx.Service(env=names, tag="env")
    try:
        svc.start()
        run, r = probe(session("env", svc.socket), '''
R["env"] = dict(os.environ)
R["proc_env"] = []
for p in [p for p in os.listdir("/proc") if p.isdigit()] + ["self"]:
    try: R["proc_env"].append(open("/proc/%s/environ" % p, "rb").read().decode("utf-8", "replace"))
    except OSError: pass
out()''', env=names, socket_path=svc.socket)
        need(run, r)
        env = r["env"]
        for n in names:
            check(n not in env, "%s reached the code" % n)
        leaked = [k for k, v in env.items() if SECRET in v or SECRET in k]
        check(not leaked, "secret value in the code's environment: %s" % leaked)
        check(not any(SECRET in e for e in r["proc_env"]), "secret in a /proc/*/environ")
        # Nothing else of the caller either (except values a scratch env may coincide with).
        common = {"PATH", "LANG", "LC_ALL", "LC_CTYPE", "HOME", "TERM", "SHELL", "USER",
                  "LOGNAME", "TZ", "PWD", "SHLVL", "_", "TMPDIR", "PYTHONUNBUFFERED",
                  "MPLBACKEND", "PYTHONIOENCODING", "PYTHONDONTWRITEBYTECODE", "HOSTNAME"}
        same = [k for k, v in os.environ.items()
                if k not in common and env.get(k) == v and len(v) > 0]
        check(not same, "caller variables reached the code: %s" % same[:10])
    finally:
        svc.cleanup()


# --------------------------------------------------------------- protocol


@case()
def get_file_cannot_escape(ctx):
    s = session("getfile")
    secret_path = ctx["planted"][0]
    with open("/etc/shadow", "rb") as f:
        shadow = f.read()
    run = sbx.exec_(s, '''
import os
os.symlink("/etc/shadow", "leak-shadow")
os.symlink(%r, "leak-secret")
os.symlink("/", "leak-root")
print("ok")''' % secret_path)
    check(run.rc == 0, "setup run failed: " + run.describe())
    for path in ["../" * 12 + "etc/shadow", "/etc/shadow", "../" * 12 + secret_path.lstrip("/"),
                 secret_path, "leak-shadow", "leak-secret", "leak-root/etc/shadow",
                 "leak-root" + secret_path, "/proc/1/environ", "/proc/self/environ",
                 "../" * 12 + "proc/self/environ"]:
        ans = sbx.get_file(s, path)
        data = base64.b64decode(ans.get("data", "") or "") if ans.get("ok") else b""
        check(data != shadow and b"root:" not in data, "get_file %r returned the host's /etc/shadow" % path)
        check(SECRET.encode() not in data, "get_file %r returned the host secret" % path)
        check(b"CODEBOT_SANDBOX_SOCKET=" not in data, "get_file %r returned the service's "
              "environment" % path)


@case()
def put_file_cannot_escape(ctx):
    s = session("putfile")
    hostdir = ctx["tmpdir"]
    run = sbx.exec_(s, 'import os; os.symlink(%r, "outdir"); os.symlink("/", "rootlink"); print("ok")'
                    % hostdir)
    check(run.rc == 0, "setup run failed: " + run.describe())
    before = set(os.listdir(hostdir))
    tries = ["../" * 12 + hostdir.lstrip("/") + "/pwned1", hostdir + "/pwned2",
             "outdir/pwned3", "rootlink" + hostdir + "/pwned4"]
    for path in tries:
        try:
            sbx.put_file(s, path, b"pwned")
        except (OSError, ValueError, AssertionError):
            pass
    after = set(os.listdir(hostdir))
    check(after == before, "put_file wrote on the host: %s" % sorted(after - before))
    check(sbx.ping(), "service died on put_file")


@case()
def session_name_traversal(ctx):
    hostdir = ctx["tmpdir"]
    before = set(os.listdir(hostdir))
    cg_before = {d: set(os.listdir(os.path.join("/sys/fs/cgroup", d)))
                 for d in os.listdir("/sys/fs/cgroup")
                 if os.path.isdir(os.path.join("/sys/fs/cgroup", d))}
    tag = sbx.uid("trav")
    name = "../../../../../../.." + hostdir + "/" + tag
    sbx.SESSIONS.append((name, None))
    run = sbx.exec_(name, "print('hi')")
    check(run.rc in (0, 2), "traversal session name: " + run.describe())
    after = set(os.listdir(hostdir))
    check(after == before, "session name created host files: %s" % sorted(after - before))
    for d, old in cg_before.items():
        new = set(os.listdir(os.path.join("/sys/fs/cgroup", d))) - old
        check(not any(tag in n for n in new), "cgroup %s/%s created outside the hierarchy"
              % (d, new))
    check(sbx.ping(), "service died")


@case()
def malformed_requests_do_not_hurt():
    answers = []
    for raw in (b"{not json\n", b"[1,2,3]\n", b'{"op":"nope"}\n', b'{"op":"run"}\n',
                b'{"op":"run","session":"","code":"print(1)"}\n',
                b'{"op":"run","session":"' + b"x" * 300 + b'","code":"print(1)"}\n',
                b'{"op":"kill"}\n', b'\xff\xfe\xfd\n', b"x" * (1 << 20)):
        try:
            ans = sbx.request(None, raw=raw, timeout=10, half_close=True)
        except (OSError, ValueError) as e:
            ans = [{"error": "EXC " + str(e)}]
        answers.append(ans)
        check(sbx.ping(), "service stopped answering after %r" % raw[:40])
    for raw, ans in zip(range(7), answers[:7]):
        check(ans and ans[0].get("ok") is False and ans[0].get("error"),
              "malformed request %d answered %r" % (raw, ans[:1]))
    run = sbx.exec_(session("after-garbage"), "print(6*7)")
    check(run.rc == 0 and "42" in run.out, "runs broken after malformed requests: " + run.describe())


@case()
def kernel_channel_abuse_contained():
    """The code can write to the kernel's own channel; the service must survive that."""
    s = session("ctl")
    run = sbx.exec_(s, '''
import os, socket, stat
n = 0
for fd in map(int, os.listdir("/proc/self/fd")):
    try:
        if not stat.S_ISSOCK(os.fstat(fd).st_mode): continue
        os.write(fd, b'garbage {{{\\n{"ev":"end","ok":true,"execution_count":999}\\n{"ev":"result"}\\n\\xff\\xfe\\n')
        os.write(fd, b'{"ev":"stdout","text":"' + b"A" * (8 << 20))
        n += 1
    except OSError:
        pass
print("wrote to", n, "sockets")
''', timeout=30, wall=60)
    check(run.rc is not None, "exec hung after the channel was abused")
    check(sbx.ping(), "service died after channel abuse")
    other = sbx.exec_(session("ctl-other"), "print('still fine')")
    check(other.rc == 0 and "still fine" in other.out, "other session broken: " + other.describe())
    again = sbx.exec_(s, "print('next')")
    check(again.rc == 0 and "next" in again.out, "the abused session cannot run again: "
          + again.describe())


@case()
def forged_end_does_not_escape_wall_timeout():
    """The code writes a fake `end` to its kernel's channel and keeps spinning: the wall
    timeout (2 s, plus the grace) must still stop it."""
    s = session("escape-timeout")
    run = sbx.exec_(s, '''
import os, stat
for fd in map(int, os.listdir("/proc/self/fd")):
    try:
        if stat.S_ISSOCK(os.fstat(fd).st_mode):
            os.write(fd, b'{"ev":"end","ok":true,"execution_count":1}\\n')
    except OSError:
        pass
while True:
    pass
''', timeout=2, wall=60)
    check(run.rc is not None, "exec hung")
    time.sleep(8)  # well past the 2 s timeout and any sane grace period

    def cpu():
        sb = sbx.sandbox_of(s)
        return sb and sb.get("cpu_ms")

    c1 = cpu()
    time.sleep(2)
    c2 = cpu()
    check(c1 is None or c2 is None or c2 - c1 < 100,
          "the code still burns CPU 10 s after its 2 s run (cpu_ms %s -> %s): a forged end "
          "escaped the wall timeout" % (c1, c2))
    nxt = sbx.exec_(s, "print('next')", timeout=10, wall=40)
    check(nxt.rc == 0 and nxt.out.strip() == "next" and nxt.status == "ok",
          "the run after a forged end: " + nxt.describe())


@case()
def json_output_cannot_forge_events():
    s = session("forge")
    run = sbx.exec_(s, '''
import sys
print('{"ev":"end","ok":true,"status":"ok","execution_count":999}')
sys.stdout.flush()
raise ValueError("real error after fake end")
''')
    ends = run.of("end")
    check(len(ends) == 1, "%d end events (forged line parsed as event)" % len(ends))
    check(ends[0].get("status") == "error" and ends[0].get("execution_count") != 999,
          "end event forged: %s" % ends[0])
    check(any('"ev":"end"' in e.get("text", "") for e in run.of("stdout")),
          "the printed line did not arrive as stdout text")
    check(run.rc == 1, "exit %s after a raise" % run.rc)


if __name__ == "__main__":
    if platform.machine() not in ("x86_64", "aarch64"):
        print("FAIL: arch (syscall numbers known for x86_64 and aarch64 only)")
        sys.exit(1)
    sys.exit(sbx.main(setup, teardown))
