"""A finished run's report artifacts for the report tests: scores and predictions graded by the real grader, a
real retention verdict, training and checkpoint records; ``build_run`` writes them and builds the report."""

import json
import warnings

from mathlora.evaluate.config import EvalConfig
from mathlora.evaluate.math_grading import grade_file
from mathlora.evaluate.squad import retention_verdict
from mathlora.run_dir.layout import RunLayout
from mathlora.run_dir.records import write_jsonl
from mathlora.report.build import build_report

HOSTILE = "Samir has 3 bags | 5 cards\n| injected | row |\n<script>alert(1)</script> `code` *x*\n答案：8"

# id -> (problem, gold solution, family)
PROBLEMS = {
    "a1": ("计算 7689.15 + 8713.05 等于多少？", "7689.15 + 8713.05 = 16402.20", "addition"),
    "a2": ("计算 12 + 30 等于多少？", "12 + 30 = 42", "addition"),
    "f1": ("将分数 6/8 进行简化。", "最简化的形式为：3/4", "fraction_simplify"),
    "f2": ("将分数 10/4 进行简化。", "最简化的形式为：5/2", "fraction_simplify"),
    "z1": ("解方程 -67x + -85 = 0", "方程的解为：-1.2686567164179106", "解方程"),
    "e1": ("Samir has 3 bags with 5 cards in each bag and gives none of them away. How many cards does he "
           "have in all?", "3 * 5 = 15\n#### 15", "english_math"),
}
# (which, tag) -> id -> completion
COMPLETIONS = {
    ("tuned", ""): {"a1": "<<7689.15 + 8713.05=16402.2>>\n答案：16402.2", "a2": "<<12 + 30=42>>\n答案：42",
                    "f1": "答案：3/4", "f2": "答案：10/4", "z1": "<<-85 / 67=-1.27>>\n答案：-1.27", "e1": HOSTILE},
    ("base", ""): {"a1": "答案：1", "a2": "答案：42", "f1": "答案：6/8", "f2": "答案：5/2", "z1": "答案：3",
                   "e1": "答案：9"},
    ("tuned", "_nocalc"): {k: ("答案：42" if k == "a2" else "答案：7") for k in PROBLEMS},
    ("base", "_nocalc"): {k: "答案：0" for k in PROBLEMS},
}
TUNED_RIGHT = {"a1", "a2", "f1", "z1"}  # what the grader says of COMPLETIONS[("tuned", "")]
BASE_RIGHT = {"a2", "f2"}


def write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, ensure_ascii=False), encoding="utf-8")


def build_run(root) -> dict:
    """Write the artifacts under ``root`` (a new folder), build the report; what the tests read of it."""
    lay = RunLayout(root)
    root.mkdir()
    write_jsonl(lay.test_records, [{"id": k, "problem": p, "solution": s, "type": t}
                                   for k, (p, s, t) in PROBLEMS.items()])
    for (which, tag), completions in sorted(COMPLETIONS.items()):  # the base first: the baseline
        preds, scores = lay.eval(which).math_files(tag)
        preds.parent.mkdir(parents=True, exist_ok=True)
        write_jsonl(preds, [{"id": k, "completion": completions[k], "gold": s, "type": t}
                            for k, (_, s, t) in PROBLEMS.items()])
        baseline = lay.eval("base").math_files(tag)[0] if which == "tuned" else None
        grade_file(EvalConfig(), preds, scores, baseline_path=baseline, solution_style="calculator")
    base_squad = {"f1": 12.27, "em": 0.0, "count": 40, "data": "squad.json"}
    write(lay.eval("base").squad, base_squad)
    tuned_squad = {"f1": 17.99, "em": 0.0, "count": 40, "data": "squad.json"}
    write(lay.eval("tuned").squad, {**tuned_squad, "retention": retention_verdict(base_squad, tuned_squad, 0.9)})
    write(lay.train_summary, {"steps": 120, "epochs": 2.0, "final_loss": 0.27277007931397484, "seconds": 874.994,
                              "tokens_per_s": 108.26137506933995, "learnable_tokens": 94728, "device": "cpu",
                              "dtype": "float32"})
    lay.train_metrics.write_text("".join(json.dumps({"step": s, "loss": 2.0 / s, "lr": 1e-3}) + "\n"
                                         for s in range(1, 5)), encoding="utf-8")
    write(lay.merged_config, {"model_type": "llama"})  # merge's folder: the report says how to load it
    lay.run_log.write_text("=== 2026-12-01T23:49:20Z mathlora run ===\n", encoding="utf-8")
    (lay.train / "mlruns").mkdir()  # train.report_to: mlflow
    write(lay.checkpoint_scores, {"calculator": True, "checkpoints": [
        {"step": 20, "model": "adapter", "accuracy": 0.666667, "correct": 4, "count": 6, "accuracy_nocalc": 0.166667,
         "correct_nocalc": 1},
        {"step": 10, "model": "merged", "accuracy": 0.166667, "correct": 1, "count": 6, "accuracy_nocalc": 0.0,
         "correct_nocalc": 0}],
        "skipped": [{"step": 30, "reason": "adapter_model.safetensors does not match its checksum"}]})
    stages = {"ingest": {"seconds": 0.04, "counts": {"read": 2400, "kept": 2400, "rejected": 0, "duplicates": 0},
                         "finished_at": "2026-12-01T23:49:20"},
              "eval_base_math": {"seconds": 1010.281}, "train": {"seconds": 874.994}}
    write(lay.manifest, {"stages": stages, "mathlora_version": "0.1.0", "python": "3.11.7", "config": {
        "model": "smollm2-135m-instruct", "template": "alpaca", "seed": 0, "solution_style": "calculator",
        "label": {"judge": "heuristic"}, "lora": {"r": 8, "alpha": 16.0, "dropout": 0.0,
                                                 "target_modules": ["q_proj", "v_proj"]},
        "train": {"lr": 0.003, "lr_end": 0.0, "eps": 1e-8, "betas": [0.9, 0.95]},
        "eval": {"calculator": True, "max_new_tokens": 160}}})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = build_report(root)
    return {"root": root, "lay": lay, "summary": summary, "md": lay.report_md.read_text(encoding="utf-8"),
            "html": lay.report_html.read_text(encoding="utf-8"), "warnings": [str(w.message) for w in caught]}
