"""Atomic writes: a partial file (or folder of files) never appears under its final name."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np

_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def write_json(path: str | Path, data: Any) -> Path:
    """Write ``data`` as indented JSON to ``path`` atomically; returns the path."""
    return write_text(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def write_npy(path: str | Path, array: np.ndarray) -> Path:
    """Write ``array`` as a .npy file to ``path`` atomically; returns the path."""
    return atomic_write(path, lambda f: np.save(f, array, allow_pickle=False))


@contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """Write a folder all at once: its files appear together, or not at all.

    Fill a temporary folder beside ``path`` (yielded), then rename it to ``path``, which
    must not exist or be an empty folder (e.g. one just claimed); on an error the temporary
    folder is removed, so ``path`` never holds a partial set of files.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_UMASK)
        os.rename(tmp, path)  # replaces an empty folder atomically; refuses a non-empty one
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()  # the empty folder claimed for it
        raise
