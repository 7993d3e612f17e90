"""The integration path under valgrind: a console session through the real sandbox, Redis
and a scripted LLM (an error fixed on the next attempt, a fenced block, a figure, status,
reset) with no invalid access and no leak. Always the plain build (valgrind cannot run an
ASan binary), whichever binary the rest of the suite tests."""
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ROOT, FakeLLM, case, expect, finish  # noqa: E402

PLAIN = os.path.join(ROOT, "build", "codebot")


@case
def console_session_is_valgrind_clean():
    expect(shutil.which("valgrind"), "valgrind is installed (scripts/deps.sh installs it)")
    script = [{"text": "x = 1/0"}, {"text": "print('fixed', 40 + 2)"},
              {"text": "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()"}]
    with FakeLLM(script) as llm:
        env = llm.anthropic_env(CODEBOT_SANDBOXD_BIN=PLAIN)
        p = subprocess.run(
            ["valgrind", "--error-exitcode=99", "--leak-check=full",
             "--show-leak-kinds=definite,indirect", "--errors-for-leak-kinds=definite,indirect",
             "--track-fds=no", "-q", PLAIN, "console"],
            input=b"divide by zero then fix it\n```python\nprint('direct')\n```\nplot\nstatus\n"
                  b"reset\n",
            env=env, capture_output=True, timeout=600)
        out, err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
        expect(p.returncode == 0, f"valgrind found errors or leaks (exit {p.returncode})", err)
        expect("fixed 42" in out and "direct" in out and "figure-1.png" in out
               and "Fresh start" in out, "the whole session ran", out)


finish()
