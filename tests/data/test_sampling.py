import json
from collections import Counter

import pytest

from mathlora.app.cli import main
from mathlora.data.config import SampleConfig
from mathlora.data.config import parse_ratios
from mathlora.data.sampling import apportion, fill_quotas, sample_file, stratified_sample
from mathlora.errors import MathloraError
from mathlora.run_dir.records import read_jsonl, write_jsonl

TYPES = ["addsub", "power", "equation"]


def make_records(per_level: dict[int, int], types=TYPES) -> list[dict]:
    out = []
    for level, n in per_level.items():
        for i in range(n):
            out.append({"id": f"L{level}-{i:05d}", "problem": f"p{level}.{i}", "difficulty": level,
                        "type": types[i % len(types)]})
    # interleave levels so input order is not grouped by level
    return sorted(out, key=lambda r: (int(r["id"].split("-")[1]), r["id"]))


def test_parse_ratios():
    assert parse_ratios("1:4,2:3,3:2,4:1") == {1: 4.0, 2: 3.0, 3: 2.0, 4: 1.0}
    assert parse_ratios(" 0:0.5 , 5:1.5") == {0: 0.5, 5: 1.5}


@pytest.mark.parametrize("text, message", [
    ("", "empty"), ("1:4,2", "cannot read '2'"), ("a:1", "cannot read"), ("1:x", "cannot read"),
    ("6:1", "outside 0..5"), ("1:0", "positive"), ("1:-2", "positive"), ("1:1,1:2", "named twice"),
    ("1:nan", "positive"),
])
def test_parse_ratios_rejects_bad_strings(text, message):
    with pytest.raises(MathloraError, match=message):
        parse_ratios(text)


def test_apportion_is_exact_and_sums_to_total():
    assert apportion(100000, {1: 4, 2: 3, 3: 2, 4: 1}) == {1: 40000, 2: 30000, 3: 20000, 4: 10000}
    assert apportion(7, {1: 4, 2: 3, 3: 2, 4: 1}) == {1: 3, 2: 2, 3: 1, 4: 1}
    assert apportion(3, {"a": 1, "b": 1, "c": 1, "d": 1}) == {"a": 1, "b": 1, "c": 1, "d": 0}
    assert fill_quotas(10, {1: 4, 2: 3, 3: 2, 4: 1}, {1: 1, 2: 100, 3: 100, 4: 100}) == {1: 1, 2: 5, 3: 3, 4: 1}


def test_exact_quotas_without_replacement_and_unnamed_levels_not_drawn():
    records = make_records({0: 500, 1: 5000, 2: 5000, 3: 5000, 4: 5000, 5: 500})
    drawn, table = stratified_sample(records, 10000, parse_ratios("1:4,2:3,3:2,4:1"), seed=0)
    assert Counter(r["difficulty"] for r in drawn) == {1: 4000, 2: 3000, 3: 2000, 4: 1000}
    assert len({r["id"] for r in drawn}) == 10000
    assert table == [{"level": lv, "available": 5000, "requested": q, "drawn": q}
                     for lv, q in [(1, 4000), (2, 3000), (3, 2000), (4, 1000)]]
    positions = {r["id"]: i for i, r in enumerate(records)}
    assert [positions[r["id"]] for r in drawn] == sorted(positions[r["id"]] for r in drawn)  # input order


def test_shortfall_redistribute_keeps_the_other_levels_ratio():
    records = make_records({1: 100, 2: 1000, 3: 1000, 4: 1000})
    drawn, table = stratified_sample(records, 1000, parse_ratios("1:4,2:3,3:2,4:1"), seed=1)
    counts = Counter(r["difficulty"] for r in drawn)
    assert counts == {1: 100, 2: 450, 3: 300, 4: 150}  # the gap of 300 shared 3:2:1
    assert [row["requested"] for row in table] == [400, 300, 200, 100]
    assert [row["drawn"] for row in table] == [100, 450, 300, 150]


def test_shortfall_cascades_until_everything_fits():
    records = make_records({1: 10, 2: 40, 3: 1000, 4: 1000})
    drawn, _ = stratified_sample(records, 500, parse_ratios("1:4,2:3,3:2,4:1"), seed=0)
    assert Counter(r["difficulty"] for r in drawn) == {1: 10, 2: 40, 3: 300, 4: 150}


def test_shortfall_error_and_total_larger_than_the_data():
    records = make_records({1: 100, 2: 1000, 3: 1000, 4: 1000, 0: 5000})
    with pytest.raises(MathloraError, match="level 1 has 100 records but its quota is 400"):
        stratified_sample(records, 1000, parse_ratios("1:4,2:3,3:2,4:1"), seed=0, shortfall="error")
    with pytest.raises(MathloraError, match="larger than the data: 3100 records in levels 1,2,3,4"):
        stratified_sample(records, 3101, parse_ratios("1:4,2:3,3:2,4:1"), seed=0)


