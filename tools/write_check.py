"""Can a tool write its output where it was told to? Asked by trying, before any work that
the write would come at the end of."""
from __future__ import annotations

import tempfile
from pathlib import Path


def write_problem(out: Path) -> str:
    """Why no file can be made in ``out`` ("" if one can), found by trying: the folders
    missing made (as mkdir -p), a file made in ``out`` and removed, then those folders
    removed again. os.access answers yes to root for /proc, say, where no folder can be
    made, and the timing would run for minutes before the write failed."""
    missing = []
    folder = out
    while not (folder.exists() or folder.is_symlink()) and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    made = []
    try:
        for folder in reversed(missing):
            try:
                folder.mkdir()
            except FileExistsError:  # ("new/.." once new is made)
                if folder.is_dir():
                    continue
                raise
            made.append(folder)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-check."):
            pass
    except OSError as error:
        return error.strerror or str(error)
    finally:
        for folder in reversed(made):
            try:
                folder.rmdir()
            except OSError:
                pass
    return ""
