"""Running a benchmark's command in a fresh Python process."""

import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def run_python(*arguments: str, environment: dict[str, str] | None = None) -> str:
    """Run `python arguments…` (this interpreter) in the repository root, with `environment`
    added to this process's; its stdout.

    A failing command raises RuntimeError with the end of its stderr: a benchmark that timed a
    crash would report a meaningless time.
    """
    completed = subprocess.run([sys.executable, *arguments], cwd=ROOT, capture_output=True, text=True, env={**os.environ, **(environment or {})})
    if completed.returncode != 0:
        raise RuntimeError(f"`python {' '.join(arguments)}` failed ({completed.returncode}):\n{completed.stderr[-3000:]}")
    return completed.stdout
