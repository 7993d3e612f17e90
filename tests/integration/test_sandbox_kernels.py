#!/usr/bin/env python3
"""Legitimate uses of the sandbox that must keep working under the jail, and the behaviour of
the Python, bash and JavaScript kernels as `codebot exec` shows it: persistent state,
notebook-style results, errors, figures and files, streaming, exit codes, encodings.

Runs against the service on $CODEBOT_SANDBOX_SOCKET (started by `codebot exec` when none
answers). Each case prints PASS/FAIL; the exit status is 1 when any failed.
"""
import base64
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sbx  # noqa: E402
from sbx import case, check, session  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


def setup(ctx):
    warm = sbx.exec_(sbx.uid("warm"), "print(1)", wall=120)
    if warm.rc != 0:
        raise AssertionError("warm-up exec failed: " + warm.describe())


def ok(r, what="run"):
    check(r.rc == 0 and r.ok and r.status == "ok", "%s failed: %s" % (what, r.describe()))
    return r


def run(name, code, **kw):
    return sbx.exec_(name, code, **kw)


# ---------------------------------------------------------------- python basics


@case()
def final_expression_is_result():
    r = ok(run(session("expr"), "x = 20\nx * 2 + 2"))
    check(r.result_text().strip() == "42", "result %r, events %s" % (r.result_text(), r.results))
    check("42" not in r.out, "the value was printed to stdout instead of a result")


@case()
def none_and_statements_show_nothing():
    r = ok(run(session("none"), "y = None\ny"))
    check(not r.results, "results for a None value: %s" % r.results)
    r2 = ok(run(session("stmt"), "z = 5"))
    check(not r2.results, "results for an assignment: %s" % r2.results)


@case()
def globals_persist_across_runs():
    s = session("persist")
    ok(run(s, "import math\ncounter = 1\ndef bump(n):\n    return n + 1\n"
              "class Box:\n    v = 'boxed'"))
    ok(run(s, "counter = bump(counter)"))
    r = ok(run(s, "print(counter, math.pi > 3, Box.v)"))
    check(r.out.strip() == "2 True boxed", "state after three runs: %r" % r.out)


@case()
def execution_count_and_end_fields():
    s = session("count")
    r1, r2 = ok(run(s, "1")), ok(run(s, "2"))
    for r in (r1, r2):
        e = r.end
        for k, t in (("ok", bool), ("status", str), ("duration_ms", int),
                     ("execution_count", int), ("state_lost", bool), ("dropped_bytes", int)):
            check(isinstance(e.get(k), t), "end.%s is %r" % (k, e.get(k)))
        check(e["dropped_bytes"] == 0 and e["state_lost"] is False, "end %s" % e)
    check(r2.end["execution_count"] == r1.end["execution_count"] + 1,
          "execution_count %d then %d" % (r1.end["execution_count"], r2.end["execution_count"]))
    check(len(r1.of("end")) == 1 and r1.events[-1].get("ev", r1.events[-1].get("type")) == "end",
          "end is not the single last event")


@case()
def error_has_name_value_clean_traceback():
    s = session("err")
    ok(run(s, "kept = 'yes'"))
    r = run(s, "def inner():\n    return 1 / 0\n\ninner()")
    check(r.rc == 1 and r.status == "error" and r.ok is False, "rc/status: " + r.describe())
    errs = r.errors
    check(len(errs) == 1, "%d error events" % len(errs))
    e = errs[0]
    check(e.get("name") == "ZeroDivisionError", "name %r" % e.get("name"))
    check("division by zero" in str(e.get("value")), "value %r" % e.get("value"))
    tb = e.get("traceback")
    tb = "\n".join(tb) if isinstance(tb, list) else str(tb)
    check("inner" in tb and "1 / 0" in tb, "traceback lacks the user's frames: %r" % tb[-300:])
    check("kernel" not in tb.lower() and "runpy" not in tb and "exec(" not in tb,
          "traceback shows the kernel's own frames: %r" % tb[-400:])
    r2 = ok(run(s, "print(kept)"))
    check(r2.out.strip() == "yes", "state lost after an exception")
    check(r.stderr_text.strip(), "exit 1 with --json but no message on stderr")


@case()
def syntax_error_reported():
    r = run(session("syntax"), "def broken(:\n    pass")
    check(r.rc == 1 and r.status == "error", "rc/status: " + r.describe())
    check(r.errors and r.errors[0].get("name") == "SyntaxError", "errors %s" % r.errors)


