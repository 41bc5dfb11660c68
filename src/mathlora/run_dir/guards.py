"""Who may write where: one writer per run folder (``RunLock``, an OS file lock), output folders mathlora
may replace (the ``.mathlora-artifact`` marker: user data is never deleted), symbolic links out of the run
folder (refused), and the leftovers of interrupted atomic writes (removed)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from pathlib import Path

from mathlora.errors import MathloraError
from mathlora.run_dir.layout import RunLayout
from mathlora.run_dir.records import read_json_document
from mathlora.run_dir.atomic import json_text

ARTIFACT_MARKER = ".mathlora-artifact"


def write_artifact_marker(folder: str | os.PathLike, kind: str) -> None:
    """Mark ``folder`` as a mathlora artifact of ``kind`` (``tokens``, ``merged``): it may be replaced later."""
    Path(folder, ARTIFACT_MARKER).write_text(json_text({"kind": kind}, indent=None) + "\n", encoding="utf-8")


def artifact_kind(folder: str | os.PathLike) -> str | None:
    try:
        data = read_json_document(Path(folder, ARTIFACT_MARKER), "artifact marker")
    except (MathloraError, OSError):
        return None
    return data.get("kind") if isinstance(data, dict) else None


def check_output_dir(path: str | os.PathLike, kind: str, *, overwrite: bool = False,
                     known_files: tuple[str, ...] = ()) -> Path:
    """Refuse an output folder whose replacement could destroy data mathlora did not create.

    An existing non-empty folder is replaced only when it is a mathlora artifact of ``kind`` (its marker,
    or only ``known_files`` in it: folders written before markers existed) or with ``overwrite``. The
    current folder (or one above it) and symbolic links are never replaced.
    """
    p = Path(path)
    if p.name in ("", ".", ".."):
        raise MathloraError(f"output {path!r} names the current folder or one above it; "
                            f"give a new folder, e.g. --output {kind}")
    resolved = p.resolve()
    cwd = Path.cwd().resolve()
    if resolved == cwd or resolved in cwd.parents:
        raise MathloraError(f"output {path} is the current folder or one above it; give a new folder")
    if p.is_symlink():
        raise MathloraError(f"output {p} is a symbolic link; give a real folder path "
                            "(mathlora does not replace folders through links)")
    if p.exists() and not p.is_dir():
        raise MathloraError(f"output {p} exists and is a file; expected a folder path")
    if p.is_dir() and not overwrite:
        names = {e.name for e in p.iterdir()}
        ours = artifact_kind(p) == kind or (known_files and names <= set(known_files) | {ARTIFACT_MARKER})
        if names and not ours:
            found = artifact_kind(p)
            what = f"a mathlora {found} folder" if found else "not a mathlora folder"
            raise MathloraError(f"output folder {p} is not empty and is {what} (holds e.g. {sorted(names)[0]!r}); "
                                f"refusing to replace it: give a new folder, or --overwrite to replace it")
    return p


_HELD_LOCKS: dict[str, list] = {}


class RunLock:
    """An exclusive OS lock (``flock``) on a run folder, held by this process until released.

    Re-entrant within a process; a second process gets one error line naming the holder's PID. The lock
    goes away with the process (even on ``kill -9``): nothing to clean up by hand.
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def acquire(self) -> None:
        try:
            import fcntl
        except ImportError:  # not on POSIX: no locking
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        key = str(self.folder.resolve())
        if key in _HELD_LOCKS:
            _HELD_LOCKS[key][1] += 1
            return
        fd = os.open(RunLayout(self.folder).lock, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 64).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise MathloraError(f"run folder {self.folder} is in use by another mathlora process (PID {holder}); "
                                "wait for it to finish or stop it") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        _HELD_LOCKS[key] = [fd, 1]

    def release(self) -> None:
        key = str(self.folder.resolve())
        held = _HELD_LOCKS.get(key)
        if held is None:
            return
        held[1] -= 1
        if held[1] == 0:
            import fcntl

            del _HELD_LOCKS[key]
            with contextlib.suppress(OSError):
                os.ftruncate(held[0], 0)
            fcntl.flock(held[0], fcntl.LOCK_UN)
            os.close(held[0])


def enclosing_run_dir(path: str | os.PathLike, levels: int = 3) -> Path | None:
    """The run folder (a folder with ``manifest.json``) holding ``path``, looking ``levels`` folders up."""
    p = Path(path).absolute().parent
    for _ in range(levels):
        if RunLayout(p).manifest.is_file():
            return p
        if p.parent == p:
            break
        p = p.parent
    return None


