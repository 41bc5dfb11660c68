"""The declared stages: ``mathlora run --stop-after S`` stops right after S, whatever the configuration."""

import re
import shutil

import pytest

from mathlora.app.cli import main
from mathlora.app.pipeline import STAGES

TINY = ["model=tiny-random-llama", "label.judge=heuristic", "synth.count=48", "synth.test_count=4",
        "synth.squad_paragraphs=2", "sample.total=16", "train.max_steps=1", "train.global_batch_size=4",
        "train.micro_batch_size=4", "train.save_steps=1", "eval.max_new_tokens=2", "eval.batch_size=8",
        "tokenize.seq_length=320"]
STAGE_LINE = re.compile(r"^\[\s*\d+/\d+\] (\S+?)(?::| \.\.\.)")
GRPO_STAGES = ("grpo", "eval_grpo_math", "eval_grpo_squad")
# grpo in the calculator configurations where TRL is installed (pip install 'mathlora[grpo]'), else not used
GRPO = ["grpo.enabled=true", "grpo.steps=1", "grpo.prompts_per_step=1", "grpo.num_generations=2",
        "grpo.max_completion_length=4", "grpo.report_to=none"]


def trl_installed() -> bool:
    from packaging.version import Version

    try:
        import trl
    except ImportError:
        return False
    from mathlora.grpo.trainer import MIN_TRL

    return Version(trl.__version__) >= Version(MIN_TRL)


@pytest.fixture(scope="module")
def given_data(tmp_path_factory):
    """The three data files a user would give (data.train, data.test, data.squad), made by a stopped run."""
    run = tmp_path_factory.mktemp("synth") / "run"
    assert main(["run", "--no-progress", "-o", str(run), *TINY, "--stop-after", "synth"]) == 0
    folder = tmp_path_factory.mktemp("given")
    for name in ("train.jsonl", "test.jsonl", "squad.json"):
        shutil.copy(run / "raw" / name, folder / name)
    return folder


@pytest.mark.parametrize("data_given", [False, True], ids=["synth-data", "data-given"])
@pytest.mark.parametrize("style", ["answer", "calculator"])
def test_stop_after_stops_right_after_each_stage_in_every_configuration(tmp_path, capsys, request, data_given,
                                                                        style):
    run = tmp_path / "run"
    grpo = style == "calculator" and trl_installed()
    args = [*TINY, f"solution_style={style}"] + (["eval.checkpoints=true"] if style == "calculator" else []) + (
        GRPO if grpo else [])
    if data_given:
        folder = request.getfixturevalue("given_data")
        args += [f"data.train={folder / 'train.jsonl'}", f"data.test={folder / 'test.jsonl'}",
                 f"data.squad={folder / 'squad.json'}"]
    capsys.readouterr()
    for stage in STAGES:  # each run does the stages before it (fresh, skipped) and this one, then stops
        assert main(["run", "--no-progress", "-o", str(run), *args, "--stop-after", stage]) == 0
        lines = capsys.readouterr().out.strip().splitlines()
        names = [m.group(1) for line in lines if (m := STAGE_LINE.match(line))]
        assert names and names[-1] == stage, (stage, lines[-3:])
        assert lines[-1].startswith(f"stopped after {stage} as asked"), (stage, lines[-3:])
        unused = ((stage == "synth" and data_given) or (stage == "rewrite" and style == "answer")
                  or (stage == "eval_checkpoints" and style != "calculator") or (stage in GRPO_STAGES and not grpo))
        assert ("not used" in [line for line in lines if STAGE_LINE.match(line)][-1]) == unused, lines[-2:]


def _context(tmp_path, model: str):
    from mathlora.app.config import load_config
    from mathlora.run_dir.layout import RunLayout
    from mathlora.modeling.runtime import Runtime
    from mathlora.run_dir.stage import Context

    return Context(load_config(None, {"model": model}), RunLayout(tmp_path / "run"), Runtime.resolve(), None)


