"""The console assistant end to end: the real binary, real Redis, the real sandbox and a
scripted LLM server (tests/fakes/fake_llm.py) speaking both streaming formats."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import FakeLLM, base_env, case, console, expect, finish, read_until  # noqa: E402


def user_texts(req):
    return [m["content"] for m in req["body"]["messages"] if m["role"] == "user"]


@case
def error_on_attempt_1_fixed_on_attempt_2():
    with FakeLLM([{"text": "x = 1/0\nprint(x)"}, {"text": "print('fixed', 40 + 2)"}]) as llm:
        rc, out, err = console(["divide one by zero, then fix it"], llm.anthropic_env())
        expect(rc == 0, f"exit {rc}", out + err)
        expect("ZeroDivisionError" in out, "the error is shown", out)
        expect("Attempt 2/3" in out, "attempt 2/3 is shown", out)
        expect("fixed 42" in out, "the fixed code's output is shown", out)
        expect("Done" in out, "the turn ends done", out)
        reqs = llm.requests()
        expect(len(reqs) == 2, f"two model calls, got {len(reqs)}")
        second = json.dumps(reqs[1]["body"])
        expect("ZeroDivisionError" in second, "the traceback is given back to the model", second)
        expect("x = 1/0" in second, "the failed code is shown to the model", second)


@case
def failure_after_3_attempts():
    with FakeLLM([{"text": "raise ValueError('nope')"}]) as llm:
        rc, out, err = console(["always fail"], llm.anthropic_env())
        expect(rc == 0, f"exit {rc}", out + err)
        expect("Failed after 3 attempts" in out, "the failure line", out)
        expect(out.count("ValueError") >= 3, "each attempt's error is shown", out)
        expect(len(llm.requests()) == 3, f"three model calls, got {len(llm.requests())}")


@case
def max_attempts_is_configurable():
    with FakeLLM([{"text": "raise ValueError('nope')"}]) as llm:
        rc, out, err = console(["always fail"], llm.anthropic_env(CODEBOT_MAX_ATTEMPTS=2))
        expect("Failed after 2 attempts" in out, "two attempts only", out)
        expect(len(llm.requests()) == 2, "two model calls")


@case
def state_kept_between_turns():
    script = [{"text": "def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n"
                       "    return a\nprint('defined')"},
              {"text": "print('fib(20) =', fib(20))"}]
    with FakeLLM(script) as llm:
        rc, out, err = console(["define fib", "now use it for 20"], llm.anthropic_env())
        expect(rc == 0, f"exit {rc}", out + err)
        expect("fib(20) = 6765" in out, "turn 2 uses turn 1's function", out)
        reqs = llm.requests()
        expect(len(reqs) == 2, "two calls")
        msgs = reqs[1]["body"]["messages"]
        expect(msgs[0] == {"role": "user", "content": "define fib"}, "history starts with turn 1",
               json.dumps(msgs))
        expect(msgs[1]["role"] == "assistant" and "I ran this code:" in msgs[1]["content"]
               and "def fib" in msgs[1]["content"] and "defined" in msgs[1]["content"],
               "the seed's history format", json.dumps(msgs))
        expect(msgs[-1] == {"role": "user", "content": "now use it for 20"}, "the new task last")


@case
def history_survives_restart():
    with FakeLLM([{"text": "data = [3, 1, 2]\nprint(sorted(data))"}, {"text": "print(max(data))"}]) as llm:
        env = llm.anthropic_env()
        rc, out, _ = console(["make a list"], env)
        expect("[1, 2, 3]" in out, "turn 1 ran", out)
        rc, out, err = console(["now the maximum"], env)
        expect(rc == 0 and "3" in out, "turn 2 ran in a new process", out + err)
        msgs = llm.requests()[1]["body"]["messages"]
        expect(len(msgs) == 3 and msgs[0]["content"] == "make a list",
               "the second process sent the first turn as history", json.dumps(msgs))


@case
def overloaded_529_with_retry_after_then_success():
    script = [{"status": 529, "headers": {"retry-after": "1"},
               "body": {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}},
              {"text": "print('after the wait')"}]
    with FakeLLM(script) as llm:
        rc, out, err = console(["hello"], llm.anthropic_env())
        expect(rc == 0, f"exit {rc}", out + err)
        expect("529" in out and "retrying in 1 s" in out, "the wait is shown", out)
        expect("after the wait" in out and "Done" in out, "then the turn succeeds", out)
        expect(len(llm.requests()) == 2, "one retry")


@case
def stream_cut_midway():
    script = [{"text": "print('this will never run because the stream breaks')", "chunk": 5,
               "cut_after": 3},
              {"text": "print('second message works')"}]
    with FakeLLM(script) as llm:
        rc, out, err = console(["first", "second"], llm.anthropic_env())
        expect(rc == 0, f"exit {rc}", out + err)
        expect("cut" in out.lower() or "broke" in out.lower() or "stream" in out.lower(),
               "the cut stream is reported", out)
        expect("this will never run" not in out.split("You:")[1].split("second")[0]
               or "Stopped" in out, "the partial code is not run", out)
        expect("second message works" in out, "the next message is served", out)


@case
def openai_compatible_server():
    with FakeLLM([{"text": "```python\nprint('via openai', 6 * 7)\n```"}]) as llm:
        rc, out, err = console(["compute"], llm.openai_env())
        expect(rc == 0, f"exit {rc}", out + err)
        expect("via openai 42" in out, "the fenced answer ran without its fence", out)
        req = llm.requests()[0]
        expect(req["path"].endswith("/chat/completions"), "the OpenAI path", req["path"])
        expect(req["body"]["messages"][0]["role"] == "system", "system message first")
        expect(req["body"].get("stream") is True, "streamed")


@case
def direct_code_blocks_without_llm():
    env = base_env()
    rc, out, err = console(["```python\nx = 6 * 7\nprint('answer', x)\n```",
                            "```bash\necho from-bash $((2 + 3))\n```",
                            "```python\nprint('still', x)\n```"], env)
    expect(rc == 0, f"exit {rc}", out + err)
    expect("answer 42" in out, "python block ran", out)
    expect("from-bash 5" in out, "bash block ran", out)
    expect("still 42" in out, "state kept between blocks", out)


@case
def no_llm_configured():
    rc, out, err = console(["plot a sine wave"], base_env())
    expect(rc == 0, f"exit {rc}", out + err)
    expect("No LLM is configured" in out and "ANTHROPIC_API_KEY" in out,
           "one clear line says how to configure one", out)


@case
def bad_key_is_one_clear_line_and_never_shown():
    with FakeLLM([{"text": "print(1)"}], key="the-right-key-000") as llm:
        env = llm.anthropic_env()
        env["ANTHROPIC_API_KEY"] = "sk-ant-wrong-key-999"
        rc, out, err = console(["hello"], env)
        expect("401" in out or "rejected" in out.lower(), "the bad key is reported", out)
        expect("sk-ant-wrong-key-999" not in out + err, "the key never appears", out + err)


@case
def invalid_config_stops_startup():
    env = base_env(CODEBOT_MAX_ATTEMPTS="many")
    rc, out, err = console(["hi"], env)
    expect(rc == 2, f"exit 2, got {rc}")
    expect("CODEBOT_MAX_ATTEMPTS" in err and len(err.strip().splitlines()) == 1,
           "one line naming the variable", err)


@case
def commands_help_status_reset():
    env = base_env()
    rc, out, err = console(["```python\nsecret_value = 7\n```", "status", "reset",
                            "```python\nprint('defined' if 'secret_value' in globals() else 'gone')\n```",
                            "help"], env)
    expect(rc == 0, f"exit {rc}", out + err)
    expect("Sandbox:" in out and "History:" in out and "Model:" in out, "status", out)
    expect("Fresh start" in out, "reset confirms", out)
    expect("gone" in out, "reset gives a fresh sandbox", out)
    expect("cancel" in out and "reset" in out and "fenced" in out, "help lists commands", out)


@case
def closed_stdin_ends_cleanly():
    import subprocess
    from harness import BIN
    # fd 0 closed (not /dev/null): the next descriptor would land on it and libuv aborts
    # when it closes it, unless the process opens /dev/null there first.
    p = subprocess.run(["sh", "-c", 'exec "$0" console <&-', BIN], env=base_env(),
                       capture_output=True, timeout=60)
    expect(p.returncode == 0, f"exit 0 with stdin closed, got {p.returncode}",
           p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace"))


@case
def redis_down_keeps_serving():
    env = base_env(REDIS_URL="unix:///nonexistent/redis.sock")
    rc, out, err = console(["```python\nprint('works without redis')\n```",
                            "```python\nprint('and again')\n```"], env)
    expect(rc == 0, f"exit {rc}", out + err)
    expect("works without redis" in out and "and again" in out, "the turns ran", out)
    expect(err.count("not being saved") == 1, "says once that history is not being saved", err)



@case
def ctrl_c_cancels_the_turn_then_quits():
    import signal
    import subprocess
    from harness import BIN
    p = subprocess.Popen([BIN, "console"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=base_env())
    try:
        p.stdin.write(b"```python\nimport time\nprint('long run', flush=True)\ntime.sleep(60)\n```\n")
        p.stdin.flush()
        seen = read_until(p, b"long run")
        p.send_signal(signal.SIGINT)
        seen = read_until(p, b"You: ", seen.split(b"long run")[1])
        expect(b"Stopped" in seen and b"cancel" in seen, "the turn was cancelled", seen.decode())
        expect(p.poll() is None, "the console is still there after one Ctrl-C")
        p.send_signal(signal.SIGINT)
        p.wait(10)
        expect(p.returncode == 0, f"the second Ctrl-C quits cleanly, exit {p.returncode}")
    finally:
        if p.poll() is None:
            p.kill()


@case
def code_is_shown_while_the_model_writes_it():
    import subprocess
    from harness import BIN
    code = "print('streamed ' + 'live')"
    with FakeLLM([{"text": code, "chunk": 4, "delay_ms": 300}]) as llm:
        p = subprocess.Popen([BIN, "console"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=llm.anthropic_env())
        try:
            p.stdin.write(b"stream it\n")
            p.stdin.flush()
            seen = read_until(p, b"print('s")
            expect(b"'live')" not in seen, "part of the code shows before the model finished",
                   seen.decode())
            seen = read_until(p, b"streamed live", seen)
            p.stdin.close()
            p.wait(20)
        finally:
            if p.poll() is None:
                p.kill()


def kill_lock_holder(lock):
    """SIGKILLs the process that holds LOCK open (the sandbox service); its pid or None."""
    import signal
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == lock:
                    os.kill(int(pid), signal.SIGKILL)
                    return int(pid)
            except OSError:
                pass
    return None


@case
def sandbox_service_restarted_when_it_dies_mid_run():
    import subprocess
    import tempfile
    import time
    from harness import BIN
    sock = os.path.join(tempfile.mkdtemp(prefix="sbx-restart-"), "sandboxd.sock")
    env = base_env(CODEBOT_SANDBOX_SOCKET=sock)
    p = subprocess.Popen([BIN, "console"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env)
    try:
        p.stdin.write(b"```python\nimport time\ntime.sleep(2)\nprint('slept')\n```\n")
        p.stdin.flush()
        seen = b""
        while b"Running" not in seen:
            chunk = os.read(p.stdout.fileno(), 4096)
            expect(chunk, "the console ended before running", seen.decode())
            seen += chunk
        time.sleep(0.5)
        killed = kill_lock_holder(sock + ".lock")
        expect(killed, "found the sandbox service to kill")
        out, err = p.communicate(b"", timeout=60)
        out = seen + out
    finally:
        if p.poll() is None:
            p.kill()
        subprocess.run([BIN, "sandbox", "shutdown"], env=env, timeout=10, capture_output=True)
    out = out.decode(errors="replace")
    expect("sandbox service was restarted" in out, "the restart is said", out)
    expect("slept" in out and "Done" in out, "the code ran again on the new service", out)


finish()
