"""The report's sections after its summary: configuration, data, training, math, retention, timings."""

from __future__ import annotations

import math
from pathlib import Path

from pydantic import ValidationError

from mathlora.label import heuristic
from mathlora.run_dir.layout import RunLayout
from mathlora.report.scores import RunScores, retention_word, wilson_interval
from mathlora.report.grading import Run, _graded, _verdict, pick_examples, spread_wrong
from mathlora.report.usage import base_identity, base_words, recipe_rows
from mathlora.train.config import LoraConfig, TrainConfig
from mathlora.report.render import Doc, clip, duration, family_table, interval_text, pct, readable


def _total_seconds(stages: dict) -> float | None:
    seconds = [rec.get("seconds") for rec in stages.values() if isinstance(rec, dict)]
    seconds = [s for s in seconds if isinstance(s, (int, float)) and not isinstance(s, bool)]
    return sum(seconds) if seconds else None


def _summary(doc: Doc, scores: RunScores, runs: list[Run], stages: dict) -> None:
    base = next((r for r in reversed(runs) if r.which == "base"), None)
    tuned = next((r for r in reversed(runs) if r.which == "tuned"), None)
    if base and tuned:
        change = 100 * ((tuned.report.get("accuracy") or 0) - (base.report.get("accuracy") or 0))
        ret = scores.retention
        verdict = ("n/a" if not ret else
                   f"{retention_word(ret)} (keep >= {ret.get('keep', 0.9):.0%} of base F1 and EM)")
        doc.p(f"Math accuracy {pct(base.report.get('accuracy'))} -> {pct(tuned.report.get('accuracy'))} "
              f"({change:+.1f} points) on {readable(tuned.report.get('count'))} held-out problems"
              f"{' with the calculator' if tuned.calculator else ' without a tool'}; retention {verdict}.")
    if runs:
        rows = []
        for r in runs:
            interval = wilson_interval(r.report.get("correct", 0), r.report.get("count", 0)) \
                if isinstance(r.report.get("correct"), int) and isinstance(r.report.get("count"), int) else None
            rows.append([r.name, pct(r.report.get("accuracy")), interval_text(interval),
                         f"{readable(r.report.get('correct'))} / {readable(r.report.get('count'))}"])
        doc.table(["model", "accuracy", "95% interval (Wilson)", "correct"], rows)
        count = (tuned or runs[-1]).report.get("count")
        if isinstance(count, int) and count > 0:
            half = 100 * 1.96 * math.sqrt(0.25 / count)
            doc.p(f"With {count} problems an accuracy is known to about ±{half:.0f} points at most (95%): "
                  "differences inside the intervals are noise.")
    total = _total_seconds(stages)
    if total is not None:
        doc.p(f"Total time: {duration(total)} (the stages' recorded times; see Stage timings).")


def _configuration(doc: Doc, cfg: dict, trained: dict | None) -> None:
    doc.h("Configuration")
    lora, train = cfg.get("lora", {}), cfg.get("train", {})
    runtime, trained = cfg.get("runtime", {}), trained or {}
    sample, normalize = cfg.get("sample", {}), cfg.get("normalize", {})
    style = (f"{readable(cfg.get('solution_style', 'answer'))}"
             f"{' (calculator-assisted decoding)' if cfg.get('eval', {}).get('calculator') else ''}")
    try:  # the recipe as the model cards show it (report.usage.recipe_rows)
        recipe = recipe_rows(LoraConfig.model_validate(lora), TrainConfig.model_validate(train),
                             seq_length=readable(cfg.get("tokenize", {}).get("seq_length")),
                             seed=readable(cfg.get("seed")),
                             precision=readable(trained.get("dtype") or runtime.get("precision")),
                             template=readable(cfg.get("template")), solution_style=style, steps=trained.get("steps"),
                             ratio_line=trained.get("ratio_line"))
    except ValidationError:  # a config of another version: its values as written
        recipe = {"LoRA": readable(lora), "train": readable(train)}
    doc.table(["setting", "value"], [
        ["model", readable(cfg.get("model"))],
        *([["base weights", base_words(str(cfg.get("model")), identity)]]
          if (identity := base_identity(str(cfg.get("model")))) else []),
        ["judge", readable(cfg.get("label", {}).get("judge"))],
        ["sample", f"{readable(sample.get('total'))} records, ratios {readable(sample.get('ratios'))}"],
        ["decimals", f"{readable(normalize.get('decimals'))} ({readable(normalize.get('mode'))})"],
        ["runtime", f"trained on {readable(trained.get('device'))} in {readable(trained.get('dtype'))}" if trained
                    else f"device {readable(runtime.get('device'))}, precision {readable(runtime.get('precision'))}"],
        *([k, v] for k, v in recipe.items()),
    ])


