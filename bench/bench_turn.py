#!/usr/bin/env python3
"""The overhead codebot adds to a turn: from a message to its first output line and to
`Done`, with an LLM that answers at once (tests/fakes/fake_llm.py) and the real sandbox,
through `codebot console`. Prints medians over many turns, and the same for a fenced code
block (no LLM at all)."""
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
from harness import BIN, FakeLLM, base_env  # noqa: E402

TURNS = int(os.environ.get("BENCH_TURNS", "40"))


def read_until(proc, marker, buf):
    while marker not in buf[0]:
        chunk = os.read(proc.stdout.fileno(), 65536)
        if not chunk:
            raise RuntimeError("console ended early:\n" + buf[0][-2000:])
        buf[0] += chunk.decode(errors="replace")
    i = buf[0].index(marker) + len(marker)
    buf[0] = buf[0][i:]


def measure(env, message, first_line):
    proc = subprocess.Popen([BIN, "console"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=env)
    buf = [""]
    read_until(proc, "You: ", buf)
    firsts, dones = [], []
    for i in range(TURNS + 3):
        t0 = time.perf_counter()
        proc.stdin.write((message + "\n").encode())
        proc.stdin.flush()
        read_until(proc, first_line, buf)
        t1 = time.perf_counter()
        read_until(proc, "Done", buf)
        t2 = time.perf_counter()
        read_until(proc, "You: ", buf)
        if i >= 3:  # the first turns start the sandbox
            firsts.append((t1 - t0) * 1000)
            dones.append((t2 - t0) * 1000)
    proc.stdin.write(b"exit\n")
    proc.stdin.flush()
    proc.wait(30)
    return statistics.median(firsts), statistics.median(dones)


def main():
    with FakeLLM([{"text": "print('bench-' + 'output')", "chunk": 1000, "delay_ms": 0}]) as llm:
        # The marker is only in the output, never in the code shown before it.
        f, d = measure(llm.anthropic_env(), "print a line", "bench-output")
        print(f"turn (LLM answers at once): message -> first output line  median {f:7.1f} ms")
        print(f"turn (LLM answers at once): message -> Done               median {d:7.1f} ms")
    env = base_env()
    f, d = measure(env, "```python\nprint('bench-' + 'output')\n```", "bench-output")
    print(f"fenced code block (no LLM):  message -> first output line  median {f:7.1f} ms")
    print(f"fenced code block (no LLM):  message -> Done               median {d:7.1f} ms")
    print(f"({TURNS} turns each, after 3 warm-up turns)")


if __name__ == "__main__":
    main()