def test_a_base_model_replaced_at_the_same_path_changes_every_model_stage_fingerprint(tmp_path):
    import os

    from mathlora.data.stage import TOKENIZE
    from mathlora.evaluate.stage import eval_stages
    from mathlora.train.stage import MERGE

    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text('{"model_type": "llama"}\n')
    weights = base / "model.safetensors"
    weights.write_bytes(b"a" * 64)
    ctx = _context(tmp_path, str(base))
    model_stages = (TOKENIZE, MERGE, *eval_stages("base"), *eval_stages("tuned"))
    before = {s.name: s.settings(ctx) for s in model_stages}
    assert {s.name: s.settings(ctx) for s in model_stages} == before  # stable while nothing changes
    weights.write_bytes(b"b" * 64)  # same path, same size, other weights
    os.utime(weights, (1, 1))
    after = {s.name: s.settings(ctx) for s in model_stages}
    assert [name for name in before if before[name] == after[name]] == []


def test_the_tuned_evaluation_names_the_merged_model_relative_to_the_run_folder(tmp_path):
    from mathlora.evaluate.stage import eval_stages

    settings = eval_stages("tuned")[0].settings(_context(tmp_path, "tiny-random-llama"))
    assert settings["model"] == "merged" and str(tmp_path) not in str(settings)


def test_the_merge_stage_never_replaces_a_merged_folder_the_user_made(tmp_path):
    from tests.cli_helpers import tiny_adapter

    from mathlora.errors import MathloraError
    from mathlora.train.stage import MERGE

    ctx = _context(tmp_path, "tiny-random-llama")
    tiny_adapter(ctx.layout.train_adapter)
    ctx.layout.merged.mkdir()
    (ctx.layout.merged / "mine.bin").write_bytes(b"keep")
    with pytest.raises(MathloraError, match="not empty"):
        MERGE.run(ctx)
    assert sorted(p.name for p in ctx.layout.merged.iterdir()) == ["mine.bin"]
    assert (ctx.layout.merged / "mine.bin").read_bytes() == b"keep"


def _completions(path) -> list[str]:
    from mathlora.run_dir.records import read_jsonl

    return [line["completion"] for line in read_jsonl(path)]


