"""Crash-safe files: atomic whole-file writes and durable one-line JSON appends.

Everything a run leaves behind goes through these, so that a process killed at any moment
(SIGKILL, power loss after the fsync) leaves either the old file or the complete new one:

* :func:`atomic_write` writes a temporary file in the same folder, fsyncs it, renames it
  over the target (``os.replace``, atomic on POSIX) and fsyncs the folder;
* :func:`append_line` appends one line in a single ``os.write`` on an ``O_APPEND``
  descriptor and fsyncs it. A kill in the middle of that write can in principle leave a
  torn last line, so :func:`read_lines` skips a line that is not complete JSON (with a
  warning), and the next append starts on a line of its own.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from typing import Any


def _folder_of(path: str) -> str:
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot write {path!r}: its folder {folder!r} does not exist")
    if os.path.isdir(path):
        raise IsADirectoryError(f"cannot write {path!r}: it is a folder")
    return folder


def _fsync_folder(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some platforms cannot open a folder; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's live process, or a platform that cannot tell: keep it
    return True


def _remove_stale_temps(folder: str, name: str) -> None:
    """Delete the temp files of earlier writes of ``name`` whose writer was killed (its
    process no longer exists); a live writer's temp file is left alone."""
    prefix = f".{name}."
    try:
        entries = os.listdir(folder)
    except OSError:
        return
    for entry in entries:
        if not (entry.startswith(prefix) and entry.endswith(".tmp")):
            continue
        pid = entry[len(prefix):].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            try:
                os.unlink(os.path.join(folder, entry))
            except OSError:
                pass


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader (or a crash) sees the old file or the
    whole new one, never a part. The new file keeps the old one's permissions (0o644 for a
    new file). FileNotFoundError naming ``path`` if its folder does not exist.

    The temp file is named ``.<name>.<pid>.<random>.tmp``; a later write of the same name
    deletes those left by writers that were killed before their rename."""
    path = os.fspath(path)
    data = memoryview(data)
    folder = _folder_of(path)
    try:
        mode = os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.{os.getpid()}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_folder(folder)
    _remove_stale_temps(folder, os.path.basename(path))


def append_line(path: str | os.PathLike, line: Any) -> None:
    """Append one line durably: ``line`` (a string without newlines, or any JSON-able value,
    written as compact JSON) and a newline in one ``os.write`` on an ``O_APPEND``
    descriptor, then fsync. If the file ends in a torn line, the new line starts on a line
    of its own."""
    path = os.fspath(path)
    if not isinstance(line, str):
        line = json.dumps(line, separators=(",", ":"), allow_nan=False)
    if "\n" in line or "\r" in line:
        raise ValueError("append_line writes one line; the given line contains a newline")
    _folder_of(path)
    data = (line + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size:
            with open(path, "rb") as f:
                f.seek(size - 1)
                if f.read(1) != b"\n":
                    data = b"\n" + data
        view = memoryview(data)
        while view:  # one write for a regular file; the loop only guards a short write
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def read_lines(path: str | os.PathLike) -> list:
    """The JSON values of a file of :func:`append_line` lines (``[]`` if it does not exist).

    A last line that does not end in a newline or is not valid JSON (a write torn by a
    crash) is skipped with a warning; so is such a line in the middle (a torn line that a
    later append started after). Blank lines are ignored.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return []
    lines = raw.split(b"\n")  # the last item is what follows the last newline
    out, skipped = [], []
    for number, line in enumerate(lines, 1):
        last = number == len(lines)
        if not line.strip():
            continue
        if last:  # no newline after it: torn, even if it happens to parse
            skipped.append(number)
            continue
        try:
            out.append(json.loads(line.decode("utf-8")))
        except ValueError:  # includes UnicodeDecodeError
            skipped.append(number)
    if skipped:
        torn = "a torn last line" if skipped == [len(lines)] else f"torn or unreadable line(s) {skipped}"
        warnings.warn(f"{path}: skipping {torn}", RuntimeWarning, stacklevel=2)
    return out
