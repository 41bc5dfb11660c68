"""Experiment tracking: the training's scalars and the run's scores go to TensorBoard, Weights & Biases and MLflow
(``run.log``, the lines a run printed, is ``mathlora.run_dir.run_log``).

``train.report_to`` names the backends (default ``[tensorboard]``). Each one is optional and used when its package
is installed; a named backend that is not installed is one ``error:`` line before anything runs
(``check_backends``: ``mathlora run`` checks it with the rest of the config, the trainer before its first step).
Each backend is one ``Backend`` in the registry ``BACKENDS`` (name -> package, install hint, opener, check).
Only the process that writes files (rank 0 under torchrun) opens trackers.

Everything lives in one folder, the training's (``train/`` of a run folder)::
    tensorboard/   TensorBoard event files (a resume purges the steps after its checkpoint)
    wandb/         W&B's own folder (``wandb.init(dir=...)``); with ``WANDB_MODE=offline`` the whole run stays
                   here and ``wandb sync`` uploads it later. ``WANDB_PROJECT`` names the project (default mathlora)
    mlruns/        an MLflow file store, unless ``MLFLOW_TRACKING_URI`` names a server or another store;
                   ``MLFLOW_EXPERIMENT_NAME`` names the experiment (default mathlora)
    tracking.json  the W&B run id, the MLflow run id, and what was logged once (the run's scores), so that a
                   resumed training and the run's evaluation log into the same runs, and a rerun logs nothing twice

Scalars: ``train/<name>`` per logged optimizer step (W&B plots them over ``train/step``), ``eval/...`` once, at
the training's last step. A training that starts at step 0 opens new W&B and MLflow runs; a resume continues them.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import sys
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Protocol
import netrc
from urllib.parse import urlparse

from mathlora.run_dir.hashing import settings_digest
from mathlora.errors import MathloraError
from mathlora.run_dir.records import read_json_document
from mathlora.run_dir.atomic import write_json_atomic

TENSORBOARD_DIR = "tensorboard"
WANDB_DIR = "wandb"
MLFLOW_DIR = "mlruns"
STATE_FILE = "tracking.json"
_OFFLINE_MODES = ("offline", "disabled", "dryrun")


# -- which backends ---------------------------------------------------------------------------------------------

def installed(name: str) -> bool:
    """Whether the package of backend ``name`` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(BACKENDS[name].module) is not None
    except (ImportError, ValueError):
        return False


def check_backends(names: Iterable[str], *, where: str = "train.report_to") -> None:
    """One line for the first named backend that is unknown or not installed, or W&B with nowhere to log."""
    for name in names:
        if name not in BACKENDS:
            raise MathloraError(f"{where}: unknown backend {name!r} (allowed: {', '.join(BACKENDS)})")
        if not installed(name):
            raise MathloraError(f"{where} names {name}, which is not installed ({BACKENDS[name].install}), or leave "
                                f"it out of {where}")
    for name in names:
        if BACKENDS[name].check is not None:
            BACKENDS[name].check(where)


def wandb_offline() -> bool:
    return os.environ.get("WANDB_MODE", "").strip().lower() in _OFFLINE_MODES


def _check_wandb_login(where: str) -> None:
    """Online W&B needs an API key (``wandb login`` or ``WANDB_API_KEY``): asked now, not at the first step."""
    if wandb_offline():
        return
    try:
        ok = _wandb_login()
    except Exception as e:  # wandb raises its own UsageError and others; one line either way
        ok = False
        why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    else:
        why = "no API key"
    if not ok:
        raise MathloraError(f"{where} names wandb but W&B cannot log in ({why}); run `wandb login`, set "
                            "WANDB_API_KEY, or set WANDB_MODE=offline to keep the run in the training folder "
                            "(`wandb sync` uploads it later)")


def _wandb_login() -> bool:
    """Whether W&B has an API key: ``WANDB_API_KEY``, or the ``~/.netrc`` entry ``wandb login`` writes; else,
    without a terminal, W&B's own check (``verify=False``: no request; it raises). In a terminal that check
    would prompt for a key and hold the run before its first stage, so there a missing key is simply no key."""

    if os.environ.get("WANDB_API_KEY", "").strip():
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    try:
        if (netrc.netrc().authenticators(host) or (None, None, None))[2]:
            return True
    except (OSError, netrc.NetrcParseError):
        pass
    if sys.stdin is not None and sys.stdin.isatty():
        return False
    import wandb

    return bool(wandb.login(verify=False))


# -- the backends -----------------------------------------------------------------------------------------------

class Tracker(Protocol):
    def log(self, scalars: Mapping[str, float], step: int) -> None: ...

    def close(self) -> None: ...


class TensorBoardTracker:
    """Event files in ``folder``; ``purge_step`` drops what an interrupted run logged after its checkpoint."""

    def __init__(self, folder: Path, purge_step: int | None = None):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(folder), purge_step=purge_step)

    def log(self, scalars: Mapping[str, float], step: int) -> None:
        for key, value in scalars.items():
            self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        self.writer.close()