def lock_for_output(path: str | os.PathLike | None) -> contextlib.AbstractContextManager:
    """The run-folder lock when ``path`` lies in a run folder, else a no-op (stage commands)."""
    root = enclosing_run_dir(path) if path is not None else None
    return RunLock(root) if root is not None else contextlib.nullcontext()


# the names atomic writes make: ``.<name>.<random>.tmp`` (tempfile's) and ``.<name>.old.<pid>``
_STEP_FOLDER = re.compile(r"^step-\d+$")
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?:[a-z0-9_]+\.tmp|old\.\d+)$")


def _artifact_folders(layout: RunLayout) -> list[Path]:
    """The run folder and the folders of its own artifacts: the only places atomic writes leave temp names."""
    lay = layout
    checkpoints = lay.eval_checkpoints  # and each checkpoint's evaluation (eval/checkpoints/step-N/)
    steps = sorted(p for p in checkpoints.iterdir() if _STEP_FOLDER.match(p.name) and not p.is_symlink()
                   ) if checkpoints.is_dir() and not checkpoints.is_symlink() else []
    return [lay.root, lay.raw, lay.tokens, lay.train, lay.train_checkpoints, lay.root / "eval",
            lay.eval("base").root, lay.eval("tuned").root, checkpoints, *steps, lay.plots]


def clean_temp_files(root: str | os.PathLike) -> int:
    """Remove leftovers of interrupted atomic writes under the run folder ``root``; call only while holding
    the run lock. Only names an atomic write makes (``.<name>.<random>.tmp``, ``.<name>.old.<pid>``), only in
    the run folder's own artifact folders (never below them, never above ``root``), never through a symbolic
    link. Returns the count."""
    removed = 0
    layout = RunLayout(Path(root))
    top = _top_level_artifacts(layout)
    for folder in _artifact_folders(layout):
        if folder.is_symlink() or not folder.is_dir():
            continue
        for entry in os.scandir(folder):
            m = _TEMP_NAME.match(entry.name)
            if not m or (folder == layout.root and m.group("name") not in top):  # in the run folder: ours only
                continue
            p = Path(entry.path)
            with contextlib.suppress(OSError):
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(p)
                else:
                    p.unlink()
                removed += 1
    return removed


def refuse_unsafe_run_folder(root: str | os.PathLike) -> None:
    """One error line when ``root`` is the filesystem root, the home folder or a repository's top folder:
    a run writes and cleans up there, and those folders hold other people's files."""
    resolved = Path(root).resolve()
    if resolved.parent == resolved or resolved == Path.home().resolve():
        what = "the filesystem root" if resolved.parent == resolved else "your home folder"
        raise MathloraError(f"run folder {root} is {what}; give a folder of its own, e.g. --run runs/demo")
    if (resolved / ".git").exists():
        raise MathloraError(f"run folder {root} is the top of a git repository; give a folder of its own, "
                            "e.g. --run runs/demo")


def _top_level_artifacts(layout: RunLayout) -> set[str]:
    names = set()
    for attr in dir(RunLayout):
        value = getattr(layout, attr) if isinstance(getattr(RunLayout, attr), property) else None
        if isinstance(value, Path) and value.parent == layout.root:
            names.add(value.name)
    return (names | {"eval"}) - {layout.lock.name, layout.run_log.name}  # both made before the manifest exists


def links_out_of(root: str | os.PathLike, names: list[str]) -> list[tuple[Path, Path]]:
    """(link, target) for each of ``names`` under ``root`` that is a symbolic link leading outside ``root``."""
    base = Path(root).resolve()
    out = []
    for name in names:
        p = Path(root) / name
        if p.is_symlink():
            target = p.resolve()
            if target != base and base not in target.parents:
                out.append((p, target))
    return out


def make_run_folder(root: str | os.PathLike) -> Path:
    """``root`` as a run folder: created when missing; refused when it is a file, an unsafe folder
    (``refuse_unsafe_run_folder``) or an existing folder that is not a run folder (no ``manifest.json``) and
    holds a file or folder named like one of a run's artifacts (the run would replace it). Symbolic links
    are left to the run's own check (``links_out_of``)."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise MathloraError(f"run folder {root} exists and is not a directory")
    refuse_unsafe_run_folder(root)
    layout = RunLayout(root)
    if root.is_dir() and not layout.manifest.exists():
        clash = sorted(_top_level_artifacts(layout) & {e.name for e in root.iterdir() if not e.is_symlink()})
        if clash:
            raise MathloraError(f"{root} is not a mathlora run folder but holds {clash[0]!r}, which a run would "
                                "replace; give a new folder (nothing was changed)")
    root.mkdir(parents=True, exist_ok=True)
    return root
