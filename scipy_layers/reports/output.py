"""The report set, written all or nothing.

Every file is first written into a staging folder made inside the output directory
(so on the same filesystem, and nothing is ever written outside the output directory),
then swapped in by renames: each file the run replaces is moved aside into the staging
folder first, and if any rename fails every one done so far is undone, so the output
directory is either the whole new set or exactly what it was. A manifest
(``.scipy-layers-report.json``) lists what the tool wrote, with each file's SHA-256:
a later run removes the files an earlier run wrote that it does not write again, unless
they changed since; files the tool did not write are never touched.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Callable, IO, Iterator

from .errors import ReportError

MANIFEST = ".scipy-layers-report.json"
MANIFEST_VERSION = 1
STAGING_PREFIX = ".scipy-layers-report.staging-"
# reports/README.md is committed documentation: the command never writes it.
PROTECTED = {"README.md", MANIFEST}


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


def check_output_path(output) -> Path:
    if str(output) == "":
        raise ReportError("the output directory is an empty path; name a directory "
                          "(default reports/latest)")
    output = Path(output)
    made = _as_made(output)
    for path in (made, *made.parents):  # (mkdir would say "File exists")
        if path.is_symlink() and not path.exists():
            raise ReportError(f"{output}: {path} is a symbolic link that leads nowhere "
                              f"(to {os.readlink(path)!r}); name a directory")
    if made.exists() and not made.is_dir():
        raise ReportError(f"{output}: output path exists and is not a directory")
    for folder in made.parents:  # (else mkdir's "File exists" names the wrong path)
        if folder.exists():
            if not folder.is_dir():
                raise ReportError(f"{output}: {folder} is a file, not a directory")
            break
    return output


def _as_made(output: Path) -> Path:
    """``output`` as _make_directories will have made it: a ".." after a folder that
    does not exist yet names where that new folder is made (mkdir -p), so it is dropped
    with it; the checks above then look at the folders that will be there."""
    made = Path(output.anchor)
    for part in output.parts[1 if output.anchor else 0:]:
        if part == ".." and made.name not in ("", "..") and not made.exists():
            made = made.parent
        else:
            made = made / part
    return made


def check_output(output, results_dir) -> Path:
    """The checks on the output directory that need no work done first (check_output_path,
    check_outside_results): the report makes them before reading, and make compare
    before its timing."""
    output = check_output_path(output)
    check_outside_results(output, results_dir)
    return output


def check_outside_results(output, results_dir) -> None:
    """The output directory may not lie in the results directory (or be it): asv reads
    every .json below results/, and the report's own manifest and CSVs there would stop
    asv and every later report."""
    try:
        where, results = Path(output).resolve(), Path(results_dir).resolve()
    except (OSError, RuntimeError) as exc:  # (a symlink loop: RuntimeError before 3.13)
        raise ReportError(f"{output} or {results_dir}: cannot follow the path ({exc})") from None
    if where == results or results in where.parents:
        raise ReportError(f"{output}: the output directory is inside the results directory "
                          f"{results_dir}, where asv (and the next report) would read the "
                          "report's .json manifest as a results file; write it outside, e.g. "
                          "reports/latest")


def _make_directories(output: Path) -> list[Path]:
    """Create ``output`` and any missing parents, as mkdir -p does; return those created,
    outermost first."""
    missing = []
    for folder in (output, *output.parents):
        if folder.is_dir():
            break
        missing.append(folder)
    created = []
    try:
        for folder in reversed(missing):
            try:
                folder.mkdir()
            except FileExistsError:
                if folder.is_dir():  # ("new/.." once new is made)
                    continue
                raise
            created.append(folder)
    except OSError as exc:
        _remove_empty(created)
        raise ReportError(f"{output}: cannot create the output directory ({_why(exc)})") from None
    return created


def _remove_empty(folders: list[Path]) -> None:
    for folder in reversed(folders):
        with contextlib.suppress(OSError):
            folder.rmdir()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _plain_name(name) -> bool:
    """A name the tool may write or remove: a plain file name inside the output directory."""
    return (isinstance(name, str) and name != "" and Path(name).name == name
            and not name.startswith(".") and "\\" not in name and "\0" not in name
            and name not in PROTECTED)


def previous_files(output: Path) -> dict[str, str]:
    """name -> SHA-256 from an earlier run's manifest; empty if there is none or it is
    not one this tool wrote (then nothing is removed as stale)."""
    try:
        data = json.loads((output / MANIFEST).read_text(encoding="utf-8"))
        files = data["files"]
        return {n: h for n, h in files.items() if _plain_name(n) and isinstance(h, str)}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


class Staging:
    """The staging folder of one run: ``write_*`` put files there, ``commit`` swaps them in."""

    def __init__(self, output: Path, folder: Path):
        self.output, self.folder = output, folder
        self.names: list[str] = []
        self.removed: list[Path] = []  # set by commit: an earlier run's files it took away

    def path(self, name: str) -> Path:
        if not _plain_name(name):
            raise ValueError(f"refusing to write {name!r}: not a plain report file name")
        if name in self.names:
            raise ValueError(f"{name!r} written twice in one report")
        self.names.append(name)
        return self.folder / name

    def write(self, name: str, write: Callable[[IO], None], binary=False) -> None:
        target = self.path(name)
        mode = "wb" if binary else "w"
        try:
            with target.open(mode, **({} if binary else {"encoding": "utf-8", "newline": ""})) as handle:
                write(handle)
        except OSError as exc:
            raise ReportError(f"{self.output}: cannot write {name} ({_why(exc)})") from None

    def write_csv(self, name: str, frame) -> None:
        frame = _dates_as_text(frame)
        self.write(name, lambda handle: frame.to_csv(handle, index=False))

    def write_text(self, name: str, text: str) -> None:
        self.write(name, lambda handle: handle.write(text))

    def write_figure(self, name: str, figure) -> None:
        self.write(name, lambda handle: figure.savefig(handle, format="png"), binary=True)

    def commit(self) -> list[Path]:
        """Swap the staged files in, drop stale ones, write the manifest; undo on failure.
        Returns the files written; ``removed`` then holds the stale ones dropped, for the
        caller to name (a --no-plots run into a folder of plots removes them)."""
        output, previous = self.output, previous_files(self.output)
        for name in [*self.names, MANIFEST]:
            target = output / name
            if target.is_symlink() or (target.exists() and not target.is_file()):
                raise ReportError(f"{target}: exists and is not a file the report wrote; "
                                  "move it away")
        stale = [n for n in previous if n not in self.names and (output / n).is_file()
                 and not (output / n).is_symlink() and _sha256(output / n) == previous[n]]
        manifest = {"version": MANIFEST_VERSION, "tool": "scipy-layers-report",
                    "files": {n: _sha256(self.folder / n) for n in self.names}}
        (self.folder / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
        aside = self.folder / ".previous"
        aside.mkdir()
        undo: list[tuple[Path, Path]] = []  # (from, to) renames that undo what was done

        def move(source: Path, target: Path) -> None:
            os.replace(source, target)
            undo.append((target, source))

        try:
            for name in [*self.names, MANIFEST]:
                if (output / name).exists():
                    move(output / name, aside / name)
                move(self.folder / name, output / name)
            for name in stale:
                move(output / name, aside / name)
        except BaseException as exc:  # (Ctrl-C too: the staging folder, where the earlier
            for source, target in reversed(undo):  # files are, is removed after this)
                with contextlib.suppress(OSError):
                    os.replace(source, target)
            if not isinstance(exc, OSError):
                raise
            raise ReportError(f"{output}: cannot move the new report files in ({_why(exc)}); "
                              "the directory is as it was") from None
        self.removed = [output / name for name in sorted(stale)]
        return [output / name for name in self.names]


@contextlib.contextmanager
def staged_output(output) -> Iterator[Staging]:
    """A Staging for ``output`` (created if missing). On any exception the staging
    folder, and any directory this made, are removed and the exception goes on."""
    output = check_output_path(output)
    created = _make_directories(output)
    try:
        folder = Path(tempfile.mkdtemp(dir=output, prefix=STAGING_PREFIX))
    except OSError as exc:
        _remove_empty(created)
        raise ReportError(f"{output}: cannot write into the output directory ({_why(exc)})") from None
    try:
        yield Staging(output, folder)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        _remove_empty(created)
        raise
    shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def matplotlib_confined(staging: Staging) -> Iterator[None]:
    """Import matplotlib with its config and cache folder inside the staging folder, so
    its font cache is never written outside the output directory. An existing font
    cache of the user's is copied in (read, never written), which spares the rebuild.
    A process that imported matplotlib already keeps its own folders."""
    if "matplotlib" in sys.modules:
        yield
        return
    folder = staging.folder / ".matplotlib"
    folder.mkdir()
    for cached in _user_font_caches():
        with contextlib.suppress(OSError):
            shutil.copyfile(cached, folder / cached.name)
    saved = os.environ.get("MPLCONFIGDIR")
    os.environ["MPLCONFIGDIR"] = str(folder)
    try:
        import matplotlib  # noqa: F401  (reads MPLCONFIGDIR once, at import)
        yield
    finally:
        if saved is None:
            os.environ.pop("MPLCONFIGDIR", None)
        else:
            os.environ["MPLCONFIGDIR"] = saved


def _user_font_caches() -> list[Path]:
    """matplotlib's font cache files where it would look without MPLCONFIGDIR (Linux:
    $XDG_CACHE_HOME or ~/.cache; elsewhere ~/.matplotlib), or in the user's own MPLCONFIGDIR."""
    home = Path(os.path.expanduser("~"))
    folders = [os.environ.get("MPLCONFIGDIR"),
               Path(os.environ.get("XDG_CACHE_HOME") or home / ".cache") / "matplotlib",
               home / ".matplotlib"]
    found = []
    for folder in folders:
        if folder:
            with contextlib.suppress(OSError):
                found += sorted(Path(folder).glob("fontlist-v*.json"))
    return found


def _dates_as_text(frame):
    """Datetime columns as ISO 8601 text, formatted once per distinct date: pandas
    formats every row otherwise, a third of the time of a 50-commit timings.csv."""
    import pandas as pd

    dates = {}
    for column in frame.columns[[isinstance(t, pd.DatetimeTZDtype) for t in frame.dtypes]]:
        codes, uniques = pd.factorize(frame[column])
        text = uniques.strftime("%Y-%m-%dT%H:%M:%S%z").to_numpy(dtype=object)
        dates[column] = pd.Series(text, dtype=object).take(codes).where(codes >= 0).to_numpy()
    return frame.assign(**dates) if dates else frame