@case()
def plain_mode_streams_and_exit_codes():
    s = session("plain")
    r = run(s, "import sys\nprint('to-out')\nprint('to-err', file=sys.stderr)", as_json=False)
    check(r.rc == 0, "rc %s" % r.rc)
    check(r.raw_out.decode().strip() == "to-out", "stdout %r" % r.raw_out[:200])
    check("to-err" in r.raw_err.decode(), "stderr %r" % r.raw_err[:200])
    check("to-err" not in r.raw_out.decode(), "stderr text on stdout")
    r2 = run(s, "raise ValueError('boom')", as_json=False)
    check(r2.rc == 1, "rc %s for a raise" % r2.rc)
    check("ValueError" in r2.raw_err.decode() and "boom" in r2.raw_err.decode(),
          "stderr %r" % r2.raw_err[-300:])


@case()
def invalid_requests_exit_2():
    r = run(session("badlang"), "print(1)", lang="cobol")
    check(r.rc == 2 and r.stderr_text.strip(), "--lang cobol: rc %s stderr %r"
          % (r.rc, r.stderr_text[:200]))
    r = run("x" * 201, "print(1)")
    check(r.rc == 2 and r.stderr_text.strip(), "201-byte session: rc %s" % r.rc)
    p = subprocess.run([sbx.BIN, "exec"], input=b"print(1)", capture_output=True, timeout=30)
    check(p.returncode == 2 and p.stderr.strip(), "no --session: rc %s" % p.returncode)
    p = subprocess.run([sbx.BIN, "exec", "--session", session("badto"), "--timeout", "-3"],
                       input=b"print(1)", capture_output=True, timeout=30)
    check(p.returncode == 2 and p.stderr.strip(), "--timeout -3: rc %s" % p.returncode)


@case()
def stdout_streams_as_printed():
    s = session("stream")
    ok(run(s, "pass"))
    env = dict(os.environ)
    p = subprocess.Popen([sbx.BIN, "exec", "--session", s], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                         start_new_session=True)
    try:
        p.stdin.write(b"import time\nprint('first')\ntime.sleep(4)\nprint('second')\n")
        p.stdin.close()
        line = p.stdout.readline()
        still_running = p.poll() is None
        rest = p.stdout.read()
        p.wait(30)
    finally:
        sbx.kill_group(p)
        p.wait()
    check(line.strip() == b"first", "first line %r" % line)
    check(still_running, "'first' arrived only after the run ended (buffered)")
    check(rest.strip() == b"second", "rest %r" % rest)


@case()
def output_order_kept():
    r = ok(run(session("order"), "for i in range(3000):\n    print(i)"))
    nums = [int(x) for x in r.out.split()]
    check(nums == list(range(3000)), "lines out of order or missing (%d lines)" % len(nums))
    check(r.end.get("dropped_bytes") == 0, "dropped %s bytes of a small output"
          % r.end.get("dropped_bytes"))


@case()
def unicode_output():
    text = "h\u00e9llo \u2713 \u65e5\u672c\u8a9e \U0001f389 \u00df\u00e6"
    r = ok(run(session("uni"), "print(%r)\nopen('f\u00fc\u00f1.txt', 'w').write(%r)\n"
                               "print(open('f\u00fc\u00f1.txt').read())" % (text, text)))
    check(r.out == text + "\n" + text + "\n", "got %r" % r.out)
    r = run(session("uni-plain"), "print(%r)" % text, as_json=False)
    check(r.rc == 0 and r.raw_out.decode("utf-8") == text + "\n", "plain got rc %s %r"
          % (r.rc, r.raw_out))


@case()
def invalid_utf8_becomes_replacement():
    r = ok(run(session("badutf"), "import sys\nsys.stdout.buffer.write(b'a\\xffb\\xc3(c\\n')\n"
                                  "sys.stdout.flush()\nprint('after')"))
    check(r.out == "a\ufffdb\ufffd(c\nafter\n", "got %r" % r.out)


@case()
def utf8_split_across_writes_kept():
    r = ok(run(session("split"), "import sys, time\nsys.stdout.buffer.write(b'x\\xe2\\x82')\n"
                                 "sys.stdout.flush()\ntime.sleep(0.3)\n"
                                 "sys.stdout.buffer.write(b'\\xacy\\n')\nsys.stdout.flush()"))
    check(r.out == "x\u20acy\n", "a valid character split over two writes arrived as %r" % r.out)