class WandbTracker:
    """A W&B run of id ``run_id`` (created, or continued with ``resume="allow"``), its files in ``folder``."""

    def __init__(self, folder: Path, run_id: str, name: str, params: dict | None):
        import wandb

        folder.mkdir(parents=True, exist_ok=True)
        settings = wandb.Settings(silent=True, console="off", x_disable_stats=True)
        try:
            self.run = wandb.init(project=os.environ.get("WANDB_PROJECT") or "mathlora", name=name, id=run_id,
                                  dir=str(folder), resume="allow", config=params, settings=settings,
                                  reinit="create_new")
        except Exception as e:  # a login or network problem: one line, nothing trained is lost
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise MathloraError(f"wandb could not start its run ({first}); run `wandb login`, or set "
                                "WANDB_MODE=offline") from None
        self.run.define_metric("train/step")
        self.run.define_metric("*", step_metric="train/step")

    def log(self, scalars: Mapping[str, float], step: int) -> None:
        self.run.log({"train/step": step, **scalars})

    def close(self) -> None:
        self.run.finish()


_MLFLOW_KEY = re.compile(r"[^\w\-. /:]")


def mlflow_key(key: str) -> str:
    """``key`` with the characters MLflow refuses in names replaced by ``_`` (a user's problem types)."""
    return _MLFLOW_KEY.sub("_", key)


def mlflow_uri(folder: Path) -> str:
    """``MLFLOW_TRACKING_URI`` when set, else the file store ``folder/mlruns``. MLflow 3 keeps file stores in
    maintenance mode and refuses them unless ``MLFLOW_ALLOW_FILE_STORE`` is true: for this store of the run's
    own it is set (when the environment does not say otherwise)."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return (folder / MLFLOW_DIR).resolve().as_uri()


class MlflowTracker:
    """An MLflow run through ``MlflowClient`` (no global active run): continued when ``run_id`` still exists,
    else created in the experiment ``MLFLOW_EXPERIMENT_NAME`` (default mathlora) with ``params``."""

    def __init__(self, folder: Path, run_id: str | None, name: str, params: dict | None,
                 purge_step: int | None = None):
        from mlflow.entities import Param
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        self.uri = mlflow_uri(folder)
        self.client = MlflowClient(tracking_uri=self.uri)
        run = None
        if run_id:
            try:
                run = self.client.get_run(run_id)
            except MlflowException:
                run = None  # the store was moved or cleared: a new run
        if run is None:
            experiment = os.environ.get("MLFLOW_EXPERIMENT_NAME") or "mathlora"
            found = self.client.get_experiment_by_name(experiment)
            exp_id = found.experiment_id if found else self.client.create_experiment(experiment)
            run = self.client.create_run(exp_id, run_name=name, tags={"mathlora.run": name})
            if params:  # params are immutable in MLflow: only a new run gets them
                items = [Param(mlflow_key(k), str(v)[:6000]) for k, v in flatten(params).items()]
                for i in range(0, len(items), 100):
                    self.client.log_batch(run.info.run_id, params=items[i:i + 100])
        else:
            self.client.update_run(run.info.run_id, status="RUNNING")
        self.run_id = run.info.run_id
        # a training resumed after kill -9 (``purge_step``: its first step) continues its run: the steps from
        # there that the run already has are not logged twice (MLflow cannot purge them as TensorBoard does;
        # the resumed training computes the same values). Scores (no purge_step) are logged as they change.
        self._from = purge_step
        self._logged: dict[str, set[int]] | None = \
            {} if purge_step is not None and run_id and run.info.run_id == run_id else None

    def _already(self, key: str, step: int) -> bool:
        if self._logged is None or step < self._from:
            return False
        if key not in self._logged:
            self._logged[key] = {m.step for m in self.client.get_metric_history(self.run_id, key)}
        return step in self._logged[key]

    def log(self, scalars: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        metrics = [Metric(mlflow_key(k), float(v), stamp, int(step)) for k, v in scalars.items()
                   if not self._already(mlflow_key(k), int(step))]
        for i in range(0, len(metrics), 500):
            self.client.log_batch(self.run_id, metrics=metrics[i:i + 500])

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


# -- the registry: train.report_to's names ---------------------------------------------------------------------

@dataclass(frozen=True)
class Backend:
    """One backend of ``train.report_to``: its package (``installed``), how to install it, how its tracker opens
    (``open(folder, state, purge_step, name, params)``; W&B and MLflow record their run ids in ``state``, the
    ``tracking.json``) and what is checked before anything runs (``check(where)``: one line, or None)."""
    name: str
    module: str
    install: str
    open: Callable[[Path, dict, int | None, str, dict | None], Tracker]
    check: Callable[[str], None] | None = None


def _open_wandb(folder: Path, state: dict, purge_step: int | None, name: str, params: dict | None) -> Tracker:
    run_id = (state.get("wandb") or {}).get("id")  # continued: its config stays as the run began
    tracker = WandbTracker(folder / WANDB_DIR, run_id or uuid.uuid4().hex[:12], name, None if run_id else params)
    state["wandb"] = {"id": tracker.run.id, "project": tracker.run.project}
    return tracker


def _open_mlflow(folder: Path, state: dict, purge_step: int | None, name: str, params: dict | None) -> Tracker:
    tracker = MlflowTracker(folder, (state.get("mlflow") or {}).get("run_id"), name, params, purge_step)
    state["mlflow"] = {"run_id": tracker.run_id, "tracking_uri": tracker.uri}
    return tracker


BACKENDS: dict[str, Backend] = {b.name: b for b in (
    Backend("tensorboard", "tensorboard", "pip install tensorboard",
            lambda folder, state, purge_step, name, params: TensorBoardTracker(folder / TENSORBOARD_DIR, purge_step)),
    Backend("wandb", "wandb", "pip install wandb", _open_wandb, check=_check_wandb_login),
    Backend("mlflow", "mlflow", "pip install mlflow-skinny", _open_mlflow))}


# -- all of them ------------------------------------------------------------------------------------------------

def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings as dotted keys (``train.lr``), lists as text."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def run_name(folder: Path) -> str:
    """The run's name for W&B and MLflow: the run folder's (``runs/demo/train`` -> ``demo``)."""
    folder = Path(folder).resolve()
    return folder.parent.name if folder.name == "train" and folder.parent.name else folder.name


def _read_state(folder: Path) -> dict:
    path = folder / STATE_FILE
    if not path.is_file():
        return {}
    try:
        data = read_json_document(path, "tracking state")
    except MathloraError:
        print(f"warning: {path} is damaged; new W&B/MLflow runs are started", file=sys.stderr)
        return {}
    return data if isinstance(data, dict) else {}


def _write_state(folder: Path, state: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(folder / STATE_FILE, state)


class Trackers:
    """The backends of ``train.report_to``, opened on one folder; ``log`` sends the same scalars to each."""

    def __init__(self, folder: Path, trackers: dict[str, Tracker], state: dict):
        self.folder = folder
        self.trackers = trackers
        self.state = state

    @classmethod
    def open(cls, names: Iterable[str], folder: str | os.PathLike, *, new_runs: bool, purge_step: int | None = None,
             name: str | None = None, params: dict | None = None) -> "Trackers":
        """Open ``names`` on ``folder``. ``new_runs``: a training from step 0 (new W&B and MLflow runs); else the
        runs recorded in ``tracking.json`` are continued (new ones when none is recorded)."""
        names = list(dict.fromkeys(names))
        check_backends(names)
        folder = Path(folder)
        state = {} if new_runs else _read_state(folder)
        name = name or run_name(folder)
        opened: dict[str, Tracker] = {}
        try:
            for backend in names:
                with _one_line(backend, "start its run"):
                    opened[backend] = BACKENDS[backend].open(folder, state, purge_step, name, params)
        except BaseException:
            for tracker in opened.values():
                with contextlib.suppress(Exception):
                    tracker.close()
            raise
        if set(opened) - {"tensorboard"} or (new_runs and (folder / STATE_FILE).exists()):
            _write_state(folder, state)  # the runs' ids; a new training forgets the old ones
        return cls(folder, opened, state)

    def log(self, scalars: Mapping[str, float], step: int) -> None:
        for backend, tracker in self.trackers.items():
            with _one_line(backend, "log"):
                tracker.log(scalars, step)

    def close(self) -> None:
        trackers, self.trackers = self.trackers, {}
        for backend, tracker in trackers.items():
            with _one_line(backend, "close its run"):
                tracker.close()


@contextmanager
def _one_line(backend: str, doing: str) -> Iterator[None]:
    """A tracker library's own error (a server that went away, a full disk) as one ``error:`` line."""
    try:
        yield
    except MathloraError:
        raise
    except Exception as e:  # each library raises its own kinds
        first = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
        raise MathloraError(f"{backend} could not {doing}: {type(e).__name__}{': ' + first if first else ''}") \
            from None


