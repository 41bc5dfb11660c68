"""Model cards: Hub metadata that huggingface_hub's own parsers accept (offline), the run's scores per family, the
cards written in the run folder once and refreshed without making the train or merge stage stale."""

from __future__ import annotations

import json

import pytest
import yaml

from mathlora.export.model_card import CardFacts, build_card, card_text, write_cards
from mathlora.report.scores import RunScores
from mathlora.run_dir.artifacts import artifact_problem, artifact_record
from mathlora.run_dir.hashing import file_sha256

from .conftest import make_run


def _with_families(root):
    for which, rows in (("base", {"arithmetic": (1, 8), "fractions": (0, 8)}),
                        ("tuned", {"arithmetic": (7, 8), "fractions": (2, 8)})):
        path = root / "eval" / which / "math.json"
        data = json.loads(path.read_text())
        data["per_type"] = {t: {"count": n, "correct": c, "accuracy": c / n} for t, (c, n) in rows.items()}
        path.write_text(json.dumps(data))
    (root / "eval" / "tuned" / "math_nocalc.json").write_text(json.dumps({"accuracy": 0.375, "count": 16}))


def _validated(text: str) -> dict:
    """The offline checks huggingface_hub offers: the card parses (RepoCard/ModelCard: YAML front matter into
    ModelCardData), its metadata round-trips through ModelCardData and metadata_load, and model-index parses
    back into EvalResults; the base model, where given, is a valid repo id."""
    import tempfile
    from pathlib import Path

    from huggingface_hub import ModelCard, ModelCardData, RepoCard, metadata_load
    from huggingface_hub.repocard_data import model_index_to_eval_results
    from huggingface_hub.utils import validate_repo_id

    card = ModelCard(text)
    assert isinstance(card.data, ModelCardData) and RepoCard(text).data.to_dict() == card.data.to_dict()
    meta = card.data.to_dict()
    assert ModelCardData(**meta).to_dict() == meta
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "README.md").write_text(text, encoding="utf-8")
        assert metadata_load(Path(tmp) / "README.md") == meta
    if "base_model" in meta:
        validate_repo_id(meta["base_model"])
        assert "/" in meta["base_model"]
    if "model-index" in meta:
        name, results = model_index_to_eval_results(meta["model-index"])
        assert name == card.data.model_name == meta["model-index"][0]["name"] and results == card.data.eval_results
    assert meta["pipeline_tag"] == "text-generation" and "mathlora" in meta["tags"]
    return meta


def test_the_adapter_card_has_valid_metadata_and_the_scores_per_family(tmp_path):
    root = make_run(tmp_path / "run", model="smollm2-135m-instruct")
    _with_families(root)
    facts = CardFacts.from_run(root)
    text = card_text(facts, "adapter", scores=RunScores.read(root, strict=False))
    meta = _validated(text)
    # the packaged Q4_1 GGUF is not the Hub repo's weights: no base_model claim (license: the original's)
    assert "base_model" not in meta and meta["library_name"] == "peft"
    assert meta["license"] == "apache-2.0" and "peft" in meta["tags"]
    results = {(m["type"], m["name"]): m["value"] for r in meta["model-index"][0]["results"] for m in r["metrics"]}
    assert results[("accuracy", "math accuracy")] == 0.5
    assert results[("accuracy", "math accuracy without the calculator")] == 0.375
    assert results[("f1", "reading F1")] == 39.0 and results[("exact_match", "reading EM")] == 29.5  # not SQuAD
    assert meta["mathlora"]["template"] == "alpaca" and meta["mathlora"]["recipe"]["seed"] == "0"
    assert "| fine-tuned | 50.0% | 37.5% |" in text and "| base | 25.0% | n/a |" in text
    assert "| arithmetic | 8 | 12.5% | 87.5% |" in text and "| fractions | 8 | 0.0% | 25.0% |" in text
    assert "| F1 | 40.0 | 39.0 |" in text and "PASSED" in text
    tuned = root / "eval" / "tuned" / "math.json"
    tuned.write_text(json.dumps({**json.loads(tuned.read_text()), "correct": 60, "count": 120, "accuracy": 0.5}))
    with_ci = card_text(facts, "adapter", scores=RunScores.read(root, strict=False))
    assert "| fine-tuned | 50.0% (95% CI 41.2-58.8%) | 37.5% |" in with_ci  # the Wilson interval, as in the report
    assert "PeftModel.from_pretrained(base, 'path/to/this/folder')" in text
    assert "AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file='SmolLM2-135M-Instruct.Q4_1.gguf')" in text
    assert "--enable-lora --lora-modules math=" in text and "More Information Needed" not in text


