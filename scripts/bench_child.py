"""The benchmark scripts' child processes: each measurement runs in a fresh interpreter (its own TF/XLA flags,
threads and imports) and hands its result back as one `RESULT <json>` line on stdout."""
from __future__ import annotations

import json
import os
import subprocess
from typing import Any, Dict, List, Mapping, Optional

PREFIX = "RESULT "


class ChildFailed(RuntimeError):
    """A child exited with an error or printed no result; the message holds the end of its output."""

    def __init__(self, what: str, out: subprocess.CompletedProcess):
        self.last_line = (out.stderr.strip().splitlines() or ["no output"])[-1]
        super().__init__(f"{what} failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")


def report(result: Any) -> None:
    """In the child: print `result` as the line `run` reads."""
    print(PREFIX + json.dumps(result), flush=True)


def run(args: List[str], what: str, env: Optional[Mapping[str, str]] = None, cwd: Optional[str] = None) -> Dict:
    """Run the command `args` (TF's log quiet, `env` added to this environment) and return the result it
    reported; `ChildFailed` (naming `what`) if it failed or reported none."""
    out = subprocess.run(args, capture_output=True, text=True, cwd=cwd,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})})
    lines = [line for line in out.stdout.splitlines() if line.startswith(PREFIX)]
    if out.returncode != 0 or not lines:
        raise ChildFailed(what, out)
    return json.loads(lines[-1][len(PREFIX):])
