"""RunLayout names the files the stages really write (their own names for what they put beside an output)."""

from mathlora.data.sampling import TABLE_FILE
from mathlora.evaluate.squad import default_predictions_path
from mathlora.label.run import FAILURES_FILE, default_cache_path
from mathlora.run_dir.layout import RunLayout
from mathlora.train.data import STATS_FILE, TOKENS_FILE
from mathlora.train.outputs import METRICS, SUMMARY


def test_layout_agrees_with_the_stage_modules(tmp_path):
    lay = RunLayout(tmp_path)
    assert lay.label_cache == default_cache_path(lay.labeled)
    assert lay.label_failures == lay.labeled.with_name(FAILURES_FILE)
    assert lay.sample_table == lay.sampled.with_name(TABLE_FILE)
    assert lay.rejects == lay.records.with_name("rejects.jsonl")  # ingest's default beside its output
    assert (lay.tokens_parquet, lay.tokens_stats) == (lay.tokens / TOKENS_FILE, lay.tokens / STATS_FILE)
    assert (lay.train_summary, lay.train_metrics) == (lay.train / SUMMARY, lay.train / METRICS)
    for which in ("base", "tuned"):
        ev = lay.eval(which)
        assert ev.squad_predictions == default_predictions_path(ev.squad)
        assert ev.math_files() == (ev.math_predictions, ev.math)
        assert ev.math_files("_nocalc")[1] == ev.math_nocalc
    assert RunLayout(str(tmp_path)) == lay