def test_a_local_base_is_left_out_of_the_metadata_and_merged_says_transformers(tmp_path):
    base = tmp_path / "my-base"
    base.mkdir()
    (base / "config.json").write_text("{}")
    (base / "README.md").write_text("---\nlicense: mit\n---\n# my base\n")
    root = make_run(tmp_path / "run", model=str(base))
    facts = CardFacts.from_run(root)
    meta = _validated(card_text(facts, "merged", scores=RunScores.read(root)))
    assert "base_model" not in meta and meta["library_name"] == "transformers" and meta["license"] == "mit"
    text = card_text(facts, "merged")
    assert "vllm serve path/to/this/folder" in text and "Not evaluated yet" in text
    assert "model-index" not in _validated(text)
    step = build_card(facts, "checkpoint", step=2)
    assert "checkpoint at step 2" in step.text and "model-index" not in step.data.to_dict()
    # a checkpoint has no tokenizer: the base's chat template would not be the training prompt, so it is spelled out
    assert "apply_chat_template" not in step.text
    assert "prompt = 'Below is an instruction" in step.text
    assert "+ problem + '\\n\\n### Response: '" in step.text
    # merging an adapter mathlora did not write (no card, no template given): the card does not claim a template
    foreign = card_text(CardFacts(str(base), "unknown", {"target modules": "q_proj"}), "merged")
    assert "training prompt is not known" in foreign and "chat template is the training prompt" not in foreign


def test_cards_are_written_once_and_never_make_train_or_merge_stale(tmp_path):
    root = make_run(tmp_path / "run")
    adapter, merged = root / "train" / "adapter", root / "merged"
    (adapter / "README.md").unlink()
    records = {f: artifact_record(f) for f in (adapter, merged)}
    hashes = {f: file_sha256(f) for f in (adapter, merged)}
    assert write_cards(root) == {"written": 2, "unchanged": 0}
    assert yaml.safe_load((adapter / "README.md").read_text().split("---\n")[1])["library_name"] == "peft"
    assert yaml.safe_load((merged / "README.md").read_text().split("---\n")[1])["library_name"] == "transformers"
    assert write_cards(root) == {"written": 0, "unchanged": 2}  # unchanged text: nothing rewritten
    # the card is not part of a folder's hash or verified content (the merge and eval inputs stay fresh)
    for folder in (adapter, merged):
        assert file_sha256(folder) == hashes[folder] and artifact_problem(folder, records[folder]) is None
    # new scores rewrite the card, still without touching the folder's identity
    (root / "eval" / "tuned" / "math.json").write_text(json.dumps({"accuracy": 0.75, "count": 16}))
    assert write_cards(root)["written"] == 2 and "75.0%" in (adapter / "README.md").read_text()
    assert file_sha256(adapter) == hashes[adapter]
    # a record made by an older mathlora, with peft's card in it, does not call the folder damaged
    old = artifact_record(adapter)
    old["files"]["README.md"] = {"size": 3, "sha256": "0" * 64}
    assert artifact_problem(adapter, old) is None
    (adapter / "adapter_model.safetensors").write_bytes(b"changed")
    assert artifact_problem(adapter, records[adapter]) is not None  # the weights are still verified


@pytest.mark.parametrize("kind", ["adapter", "merged", "checkpoint"])
def test_cards_of_every_kind_parse(tmp_path, kind):
    root = make_run(tmp_path / "run")
    _validated(card_text(CardFacts.from_run(root), kind, scores=RunScores.read(root), step=2))


def test_the_training_data_is_named_when_it_is_a_hub_dataset(tmp_path):
    hub = make_run(tmp_path / "hub", extra_overrides={"data.train": "openai/gsm8k"})
    assert _validated(card_text(CardFacts.from_run(hub), "adapter"))["datasets"] == ["openai/gsm8k"]
    local = tmp_path / "train.jsonl"
    local.write_text('{"problem": "1+1", "solution": "2"}\n')
    mine = make_run(tmp_path / "local", extra_overrides={"data.train": str(local)})
    assert "datasets" not in _validated(card_text(CardFacts.from_run(mine), "adapter"))


def test_the_cards_usage_snippet_generates_as_many_tokens_as_the_report_says(tmp_path):
    """One usage snippet length: the run's eval.max_new_tokens, as in the report (the card said 256)."""
    from mathlora.report.render import snippet_new_tokens

    run = make_run(tmp_path / "run", extra_overrides={"eval.max_new_tokens": 77})
    assert "max_new_tokens=77," in card_text(CardFacts.from_run(run), "adapter")
    assert snippet_new_tokens({"max_new_tokens": 77}) == 77
    assert snippet_new_tokens(None) == snippet_new_tokens({}) == 128  # EvalConfig's default


