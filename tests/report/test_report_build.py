"""report.build: the report people read, from a run folder whose scores the real grader wrote."""

import json
import re

import pytest
from tests.report.report_run import BASE_RIGHT, PROBLEMS, TUNED_RIGHT

from mathlora.label.heuristic import heuristic_difficulty
from mathlora.report.plots import CJK_FONTS, accuracy_figure, font_stack, plot_style
from mathlora.report.render import Doc, duration, md_cell, readable
from mathlora.report.scores import wilson_interval


def section(md: str, heading: str) -> str:
    return md.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]


def table_rows(text: str) -> list[list[str]]:
    """The data rows of the first Markdown table in ``text``, split on unescaped pipes."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    rows = lines[start + 2:end]
    return [[c.strip() for c in re.split(r"(?<!\\)\|", row)[1:-1]] for row in rows]


def test_the_fixture_grades_as_designed(run):
    tuned = json.loads(run["lay"].eval("tuned").math.read_text())
    assert (tuned["correct"], tuned["count"]) == (len(TUNED_RIGHT), len(PROBLEMS))
    assert json.loads(run["lay"].eval("base").math.read_text())["correct"] == len(BASE_RIGHT)


def test_headline_accuracies_carry_wilson_intervals_and_are_rounded(run):
    rows = {r[0]: r for r in table_rows(run["md"].split("# mathlora run report", 1)[1])}
    assert list(rows) == ["base", "base + calculator", "fine-tuned", "fine-tuned + calculator"]
    # 4 of 6: 66.7%, Wilson 95% (0.300, 0.903), worked by hand
    assert rows["fine-tuned + calculator"][1:] == ["66.7%", "30.0-90.3%", "4 / 6"]
    assert rows["base"][1:] == ["0.0%", "0.0-39.0%", "0 / 6"]
    assert "Total time: 31 min 25 s" in run["md"]
    md = run["md"]
    assert "0.27277007931397484" not in md and "108.26137506933995" not in md
    assert "| final loss | 0.2728 |" in md and "| learnable tokens/s | 108.3 |" in md and "| time | 14 min 35 s |" in md


def test_wilson_interval_goldens():
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.277533, abs=1e-6)  # z^2 / (n + z^2)
    lo, hi = wilson_interval(10, 10)
    assert lo == pytest.approx(0.722467, abs=1e-6) and hi == 1.0
    lo, hi = wilson_interval(60, 120)
    assert (lo, hi) == (pytest.approx(0.411939, abs=1e-6), pytest.approx(0.588061, abs=1e-6))  # by bisection
    assert wilson_interval(0, 0) is None


def test_family_table_has_all_four_runs_and_escapes_the_names(run):
    rows = table_rows(section(run["md"], "Math accuracy by family (held-out)"))
    by_family = {r[0]: r for r in rows}
    assert by_family["ALL"] == ["ALL", "6", "0.0%", "33.3%", "16.7%", "66.7%", "+33.3"]
    assert by_family["fraction\\_simplify"][2:6] == ["0.0%", "50.0%", "0.0%", "50.0%"]
    assert "解方程" in by_family
    assert (run["root"] / "plots" / "accuracy.png").is_file()


def test_accuracy_by_level_regrades_each_problem_under_the_heuristic_judges_levels(run):
    levels = {k: heuristic_difficulty(p, s) for k, (p, s, _) in PROBLEMS.items()}
    assert len(set(levels.values())) > 1
    rows = table_rows(section(run["md"], "Accuracy by difficulty level"))
    assert [int(r[0]) for r in rows] == sorted(set(levels.values()))
    for row in rows:
        ids = [k for k, lv in levels.items() if lv == int(row[0])]
        assert row[1] == str(len(ids))
        assert row[5] == f"{100 * sum(k in TUNED_RIGHT for k in ids) / len(ids):.1f}%"
        assert row[3] == f"{100 * sum(k in BASE_RIGHT for k in ids) / len(ids):.1f}%"
    assert "heuristic judge" in section(run["md"], "Accuracy by difficulty level")
    assert (run["root"] / "plots" / "levels.png").is_file()


def test_wrong_answers_show_base_and_tuned_side_by_side_and_a_completion_cannot_break_the_table(run):
    text = section(run["md"], "Wrong answers (fine-tuned + calculator)")
    assert text.strip().startswith("2 of 6 wrong")
    rows = table_rows(text)
    assert [len(r) for r in rows] == [7, 7]
    by_gold = {r[3]: r for r in rows}
    assert by_gold["5/2"][4:6] == ["10/4", "5/2"]  # the tuned model's answer, then the base model's
    hostile = by_gold["15"][6]
    assert "<script>" not in hostile and "&lt;script>" in hostile and "<br>" in hostile
    assert "\\`code\\`" in hostile and "\\*x\\*" in hostile


def test_examples_put_base_and_tuned_completions_side_by_side_for_right_and_wrong_answers(run):
    text = section(run["md"], "Example completions, base and fine-tuned side by side")
    rows = table_rows(text)
    kinds = [r[0] for r in rows]
    assert set(kinds) == {"fixed by fine-tuning", "right before and after", "still wrong", "broken by fine-tuning"}
    assert all(len(r) == 5 for r in rows)
    broken = rows[kinds.index("broken by fine-tuning")]
    assert broken[3].endswith("→ right: 5/2") and broken[4].endswith("→ wrong: 10/4")
    assert "&lt;&lt;7689.15 + 8713.05=16402.2>><br>答案：16402.2<br>→ right: 16402.2" in text  # lines stay
    assert "<td class='pre mono'>&lt;&lt;7689.15 + 8713.05=16402.2&gt;&gt;\n答案：16402.2" in run["html"]


def test_checkpoints_are_tabled_by_step_and_plotted(run):
    text = section(run["md"], "Accuracy per checkpoint")
    rows = table_rows(text)
    assert [r[:5] for r in rows] == [["10", "merged/", "16.7%", "3.0-56.4%", "0.0%"],
                                     ["20", "base + adapter", "66.7%", "30.0-90.3%", "16.7%"]]
    assert "step 30 (adapter\\_model.safetensors does not match its checksum)" in text
    assert (run["root"] / "plots" / "checkpoints.png").is_file()


def test_retention_em_of_a_zero_base_is_not_measurable_rather_than_none_ok(run):
    rows = {r[0]: r for r in table_rows(section(run["md"], "Retention (reading comprehension)"))}
    assert rows["EM"][3:] == ["n/a (base EM is 0)", "not measurable"]
    assert rows["F1"][1:] == ["12.27", "17.99", "1.47", "ok"]
    assert "None" not in run["md"]


def test_artifacts_usage_and_versions(run):
    usage = section(run["md"], "How to use these artifacts")
    assert f"mathlora serve --run {run['root'].as_posix()}" in usage
    assert f"mathlora ask --run {run['root'].as_posix()}" in usage
    assert "PeftModel.from_pretrained" in usage and "CalculatorLogitsProcessor" in usage
    # the base as the adapter's config names it (the packaged SmolLM2 is its Hub repo), loadable by name
    assert 'AutoModelForCausalLM.from_pretrained("HuggingFaceTB/SmolLM2-135M-Instruct")' in usage
    assert "BASE_MODEL_FOLDER" not in usage
    assert "### Response: " in usage  # the training prompt, spelled out for plain transformers
    versions = {r[0]: r for r in table_rows(section(run["md"], "Library versions"))}
    assert versions["mathlora"][1:] == ["0.1.0", "recorded by the run"]
    assert versions["torch"][2] == "installed when the report was built"
    paths = [r[0] for r in table_rows(section(run["md"], "Where the artifacts are"))]
    assert "eval/tuned/" in paths and "manifest.json" in paths
    assert "run.log" in paths and "train/mlruns/" in paths and "train/wandb/" not in paths  # only what exists


def test_html_loads_its_plots_and_names_cjk_fonts(run):
    srcs = re.findall(r'<img src="([^"]+)"', run["html"])
    assert {"plots/accuracy.png", "plots/levels.png", "plots/checkpoints.png", "plots/training.png"} <= set(srcs)
    assert all((run["root"] / s).is_file() for s in srcs)
    assert '"Noto Sans CJK SC"' in run["html"] and '"WenQuanYi Micro Hei"' in run["html"]
    assert not [w for w in run["warnings"] if "missing from" in w]  # a glyph without a font falls back silently


def test_font_stack_is_dejavu_then_the_installed_cjk_fonts():
    from matplotlib import font_manager

    stack = font_stack()
    installed = {f.name for f in font_manager.fontManager.ttflist}
    assert stack[0] == "DejaVu Sans"
    assert stack[1:] == [name for name in CJK_FONTS if name in installed]


def test_the_cjk_fonts_of_the_stack_have_chinese_glyphs():
    from matplotlib.font_manager import FontProperties, findfont
    from matplotlib.ft2font import FT2Font

    cjk = font_stack()[1:]
    if not cjk:
        pytest.skip("no CJK font installed (apt-get install fonts-wqy-zenhei or fonts-noto-cjk)")
    for name in cjk:
        font = FT2Font(findfont(FontProperties(family=name), fallback_to_default=False))
        assert all(font.get_char_index(ord(c)) for c in "分数化简解方程"), name


def test_chinese_labels_render_with_the_cjk_font_where_one_is_installed():
    import warnings

    import matplotlib.pyplot as plt

    if not font_stack()[1:]:
        pytest.skip("no CJK font installed (apt-get install fonts-wqy-zenhei or fonts-noto-cjk)")
    with plot_style(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig, ax = plt.subplots()
        ax.set_title("分数化简 fraction_simplify")
        fig.canvas.draw()
        plt.close(fig)
    assert not [w for w in caught if "missing from" in str(w.message)]  # every glyph found along the stack


def test_accuracy_figure_labels_every_bar_and_keeps_the_legend_off_the_bars():
    with plot_style():
        fig, ax = accuracy_figure(["ALL", "addition", "分数"], [
        ("base", [0.0, 0.0, 0.0]), ("base + calculator", [0.0, 0.5, 0.0]),
            ("fine-tuned", [0.2, 1.0, None]), ("fine-tuned + calculator", [0.9, 1.0, 0.5])], "t")
        fig.canvas.draw()
    assert len(ax.patches) == 12
    labels = [t.get_text() for t in ax.texts]
    assert labels.count("0") == 5 and "n/a" in labels  # a 0% bar is visible by its label
    legend, axes = ax.get_legend().get_window_extent(), ax.get_window_extent()
    assert legend.y0 >= axes.y1 - 1  # above the plotting area: it covers no bar
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["base", "base + calculator", "fine-tuned",
                                                                   "fine-tuned + calculator"]


def test_numbers_read_as_people_read_them():
    assert [readable(v) for v in (0.27277007931397484, 16.0, 110260, 1e-08, 874.994, 12345.6, None, True)] == \
        ["0.2728", "16", "110,260", "1e-08", "875", "12,346", "n/a", "yes"]
    assert [duration(s) for s in (0.047, 5.25, 19.7, 874.994, 3725)] == \
        ["0.047 s", "5.2 s", "20 s", "14 min 35 s", "1 h 2 min"]


def test_a_completion_cannot_break_or_inject_into_the_markdown_table():
    hostile = "4 | 5 |\n| injected | row |\n<script>alert(1)</script> `code`"
    cell = md_cell(hostile)
    assert "\n" not in cell and "<script>" not in cell and not re.search(r"(?<!\\)\|", cell)
    doc = Doc()
    doc.table(["predicted", "completion"], [["4", hostile]])
    rows = [line for line in doc.md if line.startswith("|")]
    assert len(rows) == 3
    assert len(re.findall(r"(?<!\\)\|", rows[2])) == 3  # the data row keeps its two cells


def test_the_judge_version_and_the_snippets_new_tokens_come_from_their_sources(tmp_path, monkeypatch):
    """B9: the report hard-coded ``heuristic:v2`` and, where the config does not say, 160 new tokens (the
    evaluation's default is ``EvalConfig().max_new_tokens``)."""
    import json

    from mathlora.evaluate.config import EvalConfig
    from mathlora.label import heuristic
    from mathlora.report.build import build_report
    from tests.report.report_run import build_run

    built = build_run(tmp_path / "run")
    lay = built["lay"]
    manifest = json.loads(lay.manifest.read_text(encoding="utf-8"))
    manifest["config"]["eval"] = {"calculator": True}  # max_new_tokens not recorded: the default applies
    lay.manifest.write_text(json.dumps(manifest), encoding="utf-8")
    monkeypatch.setattr(heuristic, "VERSION", "v9")
    build_report(lay.root)
    md = lay.report_md.read_text(encoding="utf-8")
    assert "heuristic:v9" in md and "heuristic:v2" not in md
    default = EvalConfig().max_new_tokens
    assert f"max_new_tokens={default}" in section(md, "How to use these artifacts")
    assert "max_new_tokens=160" not in md
