"""Every command-line tool (training/, savedmodels/, benchmarks/, docs/) follows one convention
(keras_attnpool/cli.py): absl flags, --help answered with exit code 0, and a bad flag answered
with one line on stderr and exit code 2, never a traceback.

The tools are found by their `if __name__ == "__main__":` line, so a new one is covered
without being listed here; each runs as its own program, in parallel with one other.
"""

import os
import pathlib
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
TOOL_FOLDERS = ("training", "savedmodels", "benchmarks", "docs")
MAIN_LINE = 'if __name__ == "__main__":'
FLAG_DEFINITION = re.compile(r'DEFINE_\w+\(\s*"(\w+)"')


def _scripts(with_main: bool) -> list:
    return sorted(str(path.relative_to(ROOT)) for folder in TOOL_FOLDERS
                  for path in (ROOT / folder).glob("*.py")
                  if (MAIN_LINE in path.read_text()) == with_main)


TOOLS = _scripts(with_main=True)


def _run(tool: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, tool, *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})


@pytest.fixture(scope="module")
def answers() -> dict:
    """{(tool, case): the finished process} for --help and an unknown flag, run two at a
    time (each start costs about a second, most of it Python's and absl's imports)."""
    cases = {"help": ["--help"], "unknown": ["--no_such_flag=1"]}
    jobs = [(tool, case) for tool in TOOLS for case in cases]
    with ThreadPoolExecutor(max_workers=2) as pool:
        done = pool.map(lambda job: _run(job[0], *cases[job[1]]), jobs)
        return dict(zip(jobs, done))


def test_the_tools_are_found():
    for expected in ("training/fit.py", "training/prepare.py", "savedmodels/client.py",
                     "benchmarks/ablate.py", "benchmarks/head_cost.py", "docs/make_docs.py"):
        assert expected in TOOLS
    assert "benchmarks/ablation.py" not in TOOLS  # a module of functions, not a tool


@pytest.mark.parametrize("tool", TOOLS)
def test_help_exits_0_and_lists_the_flags(tool, answers):
    result = answers[(tool, "help")]
    assert result.returncode == 0, result.stderr[-2000:]
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    own_flags = FLAG_DEFINITION.findall((ROOT / tool).read_text())
    assert own_flags, f"{tool} defines no absl flag"
    assert any(f"--{name}" in output for name in own_flags), output[-2000:]


@pytest.mark.parametrize("tool", TOOLS)
def test_an_unknown_flag_exits_2_with_one_line(tool, answers):
    result = answers[(tool, "unknown")]
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith(f"{os.path.basename(tool)}: error: ")
    assert "no_such_flag" in lines[0]


@pytest.mark.parametrize("module", _scripts(with_main=False))
def test_modules_beside_the_tools_define_no_flags(module):
    """absl flags are global: a module that the tests or another tool import must not
    define any, or two importers of it would clash (DuplicateFlagError)."""
    assert not FLAG_DEFINITION.findall((ROOT / module).read_text()), module


PROGRAM = """
import os, sys
from keras_attnpool import cli
with cli.libjpeg_warnings_counted():
    for _ in range(3):
        os.write(2, b"Corrupt JPEG data: 87 extraneous bytes before marker 0xdb\\n")
    os.write(2, b"a line of its own\\n")
    if sys.argv[1] == "fail":
        cli.fail("it failed")
print("done")
"""


@pytest.mark.parametrize("outcome", ["success", "fail"])
def test_libjpeg_warnings_are_counted_and_other_lines_pass(outcome, tmp_path):
    (tmp_path / "tool.py").write_text(PROGRAM)
    result = subprocess.run([sys.executable, str(tmp_path / "tool.py"), outcome],
                            capture_output=True, text=True, timeout=60)
    lines = result.stderr.splitlines()
    assert "Corrupt JPEG data" not in result.stderr.split("(libjpeg: ")[0]
    assert lines[0] == "a line of its own"
    if outcome == "fail":
        assert result.returncode == 2 and lines[1:] == ["tool.py: error: it failed"]
    else:
        assert result.returncode == 0 and result.stdout == "done\n"
        assert lines[1:] == ["tool.py: warning: 3 JPEG frames held damaged data and were "
                             "decoded as far as they could be (libjpeg: Corrupt JPEG data: 87 "
                             "extraneous bytes before marker 0xdb)"]
