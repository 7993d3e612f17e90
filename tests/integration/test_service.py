"""`codebot run` as a service: graceful SIGTERM, JSON logs, secrets kept out of logs,
messages and sandboxes."""
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BIN, FakeLLM, base_env, case, console, expect, finish, read_until  # noqa: E402

SECRET = "sk-ant-SECRET-0123456789abcdef"



@case
def sigterm_stops_turns_and_keeps_sandboxes():
    env = base_env(CODEBOT_LOG_LEVEL="info")
    p = subprocess.Popen([BIN, "run"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env)
    try:
        p.stdin.write(b"```python\nkept = 'still here'\nprint('first')\n```\n")
        p.stdin.write(b"```python\nimport time\nprint('going to sleep', flush=True)\n"
                      b"time.sleep(60)\n```\n")
        p.stdin.flush()
        seen = read_until(p, b"going to sleep")
        t0 = time.time()
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=20)
        took = time.time() - t0
    finally:
        if p.poll() is None:
            p.kill()
    out = (seen + out).decode(errors="replace")
    expect(p.returncode == 0, f"exit 0 after SIGTERM, got {p.returncode}", out + err.decode())
    expect(took < 10, f"stopped promptly ({took:.1f} s)")
    expect("Stopped" in out, "the running turn was told it stops", out)
    # the sandbox outlived the bot: a new process finds the variable
    rc, out2, err2 = console(["```python\nprint(kept)\n```"], env)
    expect("still here" in out2, "the channel's sandbox survived the bot", out2 + err2)
    # and the first turn's history was written before exit
    rc, out3, _ = console(["status"], env)
    expect("History: 4 messages" in out3, "history of both finished turns kept", out3)


@case
def json_logs_one_object_per_line():
    env = base_env(CODEBOT_LOG_FORMAT="json", CODEBOT_LOG_LEVEL="debug")
    rc, out, err = console(["```python\nprint(1)\n```"], env)
    expect(rc == 0, f"exit {rc}", out + err)
    lines = [l for l in err.splitlines() if l.strip()]
    expect(lines, "some log lines at debug level", err)
    for line in lines:
        o = json.loads(line)
        expect({"ts", "level", "module", "msg"} <= set(o), "fields of a log line", line)


@case
def invalid_log_format_is_one_clear_line():
    rc, out, err = console(["hi"], base_env(CODEBOT_LOG_FORMAT="xml"))
    expect(rc == 2 and "CODEBOT_LOG_FORMAT" in err, "names the variable", err)


@case
def secrets_stay_out_of_logs_messages_and_sandboxes():
    with FakeLLM([{"text": "print(1)"}], key="a-different-key-42") as llm:
        env = llm.anthropic_env(CODEBOT_LOG_LEVEL="debug", OPENAI_API_KEY=SECRET + "-openai")
        env["ANTHROPIC_API_KEY"] = SECRET
        rc, out, err = console(["hello",
                                "```python\nimport os\nprint(sorted(os.environ.items()))\n```",
                                "```bash\nenv; cat /proc/1/environ 2>&1 | tr '\\\\0' '\\\\n'\n```"],
                               env)
        everything = out + err
        expect("rejected" in out.lower() or "401" in out, "the bad key is reported", out)
        expect(SECRET not in everything, "the key never appears", everything)
        expect("ANTHROPIC" not in out and "OPENAI" not in out,
               "no LLM variable reaches the sandbox", out)
        expect("PATH=" in out, "the sandbox's own environment was printed", out)


finish()