def test_same_seed_same_sample_other_seed_other_sample():
    records = make_records({1: 300, 2: 300, 3: 300, 4: 300})
    ratios = parse_ratios("1:4,2:3,3:2,4:1")
    a, _ = stratified_sample(records, 400, ratios, seed=5)
    b, _ = stratified_sample([dict(r) for r in records], 400, ratios, seed=5)
    c, _ = stratified_sample(records, 400, ratios, seed=6)
    assert a == b and a != c


def test_balance_by_type_spreads_each_level_evenly():
    records = make_records({1: 300, 2: 300}, types=["a", "b", "c"])
    records += [{"id": f"rare-{i}", "difficulty": 1, "type": "rare", "problem": "x"} for i in range(5)]
    drawn, _ = stratified_sample(records, 200, parse_ratios("1:1,2:1"), seed=0, balance_by="type")
    per = Counter((r["difficulty"], r["type"]) for r in drawn)
    # level 1: 100 over 4 types, 'rare' has only 5 -> its gap goes to the others (32, 32, 31)
    assert per[(1, "rare")] == 5 and sorted(per[(1, t)] for t in "abc") == [31, 32, 32]
    assert [per[(2, t)] for t in "abc"] == [34, 33, 33]
    with pytest.raises(MathloraError, match="no record has that field"):
        stratified_sample(records, 10, parse_ratios("1:1"), seed=0, balance_by="topic")


@pytest.mark.parametrize("bad, message", [
    ({"id": "x", "problem": "p"}, "has no difficulty"),
    ({"id": "x", "problem": "p", "difficulty": 6}, "expected an integer 0..5"),
    ({"id": "x", "problem": "p", "difficulty": "3"}, "expected an integer 0..5"),
    ({"id": "x", "problem": "p", "difficulty": True}, "expected an integer 0..5"),
])
def test_bad_labels_are_one_line_errors(bad, message):
    with pytest.raises(MathloraError, match=message):
        stratified_sample(make_records({1: 5}) + [bad], 2, {1: 1.0}, seed=0)


def test_sample_file_writes_records_and_table_byte_for_byte(tmp_path):
    write_jsonl(tmp_path / "in.jsonl", make_records({1: 200, 2: 200, 3: 200, 4: 200, 5: 50}))
    cfg = SampleConfig(total=300)
    first = sample_file(cfg, tmp_path / "in.jsonl", tmp_path / "a" / "out.jsonl", seed=3)
    sample_file(cfg, tmp_path / "in.jsonl", tmp_path / "b" / "out.jsonl", seed=3)
    assert (tmp_path / "a" / "out.jsonl").read_bytes() == (tmp_path / "b" / "out.jsonl").read_bytes()
    table = json.loads((tmp_path / "a" / "sample_table.json").read_text())
    assert table == json.loads(json.dumps(first))
    assert first["totals"] == {"available": 800, "requested": 300, "drawn": 300} and first["seed"] == 3
    overridden = sample_file(SampleConfig(total=300, seed=4), tmp_path / "in.jsonl", tmp_path / "c" / "o.jsonl",
                             seed=3)
    assert overridden["seed"] == 4
    assert (tmp_path / "c" / "o.jsonl").read_bytes() != (tmp_path / "a" / "out.jsonl").read_bytes()


def test_sample_cli_prints_the_table_and_errors_cleanly(tmp_path, capsys):
    write_jsonl(tmp_path / "in.jsonl", make_records({1: 50, 2: 50, 3: 50, 4: 50}))
    out = tmp_path / "s.jsonl"
    assert main(["sample", "--input", str(tmp_path / "in.jsonl"), "--output", str(out), "--total", "100",
                 "--ratios", "1:4,2:3,3:2,4:1", "--seed", "1", "--balance-by", "type"]) == 0
    printed = capsys.readouterr().out
    assert "available" in printed and "requested" in printed and "wrote 100 records" in printed
    assert len(list(read_jsonl(out))) == 100
    before = out.read_bytes()
    assert main(["sample", "--input", str(tmp_path / "in.jsonl"), "--output", str(out), "--total", "500"]) == 2
    assert main(["sample", "--input", str(tmp_path / "in.jsonl"), "--output", str(out), "--ratios", "1-4"]) == 2
    assert main(["sample", "--input", str(tmp_path / "in.jsonl"), "--output", str(out), "--total", "100",
                 "--shortfall", "error", "--ratios", "1:9,2:1"]) == 2
    err = capsys.readouterr().err
    assert err.count("error: ") == 3 and "Traceback" not in err
    assert out.read_bytes() == before  # nothing half-written