def test_a_packaged_gguf_base_is_named_by_its_file_and_sha256_and_the_snippet_loads_that_gguf(tmp_path):
    """Issue 32: the packaged base is the Q4_1 GGUF (dequantized), not the Hub repo's weights; the card, its
    metadata and the report say so, and the peft snippet loads the GGUF itself."""
    from mathlora.modeling.models import packaged_gguf
    from mathlora.report.build import build_report

    root = make_run(tmp_path / "run", model="smollm2-135m-instruct")
    sha = file_sha256(packaged_gguf("smollm2-135m-instruct"))
    facts = CardFacts.from_run(root)
    text = card_text(facts, "adapter", scores=RunScores.read(root, strict=False))
    meta = _validated(text)
    assert "base_model" not in meta  # the Hub repo is not these weights
    assert meta["mathlora"]["base"]["sha256"] == sha and meta["mathlora"]["base"]["quant"] == "Q4_1"
    assert "SmolLM2-135M-Instruct.Q4_1.gguf" in text and sha in text and "different weights" in text
    assert 'gguf_file=\'SmolLM2-135M-Instruct.Q4_1.gguf\'' in text
    assert "from_pretrained('HuggingFaceTB/SmolLM2-135M-Instruct')" not in text
    checkpoint = card_text(facts, "checkpoint", step=2)
    assert "tok = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=" in checkpoint
    # the merge rebuilds the card from the adapter's: the base's identity survives
    (tmp_path / "README.md").write_text(text, encoding="utf-8")
    assert CardFacts.from_card(tmp_path / "README.md").base == facts.base
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["config"] = yaml.safe_load((root / "config.yaml").read_text())  # as mathlora run records it
    (root / "manifest.json").write_text(json.dumps(manifest))
    build_report(root)
    report = (root / "report.md").read_text(encoding="utf-8")
    assert sha in report and "gguf_file=" in report and "different weights" in report
    # one recipe table: every row of the card's is in the report's configuration
    assert all(f"| {name} |" in report for name in facts.recipe) and "| LoRA r / alpha / dropout | 8 / " in report


def test_a_generated_reading_set_is_never_listed_as_squad(tmp_path):
    from mathlora.export.card_scores import eval_results, real_squad

    root = make_run(tmp_path / "run", model="smollm2-135m-instruct")
    for which in ("base", "tuned"):
        path = root / "eval" / which / "squad.json"
        data = json.loads(path.read_text()) if path.exists() else {"f1": 50.0, "em": 40.0, "count": 40}
        data["data"] = str(root / "raw" / "squad.json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data))
    scores = RunScores.read(root, strict=False)
    assert not real_squad(scores)
    text = card_text(CardFacts.from_run(root), "adapter", scores=scores)
    assert "rajpurkar/squad" not in text and "SQuAD v1.1" not in text and "generated" in text
    assert all(r.dataset_type != "rajpurkar/squad" for r in eval_results(scores))
    for which in ("base", "tuned"):
        path = root / "eval" / which / "squad.json"
        data = json.loads(path.read_text())
        data["data"] = "/c/datasets--rajpurkar--squad/snapshots/ab/plain_text/validation.parquet"
        path.write_text(json.dumps(data))
    scores = RunScores.read(root, strict=False)
    assert real_squad(scores) and "rajpurkar/squad" in card_text(CardFacts.from_run(root), "adapter", scores=scores)


def test_the_cards_family_table_is_the_reports_with_the_columns_without_the_calculator(tmp_path):
    root = make_run(tmp_path / "run", model="smollm2-135m-instruct")
    _with_families(root)
    (root / "eval" / "tuned" / "math_nocalc.json").write_text(json.dumps(
        {"accuracy": 0.375, "count": 16, "per_type": {"arithmetic": {"count": 8, "accuracy": 0.5},
                                                      "fractions": {"count": 8, "accuracy": 0.25}}}))
    text = card_text(CardFacts.from_run(root), "adapter", scores=RunScores.read(root, strict=False))
    table = text.split("Per family:\n\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert table == ["| family | problems | base | fine-tuned | base, no calculator | fine-tuned, no calculator |",
                     "|---|---|---|---|---|---|",
                     "| arithmetic | 8 | 12.5% | 87.5% | n/a | 50.0% |",
                     "| fractions | 8 | 0.0% | 25.0% | n/a | 25.0% |"]
