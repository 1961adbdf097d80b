"""Durable writes: fsync files and directories so that a crash or power loss cannot leave a file
that was renamed into place with missing or zero-length contents.

A rename is only durable once the directory holding the new name is fsynced, and the renamed
file's data only once the file itself was fsynced before the rename. `CheckpointManager`,
`BaseAgent.save` and the buffer writer all go through these helpers.

>>> import os, tempfile
>>> folder = tempfile.mkdtemp()
>>> write_text(os.path.join(folder, "latest"), "step_000000100\\n")
>>> open(os.path.join(folder, "latest")).read()
'step_000000100\\n'
>>> fsync_tree(folder)
"""
from __future__ import annotations

import errno
import os
from typing import Optional

#: errno -> what it means for a save: the disk, the quota, or the size allowed for one file is exhausted.
NO_SPACE = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
            errno.EFBIG: "file too large (the limit on the size of a file, `ulimit -f`, was reached)"}
_NO_SPACE_TEXTS = {"no space left on device": errno.ENOSPC, "disk quota exceeded": errno.EDQUOT,
                   "file too large": errno.EFBIG}


def fsync_file(path: str) -> None:
    """Flush the contents of the file at `path` to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str) -> None:
    """Flush the entries of directory `path` (new, renamed or removed names) to the disk."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: str) -> None:
    """Fsync every file under `root`, then every directory bottom-up, `root` last."""
    for folder, _, files in os.walk(root, topdown=False):
        for name in files:
            fsync_file(os.path.join(folder, name))
        fsync_dir(folder)


def write_text(path: str, text: str) -> None:
    """Replace the file at `path` by `text` atomically and durably (temp file, fsync, rename, fsync dir)."""
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    fsync_dir(os.path.dirname(os.path.abspath(path)))


def no_space_reason(exc: BaseException) -> Optional[str]:
    """What ran out, in plain words, if `exc` means the disk, the quota or the allowed file size
    (RLIMIT_FSIZE) is exhausted; else None.

    `OSError`s are recognized by errno; errors of TensorFlow's file writers (which carry no errno)
    by their message.

    >>> no_space_reason(OSError(errno.ENOSPC, "No space left on device"))
    'no space left on device'
    >>> no_space_reason(ValueError("bad shape")) is None
    True
    """
    if isinstance(exc, OSError) and exc.errno in NO_SPACE:
        return NO_SPACE[exc.errno]
    text = str(exc).lower()
    for words, code in _NO_SPACE_TEXTS.items():
        if words in text:
            return NO_SPACE[code]
    return None
