"""The run folder's layout: every artifact path of a ``mathlora run`` folder, named once.

``mathlora run`` (the pipeline), the report and the CLI defaults (``mathlora train`` reads
``<run_dir>/tokens`` and writes ``<run_dir>/train``) all take their paths from here. The file names inside a
stage's own output folder (``tokens/``, ``train/``) and the files a stage writes beside its output
(``rejects.jsonl``, ``label_cache.sqlite``, ``label_failures.jsonl``, ``sample_table.json``) are the stage's
own; they are listed here so the pipeline and the report can find them, and ``tests/test_layout.py`` checks
that both agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class EvalLayout:
    """``eval/base/`` or ``eval/tuned/``: math predictions and scores (with and without the calculator),
    SQuAD predictions and scores."""

    root: Path

    def math_files(self, tag: str = "") -> tuple[Path, Path]:
        """(predictions, scores) of one math evaluation: ``tag`` ``""`` as configured, ``"_nocalc"`` without
        the calculator (written next to the calculator run when ``eval.calculator``)."""
        return self.root / f"math{tag}_predictions.jsonl", self.root / f"math{tag}.json"

    @property
    def math_predictions(self) -> Path:
        return self.math_files()[0]

    @property
    def math(self) -> Path:
        return self.math_files()[1]

    @property
    def math_nocalc(self) -> Path:
        return self.math_files("_nocalc")[1]

    @property
    def squad(self) -> Path:
        return self.root / "squad.json"

    @property
    def squad_predictions(self) -> Path:
        return self.root / "squad.predictions.jsonl"  # evaluate.squad.default_predictions_path(self.squad)


@dataclass(frozen=True)
class RunLayout:
    """Every artifact of a run folder (see docs/ARCHITECTURE.md for what writes and reads each one)."""

    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    # -- the run ------------------------------------------------------------------------------------------
    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def lock(self) -> Path:
        """The run folder's OS lock file (``mathlora.run_dir.guards.RunLock``)."""
        return self.root / ".mathlora.lock"

    @property
    def run_log(self) -> Path:
        """What each ``mathlora run`` printed, appended per invocation (``mathlora.modeling.tracking.RunLog``)."""
        return self.root / "run.log"

    # -- synth: generated data when data.* are not given ---------------------------------------------------
    @property
    def raw(self) -> Path:
        return self.root / "raw"

    @property
    def raw_train(self) -> Path:
        return self.raw / "train.jsonl"

    @property
    def raw_test(self) -> Path:
        return self.raw / "test.jsonl"

    @property
    def raw_squad(self) -> Path:
        return self.raw / "squad.json"

    # -- ingest --------------------------------------------------------------------------------------------
    @property
    def records(self) -> Path:
        return self.root / "records.jsonl"

    @property
    def rejects(self) -> Path:
        return self.root / "rejects.jsonl"

    @property
    def test_records(self) -> Path:
        return self.root / "test_records.jsonl"

    @property
    def test_rejects(self) -> Path:
        return self.root / "test_rejects.jsonl"

    # -- label, sample, normalize, rewrite, convert --------------------------------------------------------
    @property
    def labeled(self) -> Path:
        return self.root / "labeled.jsonl"

    @property
    def label_cache(self) -> Path:
        return self.root / "label_cache.sqlite"  # label.run.default_cache_path(self.labeled)

    @property
    def label_failures(self) -> Path:
        return self.root / "label_failures.jsonl"  # label.run.FAILURES_FILE beside the output

    @property
    def sampled(self) -> Path:
        return self.root / "sampled.jsonl"

    @property
    def sample_table(self) -> Path:
        return self.root / "sample_table.json"  # data.sampling.TABLE_FILE beside the output

    @property
    def normalized(self) -> Path:
        return self.root / "normalized.jsonl"

    @property
    def rewritten(self) -> Path:
        return self.root / "rewritten.jsonl"

    @property
    def rewrite_report(self) -> Path:
        return self.root / "rewrite_report.json"

    @property
    def conversations(self) -> Path:
        return self.root / "conversations.json"

    # -- tokenize ------------------------------------------------------------------------------------------
    @property
    def tokens(self) -> Path:
        return self.root / "tokens"

    @property
    def tokens_parquet(self) -> Path:
        return self.tokens / "tokens.parquet"

    @property
    def tokens_stats(self) -> Path:
        return self.tokens / "stats.json"

    @property
    def tokens_rejects(self) -> Path:
        return self.tokens / "rejects.jsonl"

    # -- train, merge --------------------------------------------------------------------------------------
    @property
    def train(self) -> Path:
        return self.root / "train"

    @property
    def train_checkpoints(self) -> Path:
        return self.train / "checkpoints"

    @property
    def train_adapter(self) -> Path:
        return self.train / "adapter"

    @property
    def train_metrics(self) -> Path:
        return self.train / "metrics.jsonl"

    @property
    def train_tensorboard(self) -> Path:
        return self.train / "tensorboard"

    @property
    def train_summary(self) -> Path:
        return self.train / "summary.json"

    @property
    def merged(self) -> Path:
        return self.root / "merged"

    @property
    def merged_config(self) -> Path:
        return self.merged / "config.json"

    # -- grpo (grpo.enabled) --------------------------------------------------------------------------------
    @property
    def grpo(self) -> Path:
        return self.root / "grpo"

    @property
    def grpo_checkpoints(self) -> Path:
        return self.grpo / "checkpoints"

    @property
    def grpo_adapter(self) -> Path:
        return self.grpo / "adapter"

    @property
    def grpo_merged(self) -> Path:
        return self.grpo / "merged"

    @property
    def grpo_merged_config(self) -> Path:
        return self.grpo_merged / "config.json"

    @property
    def grpo_metrics(self) -> Path:
        return self.grpo / "metrics.jsonl"

    @property
    def grpo_summary(self) -> Path:
        return self.grpo / "summary.json"

    # -- eval ----------------------------------------------------------------------------------------------
    def eval(self, which: str) -> EvalLayout:
        """``base`` (the base model), ``tuned`` (the merged SFT model) or ``grpo`` (the merged GRPO model)."""
        if which not in ("base", "tuned", "grpo"):
            raise ValueError(f"eval layout: expected base, tuned or grpo, got {which!r}")
        return EvalLayout(self.root / "eval" / which)

    @property
    def eval_checkpoints(self) -> Path:
        """``eval/checkpoints/``: a math evaluation per training checkpoint (``eval.checkpoints``)."""
        return self.root / "eval" / "checkpoints"

    def eval_checkpoint(self, step: int) -> EvalLayout:
        """``eval/checkpoints/step-N/``: the math files of the checkpoint of step ``step``."""
        return EvalLayout(self.eval_checkpoints / f"step-{step}")

    @property
    def checkpoint_scores(self) -> Path:
        """``eval/checkpoints/scores.json``: accuracy per checkpoint step (what the report plots)."""
        return self.eval_checkpoints / "scores.json"

    # -- report --------------------------------------------------------------------------------------------
    @property
    def report_html(self) -> Path:
        return self.root / "report.html"

    @property
    def report_md(self) -> Path:
        return self.root / "report.md"

    @property
    def plots(self) -> Path:
        return self.root / "plots"