@case()
def input_does_not_hang():
    r = run(session("stdin"), "x = input()", timeout=20, wall=60)
    check(r.rc == 1 and r.errors and r.errors[0].get("name") in ("EOFError", "OSError",
                                                                  "StdinNotImplementedError"),
          "input() without stdin: " + r.describe())


@case()
def sys_exit_does_not_break_session():
    s = session("sysexit")
    run(s, "import sys\nsys.exit(3)")
    r = ok(run(s, "print('after exit')"))
    check("after exit" in r.out, "no output after sys.exit")


@case()
def client_disconnect_interrupts_and_keeps_state():
    s = session("disconnect")
    ok(run(s, "n = 0"))
    p = subprocess.Popen([sbx.BIN, "exec", "--session", s], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    p.stdin.write(b"import time\nprint('go', flush=True)\nwhile True:\n    n += 1\n"
                  b"    time.sleep(0.001)\n")
    p.stdin.close()
    line = p.stdout.readline()
    time.sleep(0.5)
    sbx.kill_group(p)
    p.wait()
    check(line.strip() == b"go", "the run did not start: %r" % line)
    time.sleep(1)
    r1 = ok(run(s, "print(n)"), "run after disconnect")
    time.sleep(0.5)
    r2 = ok(run(s, "print(n)"))
    check(int(r1.out) > 0, "the counter did not survive: %r" % r1.out)
    check(r1.out == r2.out, "the loop still runs after the client left (%s then %s)"
          % (r1.out.strip(), r2.out.strip()))
    check(r1.end.get("state_lost") is False, "state_lost after an interrupt")


@case()
def interrupt_op_keeps_state():
    s = session("interrupt")
    ok(run(s, "kept = 'k'"))
    p = subprocess.Popen([sbx.BIN, "exec", "--session", s, "--json"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        p.stdin.write(b"import time\nprint('go', flush=True)\ntime.sleep(60)\nkept = 'changed'\n")
        p.stdin.close()
        first = b""
        for _ in range(5):  # start, then the stdout event
            first += p.stdout.readline()
            if b"go" in first:
                break
        ans = sbx.request1({"op": "interrupt", "session": s}, timeout=10)
        out = p.stdout.read()
        p.wait(30)
    finally:
        sbx.kill_group(p)
        p.wait()
    check(b"go" in first, "the run did not start: %r" % first)
    check(ans.get("ok") is True and ans.get("running") is True, "interrupt answered %s" % ans)
    r = sbx.Run(p.returncode, first + out, b"", True)
    check(r.status == "interrupted" and r.rc == 1, "status %s rc %s" % (r.status, r.rc))
    check(any(e.get("name") == "KeyboardInterrupt" for e in r.errors) or r.status == "interrupted",
          "no KeyboardInterrupt")
    nxt = ok(run(s, "print(kept)"))
    check(nxt.out.strip() == "k", "state after an interrupt: %r" % nxt.out)
    idle = sbx.request1({"op": "interrupt", "session": s}, timeout=10)
    check(idle.get("ok") is True and idle.get("running") is False, "idle interrupt: %s" % idle)


@case()
def empty_code_ok():
    ok(run(session("empty"), ""))


# ------------------------------------------------------------- files and figures


@case()
def files_persist_in_working_dir():
    s = session("files")
    r = ok(run(s, "open('data.csv', 'w').write('a,b\\n1,2\\n3,4\\n')"))
    f = [e for e in r.files if e.get("path") == "data.csv"]
    check(f and f[0].get("size") == 12, "file events %s" % r.files)
    r = ok(run(s, "print(open('data.csv').read().count('\\n'))"))
    check(r.out.strip() == "3", "read back %r" % r.out)
    g = sbx.get_file(s, "data.csv")
    check(g.get("ok") and base64.b64decode(g["data"]) == b"a,b\n1,2\n3,4\n", "get_file %s" % g)
    lf = sbx.request1({"op": "list_files", "session": s})
    check(any(x.get("path") == "data.csv" and x.get("size") == 12 for x in lf.get("files", [])),
          "list_files %s" % lf)
    p = sbx.put_file(s, "in.txt", b"from the host")
    check(p.get("ok") and p.get("size") == 13, "put_file %s" % p)
    r = ok(run(s, "print(open('in.txt').read())"))
    check(r.out.strip() == "from the host", "put file read back %r" % r.out)


@case()
def subprocess_ls_works():
    s = session("ls")
    r = ok(run(s, "import subprocess\nopen('visible.txt', 'w').write('x')\n"
                  "print(subprocess.run(['ls'], capture_output=True, text=True, check=True).stdout)"))
    check("visible.txt" in r.out.split(), "ls output %r" % r.out)


@case()
def scratch_dirs_writable():
    r = ok(run(session("scratch"), '''
import os, tempfile
for d in (os.getcwd(), tempfile.gettempdir(), "/dev/shm"):
    p = os.path.join(d, "w.txt")
    open(p, "w").write("ok"); print(d, open(p).read()); os.unlink(p)
print("HOME", os.environ.get("HOME") is not None, "PATH", "/usr/bin" in os.environ.get("PATH", ""))
import sys; print("enc", sys.getfilesystemencoding(), sys.stdout.encoding.lower())
'''))
    check(r.out.count(" ok\n") == 3, "scratch dirs: %r" % r.out)
    check("HOME True PATH True" in r.out, "environment basics missing: %r" % r.out)
    check("enc utf-8 utf-8" in r.out, "encodings: %r" % r.out)


@case()
def matplotlib_figure_is_png_result():
    s = session("fig")
    r = ok(run(s, "import matplotlib\nimport matplotlib.pyplot as plt\n"
                  "print(matplotlib.get_backend().lower())\n"
                  "plt.plot([1, 2, 3], [1, 4, 9])\nplt.title('squares')\nplt.show()"), "plot")
    check(r.out.strip() == "agg", "backend %r" % r.out)
    pngs = [e for e in r.results if e.get("mime") == "image/png"]
    check(pngs, "no image/png result: %s" % [(e.get("mime"), len(e.get("data", ""))) for e in r.results])
    data = base64.b64decode(pngs[0]["data"])
    check(data.startswith(PNG) and len(data) > 1000, "not a PNG (%d bytes)" % len(data))


@case()
def figures_shown_once_each():
    s = session("figs")
    r = ok(run(s, "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])"))
    check(len([e for e in r.results if e.get("mime") == "image/png"]) == 1,
          "an open figure at the end of a run: %s" % [e.get("mime") for e in r.results])
    r = ok(run(s, "print('no figure here')"))
    check(not [e for e in r.results if e.get("mime") == "image/png"],
          "the previous run's figure came back again")
    r = ok(run(s, "for i in range(3):\n    plt.figure()\n    plt.plot([i, i + 1])\nplt.show()"))
    pngs = [base64.b64decode(e["data"]) for e in r.results if e.get("mime") == "image/png"]
    check(len(pngs) == 3 and all(p.startswith(PNG) for p in pngs), "%d PNGs for 3 figures"
          % len(pngs))
    r = ok(run(s, "import pandas as pd\npd.DataFrame({'a': [1, 2]})"))
    check("a" in r.result_text() and "2" in r.result_text(), "DataFrame result %r"
          % r.result_text())


@case()
def savefig_gives_file_event_and_file_stays():
    s = session("savefig")
    r = ok(run(s, "import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\n"
                  "ax.bar(['a', 'b'], [3, 5])\nfig.savefig('plot.png')\nplt.close(fig)"))
    f = [e for e in r.files if e.get("path") == "plot.png"]
    check(f and f[0].get("size", 0) > 1000, "file events %s" % r.files)
    r2 = ok(run(s, "import os\nprint(os.path.getsize('plot.png'), open('plot.png', 'rb').read(8))"))
    check(r2.out.split()[0] == str(f[0]["size"]), "size now %r, event said %s"
          % (r2.out, f[0]["size"]))
    check("PNG" in r2.out, "not a PNG: %r" % r2.out)


@case()
def numpy_pandas_compute():
    r = ok(run(session("np"), '''
import numpy as np, pandas as pd
a = np.arange(1_000_000, dtype=np.int64)
df = pd.DataFrame({"k": ["x", "y", "x", "y"], "v": [1, 2, 3, 4]})
print(int(a.sum()), df.groupby("k")["v"].sum().to_dict(), np.linalg.inv(np.eye(3) * 2)[0][0])
'''))
    check(r.out.strip() == "499999500000 {'x': 4, 'y': 6} 0.5", "got %r" % r.out)


@case()
def multiprocessing_pool_works():
    r = ok(run(session("pool"), '''
import multiprocessing
def square(x):
    return x * x
with multiprocessing.Pool(2) as pool:
    print(pool.map(square, range(10)))
''', timeout=60))
    check(r.out.strip() == str([x * x for x in range(10)]), "got %r" % r.out)


@case()
def shared_memory_works():
    r = ok(run(session("shm"), '''
from multiprocessing import shared_memory, Process
shm = shared_memory.SharedMemory(create=True, size=1 << 20)
def child(name):
    other = shared_memory.SharedMemory(name=name)
    other.buf[:5] = b"hello"
    other.close()
p = Process(target=child, args=(shm.name,)); p.start(); p.join()
print(bytes(shm.buf[:5]).decode(), p.exitcode)
shm.close(); shm.unlink()
''', timeout=60))
    check(r.out.strip() == "hello 0", "got %r" % r.out)


@case()
def threads_work():
    r = ok(run(session("threads"), '''
import threading
out = [0] * 8
def work(i):
    out[i] = sum(range(i * 1000))
ts = [threading.Thread(target=work, args=(i,)) for i in range(8)]
for t in ts: t.start()
for t in ts: t.join()
print(out == [sum(range(i * 1000)) for i in range(8)])
'''))
    check(r.out.strip() == "True", "got %r" % r.out)


# ------------------------------------------------------------------------- bash


@case()
def bash_state_persists():
    s = session("bash")
    ok(run(s, 'X=hello\ncd /tmp\ngreet() { echo "greet:$1:$X"; }\nexport EXPORTED=yes',
           lang="bash"))
    r = ok(run(s, 'echo "$X"; pwd; greet world; echo "$EXPORTED"', lang="bash"))
    check(r.out.split() == ["hello", "/tmp", "greet:world:hello", "yes"], "got %r" % r.out)


@case()
def bash_stderr_and_programs():
    s = session("bash2")
    r = ok(run(s, "echo to-out; echo to-err >&2; printf 'a b\\n' | wc -w; ls / >/dev/null && "
                  "echo ls-ok", lang="bash"))
    check(r.out.split() == ["to-out", "2", "ls-ok"], "stdout %r" % r.out)
    check(r.err.strip() == "to-err", "stderr %r" % r.err)


@case()
def bash_and_python_sessions_share_files():
    s = session("mixed")
    ok(run(s, "echo from-bash > shared.txt", lang="bash"))
    r = run(s, "print(open('shared.txt').read().strip())")
    check(r.rc == 0 and r.out.strip() == "from-bash", "python did not see bash's file: "
          + r.describe())


# ------------------------------------------------------------------- javascript


@case()
def javascript_state_persists():
    s = session("js")
    r1 = run(s, "var x = 21;\nfunction dbl(v) { return v * 2; }\nconsole.log('defined');",
             lang="javascript")
    if not shutil.which("node"):
        check(r1.rc in (1, 2) and "node" in (r1.stderr_text + str(r1.end.get("message"))).lower(),
              "node is absent but the error does not say so: " + r1.describe())
        return
    ok(r1, "javascript definition")
    check(r1.out.strip() == "defined", "got %r" % r1.out)
    r2 = ok(run(s, "console.log(dbl(x));", lang="javascript"))
    check(r2.out.strip() == "42", "state not kept: %r" % r2.out)


@case()
def javascript_error_reported():
    r = run(session("jserr"), "throw new Error('jsboom');", lang="javascript")
    if not shutil.which("node"):
        check(r.rc in (1, 2) and "node" in (r.stderr_text + str(r.end.get("message"))).lower(),
              "node is absent but the error does not say so: " + r.describe())
        return
    check(r.rc == 1 and r.status == "error", "rc/status: " + r.describe())
    text = " ".join(str(e) for e in r.errors) + r.err + r.stderr_text
    check("jsboom" in text, "error text lost: " + r.describe())


# ------------------------------------------------------------------- management


@case()
def ls_stats_kill():
    s = session("manage")
    ok(run(s, "marker_var = 1"))
    sb = sbx.sandbox_of(s)
    check(sb and sb.get("id") and sb.get("runs", 0) >= 1, "ls op entry %s" % sb)
    code, out, err = sbx.cli("sandbox", "ls")
    check(code == 0 and sb["id"] in out, "ls rc %s, sandbox missing: %r" % (code, out[:300]))
    code, out, err = sbx.cli("sandbox", "stats")
    check(code == 0 and out.strip(), "stats rc %s %r" % (code, err[:200]))
    code, out, err = sbx.cli("sandbox", "kill", sb["id"])
    check(code == 0, "kill rc %s %r" % (code, err))
    check(sbx.sandbox_of(s) is None, "still listed after kill")
    r = ok(run(s, "print('marker_var' in globals())"))
    check(r.out.strip() == "False", "state survived a kill")
    if r.start:
        check(r.start.get("new") is True, "start.new not set after a kill")
    code, out, err = sbx.cli("sandbox", "kill", "no-such-sandbox-" + sbx.RUN_ID)
    check(code != 0 and err.strip(), "kill of an unknown id: rc %s" % code)


@case()
def ls_reports_memory_and_cpu():
    s = session("usage")
    ok(run(s, "import time\nblob = b'\\x01' * (100 << 20)\nt = time.process_time()\n"
              "while time.process_time() - t < 0.5:\n    pass"))
    sb = sbx.sandbox_of(s)
    check(sb, "session not listed")
    check(sb.get("mem_bytes", 0) >= 90 << 20, "mem_bytes %s with 100 MiB held" % sb.get("mem_bytes"))
    check(sb.get("cpu_ms", 0) >= 400, "cpu_ms %s after 0.5 s of CPU" % sb.get("cpu_ms"))
    st = sbx.request1({"op": "stats"})
    tot = st.get("totals", {})
    check(st.get("ok") and tot.get("sandboxes") == len(st.get("sandboxes", [])),
          "stats totals %s for %d sandboxes" % (tot, len(st.get("sandboxes", []))))
    check(tot.get("mem_bytes", 0) >= sb["mem_bytes"], "totals.mem_bytes below one sandbox's")


@case()
def new_session_race_makes_one_sandbox():
    s = session("race")
    box = {}

    def one(i):
        box[i] = run(s, "import time\ntime.sleep(0.3)\nprint('r%d')" % i, timeout=30, wall=60)

    ts = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(70)
    for i in range(4):
        r = box.get(i)
        check(r is not None and ((r.rc == 0 and r.out.strip() == "r%d" % i) or
                                 (r.rc == 2 and r.stderr_text.strip())),
              "concurrent first run %d: %s" % (i, r.describe() if r else "none"))
    mine = [sb for sb in sbx.sandboxes() if sb.get("session") == s]
    check(len(mine) == 1, "%d sandboxes for one session" % len(mine))
    ids = {r.start.get("sandbox") for r in box.values() if r.start}
    check(len(ids) == 1, "runs of one session went to %d sandboxes" % len(ids))


def sandboxd_procs(sock):
    """Host sandboxd processes serving SOCK (found through their environment)."""
    out = []
    want = ("CODEBOT_SANDBOX_SOCKET=" + sock).encode()
    for p in sbx.host_procs():
        if "sandboxd" not in p["cmd"] or p["state"] == "Z":
            continue
        try:
            with open("/proc/%d/environ" % p["pid"], "rb") as f:
                if want in f.read().split(b"\0"):
                    out.append(p)
        except OSError:
            pass
    return out


def autostart_case(prepare):
    d = tempfile.mkdtemp(prefix="sbt-auto-", dir="/tmp")
    sock = os.path.join(d, "sandboxd.sock")
    prepare(sock)
    try:
        box = {}

        def one(i):
            box[i] = sbx.exec_(sbx.uid("auto%d" % i), "print('auto', %d)" % i, socket_path=sock,
                               wall=120)

        ts = [threading.Thread(target=one, args=(i,)) for i in range(3)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(130)
        for i in range(3):
            r = box.get(i)
            check(r is not None and r.rc == 0 and r.out.strip() == "auto %d" % i,
                  "exec %d with no service: %s" % (i, r.describe() if r else "none"))
        check(sbx.ping(sock), "no service answers after exec started one")
        procs = sandboxd_procs(sock)
        check(len(procs) == 1, "%d sandboxd processes serve one socket" % len(procs))
        me = os.getpid()
        check(procs[0]["ppid"] != me, "the service is a child of the caller, not detached")
        code, _, err = sbx.cli("sandbox", "shutdown", socket_path=sock)
        check(code == 0, "shutdown: %s" % err)
        check(sbx.wait_until(lambda: not [p for p in procs if sbx.alive(p)], 15),
              "sandboxd still runs after shutdown")
    finally:
        if sbx.ping(sock):
            sbx.cli("sandbox", "shutdown", socket_path=sock)
        shutil.rmtree(d, ignore_errors=True)


@case(timeout=200)
def exec_starts_one_service_when_none():
    autostart_case(lambda sock: None)


@case(timeout=200)
def exec_replaces_a_stale_socket():
    def stale(sock):
        s = socket.socket(socket.AF_UNIX)
        s.bind(sock)
        s.close()  # the file stays, nobody listens

    autostart_case(stale)


if __name__ == "__main__":
    sys.exit(sbx.main(setup))
