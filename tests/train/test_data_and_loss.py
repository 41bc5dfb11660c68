import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import torch.nn.functional as F

from mathlora.errors import MathloraError
from mathlora.modeling.models import load_model, load_tokenizer
from mathlora.modeling.runtime import Runtime
from mathlora.train.data import (
    IGNORE, TokenRecord, collate, epoch_order, global_batch_indices, load_token_records, pack_rows, shard,
    single_rows,
)
from mathlora.train.loss import LearnableTokenLoss

from .conftest import arithmetic_pairs, write_tokens


def record(rid, prompt_len, response_len, start=10):
    ids = list(range(start, start + prompt_len + response_len))
    return TokenRecord(rid, ids, [IGNORE] * prompt_len + ids[prompt_len:])


def test_targets_are_labels_shifted_and_count_learnable_tokens():
    r = record("a", 3, 2)
    assert r.targets == [IGNORE, IGNORE, 13, 14, IGNORE]
    assert r.learnable_tokens == 2


def test_pack_rows_first_fit_decreasing_restarts_positions_and_blocks_boundary_targets():
    recs = [record("a", 3, 3), record("b", 2, 2, 50), record("c", 4, 4, 90), record("d", 1, 1, 120)]
    rows = pack_rows(recs, pack_length=10)
    # lengths 6,4,8,2 -> FFD: [8,2] and [6,4]
    assert [r.position_ids for r in rows] == [[*range(8), 0, 1], [*range(6), *range(4)]]
    assert rows[1].input_ids == recs[0].input_ids + recs[1].input_ids
    # the last token of "a" must not predict the first token of "b"
    assert rows[1].targets[5] == IGNORE
    assert sum(t != IGNORE for r in rows for t in r.targets) == sum(r.learnable_tokens for r in recs)
    # a record longer than the row gets its own row
    assert [len(r.input_ids) for r in pack_rows([record("x", 10, 10)], 8)] == [20]


def test_collate_pads_right_with_ignored_targets():
    rows = single_rows([record("a", 1, 1), record("b", 2, 2)])
    batch = collate(rows, pad_id=0, packed=False)
    assert batch["input_ids"].tolist() == [[10, 11, 12, 13], [10, 11, 0, 0]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 3], [0, 1, 2, 3]]
    assert batch["targets"].tolist() == [[IGNORE, 12, 13, IGNORE], [11, IGNORE, IGNORE, IGNORE]]
    packed = collate(pack_rows([record("a", 1, 1)], 8) + pack_rows([record("b", 2, 2)], 8), 0, packed=True)
    assert packed["position_ids"].tolist() == [[0, 1, 0, 1], [0, 1, 2, 3]]


def test_epoch_order_is_seeded_and_shards_partition_the_global_batch():
    assert epoch_order(10, 3, 0) == epoch_order(10, 3, 0)
    assert epoch_order(10, 3, 0) != epoch_order(10, 3, 1)
    batch = global_batch_indices(10, 4, seed=3, step=3, steps_in_epoch=3)  # epoch 1, first batch
    assert batch == epoch_order(10, 3, 1)[:4]
    assert sorted(shard(batch, 0, 2) + shard(batch, 1, 2)) == sorted(batch)


def test_packed_record_logits_equal_its_logits_alone():
    model = load_model("tiny-random-llama", Runtime.resolve()).eval()
    g = torch.Generator().manual_seed(0)
    a, b, c = (torch.randint(0, 256, (n,), generator=g).tolist() for n in (7, 5, 9))
    row = collate(pack_rows([TokenRecord("a", a, a), TokenRecord("b", b, b)], 16)
                  + pack_rows([TokenRecord("c", c, c)], 16), 0, packed=True)
    with torch.no_grad():
        packed = model.model(input_ids=row["input_ids"], position_ids=row["position_ids"],
                             use_cache=False).last_hidden_state
        alone = {k: model.model(input_ids=torch.tensor([v]), use_cache=False).last_hidden_state[0]
                 for k, v in {"a": a, "b": b, "c": c}.items()}
    # FFD puts the longer "a" first in row 0
    assert torch.allclose(packed[0, :7], alone["a"], atol=1e-5)
    assert torch.allclose(packed[0, 7:12], alone["b"], atol=1e-5)
    assert torch.allclose(packed[1, :9], alone["c"], atol=1e-5)
    assert (packed[0, 7:12] - alone["b"]).abs().max() < 1e-5


def test_only_response_tokens_reach_the_loss():
    model = load_model("tiny-random-llama", Runtime.resolve()).eval()
    tok = load_tokenizer("tiny-random-llama")
    prompt, response = tok.encode("Q: 2+2=", add_special_tokens=False), tok.encode("4", add_special_tokens=False)
    ids = prompt + response + [tok.eos_token_id]
    rec = TokenRecord("x", ids, [IGNORE] * len(prompt) + ids[len(prompt):])
    batch = collate(pack_rows([rec, rec], 64), 0, packed=True)
    loss_sum, n = LearnableTokenLoss(model)(**batch)
    assert int(n) == 2 * 2  # "4" and EOS, twice
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0]
    manual = F.cross_entropy(logits[:-1], torch.tensor(rec.labels[1:]), ignore_index=IGNORE, reduction="sum")
    assert float(loss_sum.detach()) == pytest.approx(2 * float(manual), rel=1e-5)
    # masking matters: the same record with every token learnable gives a different, larger sum
    full = TokenRecord("y", ids, ids)
    full_sum, full_n = LearnableTokenLoss(model)(**collate(single_rows([full]), 0, packed=False))
    assert int(full_n) == len(ids) - 1
    assert float(full_sum.detach()) > float(manual) + 1.0


def test_load_token_records_errors_and_skips(tmp_path):
    with pytest.raises(MathloraError, match="not found"):
        load_token_records(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MathloraError, match="tokens.parquet not found"):
        load_token_records(tmp_path / "empty")
    bad = tmp_path / "bad"
    bad.mkdir()
    pq.write_table(pa.table({"id": ["a"], "input_ids": [[1, 2]]}), bad / "tokens.parquet")
    with pytest.raises(MathloraError, match="lacks column"):
        load_token_records(bad)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "tokens.parquet").write_text("not parquet")
    with pytest.raises(MathloraError, match="not a readable parquet"):
        load_token_records(tmp_path / "junk")
    d = write_tokens(tmp_path / "ok", arithmetic_pairs(3, 0))
    table = pq.read_table(d / "tokens.parquet")
    labels = table.column("labels").to_pylist()
    labels[1] = [IGNORE] * len(labels[1])
    pq.write_table(table.set_column(2, "labels", pa.array(labels, pa.list_(pa.int32()))), d / "tokens.parquet")
    records, skipped = load_token_records(d)
    assert (len(records), skipped) == (2, 1)
