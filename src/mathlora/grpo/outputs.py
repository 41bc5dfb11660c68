"""The GRPO folder's own files and the stage's "same run" rule: the prompts it trains on, the fingerprint of its
settings, claiming and clearing its folder, a finished run, and the checkpoint to resume from."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import sys
from pathlib import Path

from mathlora.errors import MathloraError
from mathlora.arith.answers import extract_gold_answer, resolve_scope
from mathlora.grpo.config import GrpoConfig
from mathlora.run_dir.records import read_json_document, read_jsonl
from mathlora.modeling.runtime import Runtime
from mathlora.run_dir.same_result import result_settings

SUMMARY, METRICS, FINGERPRINT_FILE = "summary.json", "metrics.jsonl", "mathlora.json"
# what the stage writes (and clears); merged/ when the caller puts the merge there (mathlora run does)
OWN_FOLDERS, OWN_FILES = ("checkpoints", "adapter", "merged", "tensorboard"), (METRICS, SUMMARY)
OWN_NAMES = OWN_FOLDERS + OWN_FILES
KIND = "grpo"


# -- prompts ----------------------------------------------------------------------------------------------------

def load_prompts(problems_path, template: str, max_prompts: int | None = None) -> tuple[list[dict], int]:
    """The GRPO dataset: ``{"prompt": the problem in the template, "gold": its solution, "id", "type"}`` per
    record whose solution has a gradable answer; and how many records were left out (no gradable gold)."""
    from mathlora.modeling.templates import render_prompt

    rows, skipped = [], 0
    for n, rec in enumerate(read_jsonl(problems_path), 1):
        problem, solution = rec.get("problem"), rec.get("solution")
        if not isinstance(problem, str) or not isinstance(solution, str):
            raise MathloraError(f"{problems_path}: record {rec.get('id', n)} has no problem/solution text")
        gold = extract_gold_answer(solution)
        if gold is None or (not gold.is_number and gold.latex is None):
            skipped += 1
            continue
        rows.append({"prompt": render_prompt(template, problem), "gold": solution, "id": str(rec.get("id", n)),
                     "type": str(rec.get("type") or "")})
        if max_prompts is not None and len(rows) >= max_prompts:
            break
    if not rows:
        raise MathloraError(f"{problems_path} holds no problem with a gradable gold answer ({skipped} without)")
    return rows, skipped


# -- same run ---------------------------------------------------------------------------------------------------

def generation_backend(cfg: GrpoConfig, runtime: Runtime) -> str:
    """``transformers`` or ``vllm`` (``grpo.generation``; auto: vLLM on CUDA when it is installed)."""
    if cfg.generation != "auto":
        if cfg.generation == "vllm" and not runtime.device.startswith("cuda"):
            raise MathloraError("grpo.generation=vllm needs a CUDA device (runtime.device); use auto or "
                                "transformers")
        return cfg.generation
    return "vllm" if runtime.device.startswith("cuda") and importlib.util.find_spec("vllm") else "transformers"


def grpo_settings(cfg: GrpoConfig, runtime: Runtime, problems_path, adapter_dir, *, model: str, template: str,
                  seed: int, solution_style: str, atol: float, rtol: float, answer_scope: str) -> dict:
    """What the fingerprint hashes, readable (a changed run names what changed)."""
    from mathlora.modeling.adapters import ADAPTER_FILES, require_adapter_dir
    from mathlora.modeling.models import model_identity
    from mathlora.run_dir.hashing import file_sha256

    adapter = require_adapter_dir(adapter_dir)
    return {"grpo": result_settings(cfg), "model": model, "model_identity": model_identity(model),
            # the adapter's weights and config (its README.md card is rewritten by the cards stage: not hashed)
            "sft_adapter": {name: file_sha256(adapter / name) for name in ADAPTER_FILES},
            "problems": file_sha256(problems_path), "template": template, "seed": seed,
            "solution_style": solution_style, "atol": atol, "rtol": rtol,
            "scope": resolve_scope(answer_scope, solution_style), **runtime.fingerprint(),
            "generation": generation_backend(cfg, runtime)}


def settings_fingerprint(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


# -- the output folder ------------------------------------------------------------------------------------------

def claim_folder(out: Path) -> None:
    """Make ``out`` a GRPO folder (its marker); a folder of other files holding our names is refused."""
    from mathlora.run_dir.guards import artifact_kind, write_artifact_marker

    taken = sorted(n for n in OWN_NAMES if (out / n).exists() or (out / n).is_symlink()) if out.is_dir() else []
    if taken and artifact_kind(out) != KIND:
        raise MathloraError(f"output folder {out} holds {taken[0]!r} and is not a mathlora GRPO folder; give a new "
                            "folder (nothing was changed)")
    out.mkdir(parents=True, exist_ok=True)
    if artifact_kind(out) != KIND:
        write_artifact_marker(out, KIND)


def clear_outputs(out: Path) -> None:
    for name in OWN_FOLDERS:
        shutil.rmtree(out / name, ignore_errors=True)
    for name in OWN_FILES:
        (out / name).unlink(missing_ok=True)


def finished_summary(out: Path, fingerprint: str, resume: bool) -> dict | None:
    """The summary of a finished run of this fingerprint whose adapter is intact; None when there is none. A
    finished run of another fingerprint is refused when resuming."""
    from mathlora.modeling.adapters import adapter_problem

    path = out / SUMMARY
    if not path.is_file():
        return None
    try:
        summary = read_json_document(path, "GRPO summary")
    except MathloraError:
        return None
    if not isinstance(summary, dict):
        return None
    if summary.get("fingerprint") != fingerprint:
        if resume:
            raise MathloraError(f"{out} holds a finished GRPO run with other settings; choose another output "
                                "folder or pass --no-resume (mathlora run: --force) to start it over")
        return None
    problem = adapter_problem(out / "adapter")
    if problem is not None:
        print(f"warning: the finished GRPO adapter {out / 'adapter'} {problem}; rebuilding it from the "
              "checkpoints", file=sys.stderr)
        path.unlink(missing_ok=True)
        return None
    return summary


def _step_of(folder: Path) -> int:
    try:
        return int(folder.name.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return -1


def checkpoint_problem(folder: Path, fingerprint: str) -> str | None:
    """Why a TRL checkpoint cannot be resumed from (None: it can)."""
    from mathlora.modeling.adapters import adapter_problem

    try:
        mark = json.loads((folder / FINGERPRINT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return f"has no readable {FINGERPRINT_FILE} (interrupted while saving)"
    if not isinstance(mark, dict) or mark.get("fingerprint") != fingerprint:
        return "belongs to a run with other settings"
    for name in ("trainer_state.json", "optimizer.pt"):
        if not (folder / name).is_file():
            return f"lacks {name}"
    return adapter_problem(folder)


def checkpoint_fingerprints(out: Path) -> set[str]:
    """The fingerprints the checkpoints in ``out`` were saved under (an interrupted run's settings)."""
    marks = set()
    for folder in (out / "checkpoints").glob("checkpoint-*"):
        try:
            mark = json.loads((folder / FINGERPRINT_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(mark, dict) and isinstance(mark.get("fingerprint"), str):
            marks.add(mark["fingerprint"])
    return marks


def newest_checkpoint(out: Path, fingerprint: str) -> Path | None:
    """The newest resumable checkpoint of this run, saying which newer ones were skipped and why."""
    root = out / "checkpoints"
    folders = sorted((p for p in root.glob("checkpoint-*") if p.is_dir() and _step_of(p) >= 0), key=_step_of,
                     reverse=True) if root.is_dir() else []
    for folder in folders:
        problem = checkpoint_problem(folder, fingerprint)
        if problem is None:
            return folder
        print(f"warning: GRPO checkpoint {folder} {problem}; skipped", file=sys.stderr)
    return None
