"""Running the real `robust` command in tests."""

import subprocess
import sys
from pathlib import Path

ROBUST = str(Path(sys.executable).parent / "robust")
FASHION = "/usr/share/datasets/fashion-mnist"


def robust(*args, cwd, timeout=600, env=None) -> subprocess.CompletedProcess:
    """Run `robust ARGS...` in cwd; returns the finished process (text output)."""
    return subprocess.run([ROBUST, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


def ok(process: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert process.returncode == 0, f"exit {process.returncode}\n{process.stdout}\n{process.stderr}"
    return process
