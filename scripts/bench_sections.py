"""BENCHMARKS.md sections between marker comments, written by the benchmark scripts."""
from __future__ import annotations

import os

PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "BENCHMARKS.md")


def write_section(start: str, end: str, text: str, append: bool = False, path: str = PATH) -> None:
    """Replace the text between the `start` and `end` markers of BENCHMARKS.md with `text` (after what is there,
    with `append`), or add the section at the end. The file is re-read just before writing: other scripts write
    their own sections."""
    with open(path) as fh:
        content = fh.read()
    if append and start in content and end in content:
        text = content.split(start, 1)[1].split(end, 1)[0].strip("\n") + "\n" + text
    section = f"{start}\n{text}\n{end}"
    if start in content and end in content:
        head, rest = content.split(start, 1)
        content = head + section + rest.split(end, 1)[1]
    else:
        content = content.rstrip("\n") + "\n\n" + section + "\n"
    with open(path, "w") as fh:
        fh.write(content)
