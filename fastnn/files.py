"""Writing a file so that a crash never leaves half of it, with the mode a user expects.

A new file is written under a temporary name in the target's folder, flushed to disk,
and renamed over the target only when complete. The temporary file is created private
(mode 0600, as ``tempfile.mkstemp`` makes it), and a rename keeps the mode, so before
the rename it gets the mode of the file it replaces, or, for a new file, the mode any
new file gets under the process's umask (0644 under the usual 022).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


def current_umask() -> int:
    """The process's umask, read without changing it where Linux shows it in /proc (else
    set and restored at once, as Python offers no other way)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def mode_for(target: Path) -> int:
    """The permission bits ``target`` should get: its own if it exists, else a new file's."""
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        return 0o666 & ~current_umask()


@contextlib.contextmanager
def replaced_atomically(target: Path) -> Iterator[BinaryIO]:
    """A binary stream whose contents replace ``target`` when the block ends normally;
    if it raises (Ctrl-C included), the partial file is removed and ``target`` is as it
    was. The target's folder is created if missing."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial",
                                         dir=target.parent)  # fmt: skip
    try:
        with os.fdopen(handle, "wb") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temp_name, mode_for(target))
        os.replace(temp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