Point = tuple[int, Mapping[str, float]]  # (step, scalars)


def _digest(points: list[Point]) -> str:
    return settings_digest([[step, dict(sorted(scalars.items()))] for step, scalars in points], 16)


def log_once(names: Iterable[str], folder: str | os.PathLike, what: str, points: list[Point], *,
             name: str | None = None, params: dict | None = None) -> list[str]:
    """Log ``points`` (each ``(step, scalars)``; e.g. the run's scores, ``what="eval"``) to each backend of ``names``
    that has not logged these very points yet (``tracking.json`` keeps a digest per backend), into the runs the
    training opened; returns the backends that logged. A rerun whose scores did not change opens nothing."""
    folder = Path(folder)
    names = list(dict.fromkeys(names))
    points = [(int(step), dict(scalars)) for step, scalars in points if scalars]
    if not points or not names:
        return []
    digest = _digest(points)
    logged = (_read_state(folder).get("logged") or {}).get(what) or {}
    due = [n for n in names if logged.get(n) != digest]
    if not due:
        return []
    trackers = Trackers.open(due, folder, new_runs=False, name=name, params=params)
    try:
        for step, scalars in points:
            trackers.log(scalars, step)
    finally:
        trackers.close()
    state = trackers.state
    state.setdefault("logged", {}).setdefault(what, {}).update({n: digest for n in due})
    _write_state(folder, state)
    return due
