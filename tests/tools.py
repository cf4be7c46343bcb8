"""Running the command-line tools in training/ as real processes, for the end-to-end tests."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_tool(script: str, *flags: str) -> subprocess.CompletedProcess:
    """Runs `training/<script>` with `flags`; fails the test unless it exits 0."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run([sys.executable, os.path.join(ROOT, "training", script), *flags],
                            capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def file_size_limit(max_bytes: int):
    """A `preexec_fn` under which no file the process writes can grow past `max_bytes`:
    the write fails with EFBIG ("File too large"), as writes to a full disk fail with
    ENOSPC (Python ignores the SIGXFSZ signal that would otherwise end the process)."""
    import resource

    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))


def bytes_read(pid="self") -> int:
    """Bytes process `pid` has read through read()/pread() so far (Linux /proc)."""
    with open(f"/proc/{pid}/io") as f:
        return int(next(line for line in f if line.startswith("rchar:")).split()[1])
