"""``mathlora synth`` writes math JSON lines and SQuAD JSON files, atomically and deterministically."""

from __future__ import annotations

import json
from collections import Counter

from mathlora.app.cli import main
from mathlora.run_dir.records import read_jsonl


def config_file(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("seed: 0\nsynth:\n  count: 30\n", encoding="utf-8")
    return str(path)


def test_math_writes_jsonl_with_counts(tmp_path, capsys):
    out = tmp_path / "out" / "math.jsonl"
    rc = main(["synth", "--config", config_file(tmp_path), "--output", str(out), "--count", "60",
               "--types", "addition, mean,fraction_simplify", "--seed", "9", "--mix", "equal"])
    assert rc == 0
    records = list(read_jsonl(out))
    assert Counter(r["type"] for r in records) == {"addition": 20, "mean": 20, "fraction_simplify": 20}
    printed = capsys.readouterr().out
    assert "60 records" in printed and "fraction_simplify" in printed and "20" in printed
    assert [p.name for p in out.parent.iterdir()] == ["math.jsonl"]  # no temporary left behind


def test_math_is_deterministic_and_seed_maps_to_root_seed(tmp_path):
    a, b, c = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    cfg = config_file(tmp_path)
    assert main(["synth", "--config", cfg, "-o", str(a), "--seed", "4"]) == 0
    assert main(["synth", "--config", cfg, "-o", str(b), "seed=4"]) == 0
    assert main(["synth", "--config", cfg, "-o", str(c), "--seed", "5"]) == 0
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()
    assert len(list(read_jsonl(a))) == 30  # synth.count from the config file


def test_squad_writes_valid_json(tmp_path, capsys):
    out = tmp_path / "squad.json"
    assert main(["synth", "--config", config_file(tmp_path), "--kind", "squad", "-o", str(out),
                 "--paragraphs", "12"]) == 0
    data = json.loads(out.read_text(encoding="utf-8"))
    paragraphs = [p for a in data["data"] for p in a["paragraphs"]]
    assert data["version"] == "1.1" and len(paragraphs) == 12
    assert "12 paragraphs" in capsys.readouterr().out


def test_user_errors_exit_2_without_writing(tmp_path, capsys):
    cfg = config_file(tmp_path)
    out = tmp_path / "x.jsonl"
    assert main(["synth", "--config", cfg, "-o", str(out), "--types", "addition,cube_root"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "cube_root" in err and "allowed" in err and "Traceback" not in err
    assert main(["synth", "--config", cfg, "-o", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
    assert main(["synth", "--config", cfg, "-o", str(out), "--count", "0"]) == 2
    assert "synth.count" in capsys.readouterr().err
    assert not out.exists()


def test_the_command_calls_the_stages_entry_function_and_writes_its_held_out_set(tmp_path, monkeypatch, capsys):
    from mathlora.synth import commands, stage

    calls = []
    assert commands.synth_data is stage.synth_data
    monkeypatch.setattr(commands, "synth_data", lambda *a, **k: calls.append(k) or stage.synth_data(*a, **k))
    train, test = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    assert main(["synth", "--config", config_file(tmp_path), "-o", str(train), "--test-output", str(test),
                 "--types", "addition", "synth.test_count=10"]) == 0
    assert len(calls) == 1 and calls[0]["train_out"] == train and calls[0]["test_out"] == test
    problems = {r["problem"] for r in read_jsonl(train)}
    held_out = {r["problem"] for r in read_jsonl(test)}
    assert len(problems) == 30 and len(held_out) == 10 and not problems & held_out
    assert "10 held-out records" in capsys.readouterr().out