def test_eval_checkpoints_scores_every_checkpoint_like_the_tuned_model(tmp_path, capsys):
    """With eval.checkpoints each checkpoint is scored: the last one's predictions are the tuned model's; a
    checkpoint without merged/ is scored as base + adapter and gets the same completions; a damaged one is
    skipped with its reason; the report tables and plots accuracy per step."""
    import json

    from mathlora.run_dir.layout import RunLayout
    from mathlora.evaluate.stage import EVAL_CHECKPOINTS

    run = tmp_path / "run"
    args = [*TINY, "train.max_steps=2", "eval.checkpoints=true", "train.merge_checkpoints=true"]
    assert main(["run", "--no-progress", "-o", str(run), *args]) == 0
    assert "eval_checkpoints ..." in capsys.readouterr().out
    lay = RunLayout(run)
    scores = json.loads(lay.checkpoint_scores.read_text())
    assert [(r["step"], r["model"]) for r in scores["checkpoints"]] == [(1, "merged"), (2, "merged")]
    assert scores["calculator"] is True and "accuracy_nocalc" in scores["checkpoints"][0]
    for tag in ("", "_nocalc"):
        assert _completions(lay.eval_checkpoint(2).math_files(tag)[0]) == \
            _completions(lay.eval("tuned").math_files(tag)[0])
    assert "comparison" in json.loads(lay.eval_checkpoint(1).math.read_text())  # against the base model
    report = lay.report_md.read_text(encoding="utf-8")
    assert "## Accuracy per checkpoint" in report and (lay.plots / "checkpoints.png").is_file()
    assert main(["run", "--no-progress", "-o", str(run), *args]) == 0
    assert "eval_checkpoints: fresh, skipped" in capsys.readouterr().out
    # the stages' own commands call the same entry functions on the run folder: the same scores, the same cards
    before = lay.checkpoint_scores.read_text()
    assert main(["eval", "checkpoints", "--run", str(run), "--no-progress"]) == 0
    assert "scored 2 checkpoint(s), skipped 0" in capsys.readouterr().out
    assert lay.checkpoint_scores.read_text() == before
    assert main(["cards", "--run", str(run)]) == 0
    assert capsys.readouterr().out.strip() == "model cards: 0 written, 2 unchanged"

    merged_step1 = _completions(lay.eval_checkpoint(1).math_predictions)
    import shutil

    shutil.rmtree(lay.train_checkpoints / "step-1" / "merged")
    weights = lay.train_checkpoints / "step-2" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    ctx = _context(tmp_path, "tiny-random-llama")
    ctx.cfg = ctx.cfg.model_copy(update={"eval": ctx.cfg.eval.model_copy(update={
        "checkpoints": True, "max_new_tokens": 2, "batch_size": 8})})
    counts = EVAL_CHECKPOINTS.run(ctx)
    assert (counts["scored"], counts["skipped"]) == (1, 1)
    scores = json.loads(lay.checkpoint_scores.read_text())
    assert [(r["step"], r["model"]) for r in scores["checkpoints"]] == [(1, "adapter")]
    assert scores["skipped"] == [{"step": 2, "reason": "adapter_model.safetensors does not match its checksum"}]
    assert not lay.eval_checkpoint(2).root.exists()  # a checkpoint no longer scored leaves no stale scores
    assert all(p.exists() for p in EVAL_CHECKPOINTS.outputs(ctx))  # so a rerun finds the stage fresh
    assert _completions(lay.eval_checkpoint(1).math_predictions) == merged_step1


def test_a_damaged_rejects_file_of_ingest_test_or_tokenize_is_noticed(tmp_path, capsys):
    """B6: ingest_test and tokenize did not declare their rejects files: damage to them went unnoticed."""
    from mathlora.run_dir.layout import RunLayout

    run = tmp_path / "run"
    assert main(["run", "--no-progress", "-o", str(run), *TINY, "--stop-after", "tokenize"]) == 0
    lay = RunLayout(run)
    for damaged in (lay.test_rejects, lay.tokens_rejects):
        assert damaged.is_file(), damaged
        damaged.write_text("not what the stage wrote\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["run", "--no-progress", "-o", str(run), *TINY, "--stop-after", "tokenize"]) == 0
    out = capsys.readouterr().out
    assert "ingest_test: done" in out and "tokenize: done" in out, out
    assert lay.tokens_rejects.read_text(encoding="utf-8") != "not what the stage wrote\n"


def test_an_interrupted_training_with_changed_settings_points_to_force(tmp_path, capsys):
    """B8: interrupt a training, change train.lr, rerun: it said "pass --no-resume", a flag `run` lacks."""
    import json

    from mathlora.run_dir.layout import RunLayout

    run = tmp_path / "run"
    args = [*TINY, "train.max_steps=2"]
    assert main(["run", "--no-progress", "--run", str(run), *args, "--stop-after", "train"]) == 0
    lay = RunLayout(run)  # as a crash after the first checkpoint leaves it: checkpoints, no summary, no record
    lay.train_summary.unlink()
    manifest = json.loads(lay.manifest.read_text())
    del manifest["stages"]["train"]
    lay.manifest.write_text(json.dumps(manifest))
    capsys.readouterr()
    assert main(["run", "--no-progress", "--run", str(run), *args, "train.lr=0.5", "--stop-after", "train"]) == 2
    err = capsys.readouterr().err
    assert "--no-resume" not in err and "--force" in err, err
    assert main(["run", "--no-progress", "--run", str(run), *args, "train.lr=0.5", "--force",
                 "--stop-after", "train"]) == 0
    assert "train: done" in capsys.readouterr().out
