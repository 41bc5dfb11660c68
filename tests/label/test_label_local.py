import pytest
import torch
from competition_style import competition_records

from mathlora.errors import MathloraError
from mathlora.label.local import common_prefix_length, digit_token_ids, judge_text, load_local_judge
from mathlora.label.prompt import ANSWER_PREFIX, RubricPrompt, default_prompt
from mathlora.modeling.models import load_model, load_tokenizer
from mathlora.modeling.runtime import Runtime


@pytest.fixture(scope="module")
def tiny_judge():
    # a short rubric: the byte-level tiny tokenizer makes the real one ~1000 tokens long
    short = RubricPrompt("Rate the difficulty of this problem from 0 to 5.\n{problem}\n{solution}\n", "test")
    return load_local_judge("tiny-random-llama", short, Runtime(), batch_size=4)


def test_digit_ids_are_the_single_digit_tokens():
    tok = load_tokenizer("tiny-random-llama")
    ids = digit_token_ids(tok)
    assert [tok.decode([i]) for i in ids] == list("012345")


def test_multi_token_digits_are_refused():
    class SplitDigits:
        def encode(self, text, add_special_tokens=False):
            return [1, 2]

    with pytest.raises(MathloraError, match="splits the digit"):
        digit_token_ids(SplitDigits())


def test_plain_prompt_without_chat_template_ends_with_the_answer_prefix():
    tok = load_tokenizer("tiny-random-llama")
    text, has_special = judge_text(tok, "PROMPT")
    assert text == f"PROMPT\n{ANSWER_PREFIX}" and not has_special


def test_scores_are_probabilities_and_batching_changes_nothing(tiny_judge):
    records = competition_records(6, 3)
    texts = tiny_judge.texts(records)
    assert len({len(t) for t in texts}) > 1  # really padded
    batched = tiny_judge.score_texts(texts)
    assert batched.shape == (6, 6)
    assert torch.allclose(batched.sum(-1), torch.ones(6), atol=1e-5)
    one_by_one = torch.cat([tiny_judge.score_texts([t]) for t in texts])
    assert torch.allclose(batched, one_by_one, atol=1e-5)
    assert batched.argmax(-1).tolist() == one_by_one.argmax(-1).tolist()


def test_scores_equal_a_manual_forward_of_the_last_position(tiny_judge):
    text = tiny_judge.texts(competition_records(1, 5))[0]
    tok = tiny_judge.tokenizer
    ids = torch.tensor([tok.encode(text, add_special_tokens=True)])
    logits = tiny_judge.model(input_ids=ids).logits[0, -1, tiny_judge.digit_ids]
    assert torch.allclose(tiny_judge.score_texts([text])[0], torch.softmax(logits, -1), atol=1e-5)


def test_shared_prefix_cache_equals_plain_forward_passes(tiny_judge):
    ids = tiny_judge.token_ids(tiny_judge.texts(competition_records(5, 7)))
    shared = common_prefix_length(ids)
    assert shared > 40  # the rubric really is shared
    with_prefix = tiny_judge.score_ids(ids, shared)
    plain = tiny_judge.score_ids(ids, 0)
    assert torch.allclose(with_prefix, plain, atol=1e-5)
    again = tiny_judge.score_ids(ids[2:], shared)  # the cached prefix is reused, not consumed
    assert torch.allclose(again, plain[2:], atol=1e-5)


def test_common_prefix_length():
    assert common_prefix_length([[1, 2, 3, 4], [1, 2, 5], [1, 2, 3]]) == 2
    assert common_prefix_length([[1, 2, 3]]) == 2  # one token always left to score
    assert common_prefix_length([[7, 1], [8, 1]]) == 0
    assert common_prefix_length([]) == 0


def test_judge_reports_every_record_once_in_batches(tiny_judge):
    records = competition_records(9, 1)
    seen = []
    tiny_judge.judge(records, seen.append)
    assert [len(b) for b in seen] == [4, 4, 1]
    verdicts = [v for batch in seen for v in batch]
    assert sorted(v.record_id for v in verdicts) == sorted(r["id"] for r in records)
    for v in verdicts:
        assert v.difficulty == max(range(6), key=v.probs.__getitem__)
        assert sum(v.probs) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.slow
def test_smollm2_local_judge():
    try:
        judge = load_local_judge("smollm2-135m-instruct", default_prompt(), Runtime(), batch_size=4)
    except MathloraError as e:
        pytest.skip(str(e))
    records = competition_records(2, 0)
    texts = judge.texts(records)
    assert texts[0].startswith("<|im_start|>") and texts[0].endswith("assistant\n" + ANSWER_PREFIX)
    batched = judge.score_texts(texts)  # shared-prefix cache + one batched pass
    assert torch.allclose(batched.sum(-1), torch.ones(2), atol=1e-5)
    # equals a plain forward pass of the whole first text, and the digits really are what SmolLM2
    # wants to say after the prefix
    tok = judge.tokenizer
    ids = torch.tensor([tok.encode(texts[0], add_special_tokens=False)])
    with torch.inference_mode():
        full = torch.softmax(judge.model(input_ids=ids).logits[0, -1].float(), -1)
    digits = full[judge.digit_ids]
    assert torch.allclose(batched[0], digits / digits.sum(), atol=1e-4)
    assert digits.sum() > 0.5


def test_the_default_runtime_is_the_resolved_one():
    """B3: ``runtime=None``, documented as the default runtime, was an AttributeError."""
    short = RubricPrompt("Rate {problem} {solution}\n", "test")
    judge = load_local_judge("tiny-random-llama", short, None, batch_size=2)
    assert next(judge.model.parameters()).device.type == Runtime.resolve().device.split(":")[0]