def _data_sections(doc: Doc, stages: dict, data: dict, plots: dict) -> None:
    doc.h("Data funnel")
    ingest = stages.get("ingest", {}).get("counts", {})
    label = stages.get("label", {}).get("counts", {})
    tokens = data["tokens"] or {}
    doc.table(["step", "records"], [[name, readable(value)] for name, value in [
        ["read", ingest.get("read")], ["rejected", ingest.get("rejected")],
        ["duplicates", ingest.get("duplicates")], ["kept", ingest.get("kept")],
        ["labeled", label.get("labeled")], ["label failures", label.get("failed")],
        ["sampled", sum(r["drawn"] for r in data["sample_rows"]) if data["sample_rows"] else None],
        ["tokenized", tokens.get("kept")], ["truncated", tokens.get("truncated")],
        ["dropped (too long)", tokens.get("dropped")], ["rejected (no learnable token)", tokens.get("rejected")],
    ]])
    reasons = ingest.get("reject_reasons") or {}
    if reasons:
        doc.table(["reject reason", "lines"],
                  sorted(([k, readable(v)] for k, v in reasons.items()), key=lambda r: r[0]))

    doc.h("Difficulty and sampling")
    if "difficulty" in plots:
        doc.img(plots["difficulty"], "difficulty histogram")
    if data["sample_rows"]:
        doc.table(["level", "available", "requested", "drawn"],
                  [[r["level"], readable(r["available"]), readable(r["requested"]), readable(r["drawn"])]
                   for r in data["sample_rows"]])
        if "sample" in plots:
            doc.img(plots["sample"], "sampled vs requested")
    if tokens:
        doc.h("Tokens")
        doc.p(f"{readable(tokens.get('kept'))} records, {readable(tokens.get('tokens'))} tokens "
              f"({readable(tokens.get('learnable_tokens'))} learnable), mean length "
              f"{readable(tokens.get('mean_length'))}, max {readable(tokens.get('max_length'))} of "
              f"{readable(tokens.get('seq_length'))}.")
        if "lengths" in plots:
            doc.img(plots["lengths"], "token length histogram")


def _training(doc: Doc, tr: dict | None, plots: dict) -> None:
    if not tr:
        return
    doc.h("Training")
    doc.table(["metric", "value"], [
        ["steps", readable(tr.get("steps"))], ["epochs", readable(tr.get("epochs"))],
        ["final loss", readable(tr.get("final_loss"))], ["learnable tokens", readable(tr.get("learnable_tokens"))],
        ["learnable tokens/s", readable(tr.get("tokens_per_s"))], ["time", duration(tr.get("seconds"))],
        ["trainable parameters", readable(tr.get("ratio_line"))],
    ])
    if "training" in plots:
        doc.img(plots["training"], "loss and learning rate")


