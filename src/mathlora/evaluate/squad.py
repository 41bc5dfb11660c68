"""SQuAD v1.1 retention check: samples, the official F1/EM, generation or external predictions, verdict.

Samples: by default the first question of each paragraph scored against its first answer (the
competition's protocol: 2067 samples for dev v1.1); ``all_questions`` scores every question against all
its answers (the official protocol). Prompt::

    Read the passage and answer the question below.\\n\\n### Instruction:\\n{context}\\n\\n### Input:\\n{question}\\n\\n### Response:

Generation is greedy with at most ``squad_max_new_tokens`` (20) and at least 1 new token (within
``max_length`` when the prompt leaves room). A prediction is the completion's first non-empty line, stripped.
Scores follow the official v1.1 script: answers normalized (lowercase, punctuation and the articles
a/an/the removed, whitespace collapsed), EM = normalized equality, F1 = token-overlap F1, each the max over
the gold answers, averaged and reported in percent.
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from collections import Counter
from pathlib import Path

from mathlora.errors import MathloraError
from mathlora.arith.answers import first_line
from mathlora.evaluate.backend import generate
from mathlora.evaluate.config import EvalConfig
from mathlora.run_dir.records import read_json_document, read_jsonl, require_file, write_jsonl
from mathlora.run_dir.atomic import write_json_atomic
from mathlora.modeling.runtime import Runtime

SQUAD_PROMPT = ("Read the passage and answer the question below.\n\n### Instruction:\n{context}\n\n"
                "### Input:\n{question}\n\n### Response:")

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)


# -- official SQuAD v1.1 metric ----------------------------------------------------------------------------

def normalize_answer(text: str) -> str:
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def f1_score(prediction: str, gold: str) -> float:
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    common = Counter(pred_tokens) & Counter(gold_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(pred_tokens)
    recall = same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def best_over_golds(metric, prediction: str, golds: list[str]) -> float:
    return max(metric(prediction, g) for g in golds)


def score_predictions(predictions: dict[str, str], samples: list[dict]) -> dict:
    """F1 and EM in percent over ``samples`` (each with ``id`` and ``answers``)."""
    if not samples:
        raise MathloraError("no SQuAD samples to score")
    f1 = sum(best_over_golds(f1_score, predictions[s["id"]], s["answers"]) for s in samples)
    em = sum(best_over_golds(exact_match, predictions[s["id"]], s["answers"]) for s in samples)
    n = len(samples)
    return {"f1": round(100 * f1 / n, 4), "em": round(100 * em / n, 4), "count": n}


# -- samples -----------------------------------------------------------------------------------------------

def _shape_error(path, where: str, what: str) -> MathloraError:
    return MathloraError(f"{path} is not SQuAD v1.1 JSON: {where} {what}")


def read_squad(path) -> list[dict]:
    """The ``data`` list of a SQuAD v1.1 file, with its shape checked."""
    p = require_file(path, "SQuAD")
    try:
        doc = read_json_document(p, "SQuAD")
    except MathloraError as e:
        raise MathloraError(f"{e}; expected SQuAD v1.1 JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise _shape_error(p, "top level", "must be an object with a 'data' list")
    for a, article in enumerate(doc["data"]):
        if not isinstance(article, dict) or not isinstance(article.get("paragraphs"), list):
            raise _shape_error(p, f"data[{a}]", "must have a 'paragraphs' list")
        for b, para in enumerate(article["paragraphs"]):
            where = f"data[{a}].paragraphs[{b}]"
            if not isinstance(para, dict) or not isinstance(para.get("context"), str) \
                    or not isinstance(para.get("qas"), list):
                raise _shape_error(p, where, "must have a 'context' string and a 'qas' list")
            for c, qa in enumerate(para["qas"]):
                w = f"{where}.qas[{c}]"
                if not isinstance(qa, dict) or not isinstance(qa.get("question"), str) or "id" not in qa:
                    raise _shape_error(p, w, "must have an 'id' and a 'question' string")
                answers = qa.get("answers")
                if not isinstance(answers, list) or not answers or not all(
                        isinstance(x, dict) and isinstance(x.get("text"), str) for x in answers):
                    raise _shape_error(p, w, "must have a non-empty 'answers' list of {'text': ...}")
    return doc["data"]


def build_samples(data: list[dict], *, all_questions: bool = False, limit: int | None = None) -> list[dict]:
    """Samples ``{id, prompt, question, answers}`` in file order (see the module docstring)."""
    samples = []
    for article in data:
        for para in article["paragraphs"]:
            qas = para["qas"] if all_questions else para["qas"][:1]
            for qa in qas:
                answers = [x["text"] for x in qa["answers"]]
                samples.append({"id": str(qa["id"]), "question": qa["question"],
                                "answers": answers if all_questions else answers[:1],
                                "prompt": SQUAD_PROMPT.format(context=para["context"], question=qa["question"])})
    if limit is not None:
        samples = samples[:limit]
    return samples


def load_samples(data_path, *, all_questions: bool = False, limit: int | None = None) -> list[dict]:
    samples = build_samples(read_squad(data_path), all_questions=all_questions, limit=limit)
    if not samples:
        raise MathloraError(f"{data_path} has no questions")
    ids = [s["id"] for s in samples]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise MathloraError(f"{data_path}: duplicate question id {dup!r}")
    return samples


def samples_fingerprint(samples: list[dict]) -> str:
    h = hashlib.sha256()
    for s in samples:
        h.update(json.dumps([s["id"], s["answers"]], ensure_ascii=False).encode())
    return h.hexdigest()[:16]


def dump_samples(data_path, output_path, *, all_questions: bool = False, limit: int | None = None) -> int:
    """Write the samples (id, prompt, question, answers) as JSON lines, to be completed elsewhere."""
    return write_jsonl(output_path, load_samples(data_path, all_questions=all_questions, limit=limit))


def read_external_predictions(path, samples: list[dict]) -> dict[str, str]:
    """``{"id", "prediction"}`` lines -> {id: prediction}; every sample needs one, unknown ids are errors."""
    wanted = {s["id"] for s in samples}
    preds: dict[str, str] = {}
    for n, rec in enumerate(read_jsonl(path, "predictions"), 1):
        if "id" not in rec or "prediction" not in rec:
            raise MathloraError(f"predictions file {path}: line {n} needs 'id' and 'prediction'")
        preds[str(rec["id"])] = "" if rec["prediction"] is None else str(rec["prediction"])
    if not preds:
        raise MathloraError(f"predictions file {path} is empty")
    missing = [i for i in wanted if i not in preds]
    if missing:
        raise MathloraError(f"predictions file {path} does not line up with the samples: "
                            f"{len(missing)} sample ids have no prediction (e.g. {sorted(missing)[0]!r}); "
                            f"write the ids given by --dump-samples")
    return preds


# -- verdict -----------------------------------------------------------------------------------------------

def _score(result: dict, name: str, key: str) -> float:
    value = result.get(key)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise MathloraError(f"{name} result has no numeric {key!r} (is it a 'mathlora eval squad' result?)")
    return float(value)


def retention_verdict(base: dict, tuned: dict, keep: float) -> dict:
    """Does the fine-tuned model keep at least ``keep`` of the base's F1 and EM? (``passed`` None: the base
    F1 is 0, so retention is not measurable.)"""
    verdict: dict = {"keep": keep}
    for key in ("f1", "em"):
        b, t = _score(base, "baseline", key), _score(tuned, "fine-tuned", key)
        verdict[f"base_{key}"] = b
        verdict[key] = t
        verdict[f"{key}_ratio"] = round(t / b, 4) if b > 0 else None
        verdict[f"{key}_ok"] = t >= keep * b
    # a base F1 of 0 cannot show retention (anything keeps 90% of nothing): not measurable, neither verdict
    verdict["measurable"] = verdict["base_f1"] > 0
    verdict["passed"] = (verdict["f1_ok"] and verdict["em_ok"]) if verdict["measurable"] else None
    return verdict


def read_baseline(path) -> dict:
    p = require_file(path, "baseline")
    try:
        base = read_json_document(p, "baseline")
    except MathloraError:
        raise MathloraError(f"baseline {p} is not a JSON result of 'mathlora eval squad'") from None
    if not isinstance(base, dict):
        raise MathloraError(f"baseline {p} is not a JSON result of 'mathlora eval squad'")
    return base


def check_same_samples(base: dict, result: dict, baseline_path) -> None:
    theirs, ours = base.get("samples_sha256"), result.get("samples_sha256")
    if theirs and ours and theirs != ours:
        raise MathloraError(f"baseline {baseline_path} was scored on other samples ({base.get('count')} vs "
                            f"{result.get('count')}); use the same --data, --limit and --all-questions")


# -- entry point -------------------------------------------------------------------------------------------

def default_predictions_path(output_path) -> Path:
    out = Path(output_path)
    return out.with_name(out.stem + ".predictions.jsonl")


def evaluate_squad(cfg: EvalConfig, runtime: Runtime | None, model: str | None, adapter: str | None, data_path,
                   output_path, *, predictions_out=None, progress: bool = True, baseline_path=None,
                   predictions_in=None) -> dict:
    """Score a model (or, with ``predictions_in``, completions made elsewhere) on SQuAD; write the result.

    The model runs on the runtime's device and dtype, or on a server (``eval.backend: openai``, no runtime).

    Generated predictions are saved as ``{"id", "prediction", "completion"}`` lines to ``predictions_out``
    (default: ``<output stem>.predictions.jsonl``). ``baseline_path`` (a previous result) adds ``retention``.
    """
    samples = load_samples(data_path, all_questions=cfg.squad_all_questions, limit=cfg.squad_limit)
    base = read_baseline(baseline_path) if baseline_path is not None else None
    result: dict = {"model": model, "adapter": adapter, "data": str(data_path),
                    "mode": "all_questions" if cfg.squad_all_questions else "first_question",
                    "samples_sha256": samples_fingerprint(samples)}
    if base is not None:
        check_same_samples(base, result, baseline_path)
    if predictions_in is not None:
        preds = read_external_predictions(predictions_in, samples)
        preds = {k: first_line(v) for k, v in preds.items()}
        result["predictions"] = str(predictions_in)
    else:
        if model is None and not (cfg.backend == "openai" and cfg.model):
            raise MathloraError("give --model (to generate) or --predictions (completions made elsewhere)")
        out = generate(cfg, runtime, model, adapter, [s["prompt"] for s in samples],
                       max_new_tokens=cfg.squad_max_new_tokens, min_new_tokens=1, progress=progress, desc="squad")
        if out.remote:
            result.update(out.source)
        gens = out.generations
        result["seconds"] = round(out.seconds, 3)
        preds = {s["id"]: first_line(g.completion) for s, g in zip(samples, gens)}
        out = Path(predictions_out) if predictions_out is not None else default_predictions_path(output_path)
        write_jsonl(out, ({"id": s["id"], "prediction": preds[s["id"]], "completion": g.completion}
                          for s, g in zip(samples, gens)))
        result["predictions"] = str(out)
    result.update(score_predictions(preds, samples))
    if base is not None:
        result["baseline"] = str(baseline_path)
        result["retention"] = retention_verdict(base, result, cfg.keep)
    write_json_atomic(output_path, result)
    return result
