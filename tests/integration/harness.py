"""Shared helpers for integration tests that drive the real codebot binary.

Each test prints `PASS: name` / `FAIL: name` and the file exits 1 when any case failed.
The environment comes from scripts/test.sh: CODEBOT_BIN, REDIS_URL (a private Redis),
CODEBOT_SANDBOX_SOCKET and CODEBOT_VAR.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("CODEBOT_BIN", os.path.join(ROOT, "build", "codebot"))
PY = "/usr/bin/python3"
_failed = []


def case(fn):
    """Runs FN as one test case and reports it."""
    name = fn.__name__
    try:
        fn()
        print(f"PASS: {name}", flush=True)
    except Exception as e:  # an assertion or anything unexpected fails the case
        _failed.append(name)
        print(f"FAIL: {name}: {e}", flush=True)
        traceback.print_exc(file=sys.stdout)
    return fn


def finish():
    sys.exit(1 if _failed else 0)


def unique(prefix="t"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def base_env(**extra):
    """The environment for codebot: no LLM keys unless given, a private channel."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ANTHROPIC_", "OPENAI_", "CODEBOT_LLM", "CODEBOT_MODEL"))}
    env.setdefault("CODEBOT_CONSOLE_FILES", tempfile.mkdtemp(prefix="codebot-files-"))
    env["CODEBOT_CONSOLE_CHANNEL"] = unique("ch")
    env.update({k: str(v) for k, v in extra.items()})
    return env


class FakeLLM:
    """tests/fakes/fake_llm.py with a script; the requests it got are in .requests()."""

    def __init__(self, script, key="test-key-123456"):
        self.dir = tempfile.mkdtemp(prefix="fake-llm-")
        self.key = key
        self.script_path = os.path.join(self.dir, "script.json")
        self.log_path = os.path.join(self.dir, "log.jsonl")
        port_file = os.path.join(self.dir, "port")
        with open(self.script_path, "w") as f:
            json.dump(script, f)
        args = [PY, os.path.join(ROOT, "tests", "fakes", "fake_llm.py"), "--port-file", port_file,
                "--script", self.script_path, "--log", self.log_path]
        if key:
            args += ["--key", key]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 10
        while time.time() < deadline:
            if os.path.exists(port_file) and open(port_file).read().strip():
                self.port = int(open(port_file).read())
                return
            if self.proc.poll() is not None:
                raise RuntimeError("fake_llm died: " + self.proc.stderr.read().decode())
            time.sleep(0.02)
        raise RuntimeError("fake_llm did not start")

    def anthropic_env(self, **extra):
        return base_env(ANTHROPIC_API_KEY=self.key,
                        ANTHROPIC_BASE_URL=f"http://127.0.0.1:{self.port}", **extra)

    def openai_env(self, **extra):
        env = base_env(CODEBOT_LLM="openai", OPENAI_BASE_URL=f"http://127.0.0.1:{self.port}/v1",
                       **extra)
        if self.key:
            env["OPENAI_API_KEY"] = self.key
        return env

    def requests(self):
        if not os.path.exists(self.log_path):
            return []
        with open(self.log_path) as f:
            return [json.loads(line) for line in f if line.strip()]

    def close(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def console(messages, env, timeout=120):
    """Runs `codebot console` with MESSAGES piped in; returns (exit code, stdout, stderr)."""
    text = "".join(m if m.endswith("\n") else m + "\n" for m in messages)
    p = subprocess.run([BIN, "console"], input=text.encode(), env=env, capture_output=True,
                       timeout=timeout)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def read_until(p, marker, seen=b"", timeout=60):
    """Reads P's stdout until MARKER has appeared; returns everything read so far."""
    deadline = time.time() + timeout
    while marker not in seen:
        expect(time.time() < deadline, f"timed out waiting for {marker!r}", seen.decode())
        chunk = os.read(p.stdout.fileno(), 4096)
        expect(chunk, f"output ended before {marker!r}", seen.decode())
        seen += chunk
    return seen


def expect(cond, what, context=""):
    if not cond:
        raise AssertionError(what + ("\n--- context ---\n" + context[-3000:] if context else ""))