def _math(doc: Doc, lay: RunLayout, runs: list[Run], data: dict, levels: dict,
          test_records: list[dict] | None, plots: dict, cfg: dict) -> None:
    if not runs:
        return
    doc.h("Math accuracy by family (held-out)")
    base = next((r for r in reversed(runs) if r.which == "base"), None)
    tuned = next((r for r in reversed(runs) if r.which == "tuned"), None)
    grpo = next((r for r in reversed(runs) if r.which == "grpo"), None)  # grpo.enabled: SFT -> GRPO beside it

    change = f"change (points, {tuned.name if tuned else 'fine-tuned'} - {base.name if base else 'base'})"
    changes = [(change, tuned and tuned.report, base and base.report)]
    if grpo and tuned:
        changes.append((f"change (points, {grpo.name} - {tuned.name})", grpo.report, tuned.report))
    doc.table(*family_table([(r.name, r.report) for r in runs], count_from=(tuned or runs[-1]).report,
                            changes=changes))
    if "accuracy" in plots:
        doc.img(plots["accuracy"], "accuracy by family, base and fine-tuned, with and without the calculator")

    doc.h("Accuracy by difficulty level")
    if data["by_level"]:
        graded = [r for r in runs if r.items is not None]
        judge = (cfg.get("label") or {}).get("judge")
        doc.p(f"Levels 0-5 of the held-out problems by the heuristic judge (heuristic:{heuristic.VERSION}), the recipe's "
              "difficulty axis: the run's judge"
              + (f" ({judge})" if judge else "") + " rates only the training records.")
        doc.table(["level", "problems", *[r.name for r in graded]],
                  [[lv, readable(n), *[pct(a) for a in accs]] for lv, n, accs in data["by_level"]])
        if "levels" in plots:
            doc.img(plots["levels"], "accuracy by difficulty level")
    else:
        doc.p("Not shown: the held-out problems or the predictions are missing, or the predictions no longer "
              "match their recorded scores.")

    rows = data["checkpoint_rows"]
    if rows:
        doc.h("Accuracy per checkpoint")
        with_calc = data["calculator"]
        header = ["step", "scored", "accuracy" + (" (calculator)" if with_calc else ""), "95% interval"]
        if with_calc:
            header += ["without the calculator"]
        body = []
        for r in rows:
            interval = (wilson_interval(r["correct"], r["count"])
                        if isinstance(r.get("correct"), int) and isinstance(r.get("count"), int) else None)
            line = [r["step"], "merged/" if r.get("model") == "merged" else "base + adapter",
                    pct(r.get("accuracy")), interval_text(interval)]
            if with_calc:
                line.append(pct(r.get("accuracy_nocalc")))
            body.append(line)
        doc.table(header, body)
        skipped = (data.get("checkpoint_skipped") or [])
        if skipped:
            doc.p("Not scored: " + "; ".join(f"step {s.get('step')} ({s.get('reason')})" for s in skipped))
        if "checkpoints" in plots:
            doc.img(plots["checkpoints"], "accuracy over training steps")

    if not (base and tuned and base.items is not None and tuned.items is not None):
        if tuned:
            doc.h("Wrong answers")
            doc.p("Not shown: the predictions are missing or no longer match their recorded scores.")
        return
    problems = {str(r["id"]): r for r in test_records or [] if isinstance(r, dict) and "id" in r}
    order = [k for k in problems if k in tuned.items] or list(tuned.items)
    b_items, t_items = _graded(base.items), _graded(tuned.items)
    wrong = [k for k in order if k in t_items and not t_items[k].correct]
    doc.h(f"Wrong answers ({tuned.name})")
    doc.p(f"{len(wrong)} of {len(t_items)} wrong ({sum(t_items[k].status == 'unparsable' for k in wrong)} without a "
          f"readable answer); up to 10, taken in turn from each family, beside the answer of {base.name}.")
    picked = spread_wrong(t_items, order, 10)
    if picked:
        doc.table(["family", "level", "problem", "gold", tuned.name, base.name, f"{tuned.name}: completion"], [
            [t_items[k].type, levels.get(k, "n/a"), (problems.get(k) or {}).get("problem", ""),
             t_items[k].gold_answer, t_items[k].predicted or "(no answer)",
             (b_items[k].predicted or "(no answer)") if k in b_items else "n/a", t_items[k].completion]
            for k in picked], pre=frozenset({2, 3, 4, 5, 6}), mono=frozenset({6}), limit=240)

    examples = pick_examples(b_items, t_items, order)
    if examples:
        doc.h("Example completions, base and fine-tuned side by side")
        doc.table(["", "problem", "gold", base.name, tuned.name], [
            [kind, f"{clip((problems.get(k) or {}).get('problem', ''), 400)}\n({t_items[k].type}, level "
                   f"{levels.get(k, 'n/a')})", t_items[k].gold_answer,
             *[f"{clip(items[k].completion, 400)}\n→ {_verdict(items[k])}" for items in (b_items, t_items)]]
            for kind, k in examples], pre=frozenset({1, 2, 3, 4}), mono=frozenset({3, 4}))


def _retention(doc: Doc, scores: RunScores) -> None:
    base_squad, tuned_squad = scores.base_squad, scores.tuned_squad
    if not (base_squad and tuned_squad):
        return
    doc.h("Retention (reading comprehension)")
    ret = scores.retention or {}
    keep = ret.get("keep")
    measurable = ret.get("measurable", True)

    def row(name: str, key: str) -> list:
        b, t = base_squad.get(key), tuned_squad.get(key)
        ratio = ret.get(f"{key}_ratio")
        if not ret:
            ratio_text, needed = "n/a", "n/a"
        elif ratio is None:  # a base of 0: anything keeps 90% of nothing
            ratio_text, needed = f"n/a (base {name} is 0)", "not measurable"
        else:
            ratio_text = f"{ratio:.2f}"
            needed = ("ok" if ret.get(f"{key}_ok") else "FAIL") if measurable else "not measurable"
        return [name, readable(round(b, 2)) if isinstance(b, (int, float)) else "n/a",
                readable(round(t, 2)) if isinstance(t, (int, float)) else "n/a", ratio_text, needed]

    doc.table(["score", "base", "fine-tuned", "ratio", f"needed (>= {keep:.0%} of base)" if keep else "needed"],
              [row("F1", "f1"), row("EM", "em")])
    doc.p(f"{readable(tuned_squad.get('count'))} samples from {Path(str(tuned_squad.get('data', ''))).name}; "
          f"verdict {retention_word(ret) if ret else 'n/a'}.")


def _timings(doc: Doc, stages: dict) -> None:
    doc.h("Stage timings")
    total = _total_seconds(stages) or 0
    rows = [[name, duration(rec.get("seconds")),
             f"{100 * rec['seconds'] / total:.0f}%" if total and isinstance(rec.get("seconds"), (int, float)) else "",
             readable(rec.get("finished_at"))] for name, rec in stages.items() if isinstance(rec, dict)]
    if total:
        rows.append(["total", duration(total), "100%", ""])
    doc.table(["stage", "time", "share", "finished"], rows)
