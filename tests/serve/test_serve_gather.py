"""``serve --gather-ms``: a request that finds the local model idle waits a short window for others, and they
decode as one batch; each client still gets the answer it gets alone (greedy). Window 0 is the old behaviour
(the first request starts at once, alone). Bad values are one-line errors."""

import asyncio

import pytest
from tests.cli_helpers import assert_one_error, cli

from mathlora.modeling.runtime import Runtime
from mathlora.serve.engines import LocalEngine

PROBLEMS = [f"计算 {a} + {b} 等于多少？" for a, b in ((1, 2), (3.5, 4), (17, 25), (0.25, 8), (9, 99), (12, 7),
                                                     (100, 1), (6, 6))]


@pytest.fixture(scope="module")
def tiny():
    from mathlora.evaluate.generation import load_inference_model

    return load_inference_model("tiny-random-llama", None, Runtime(device="cpu", precision="fp32"))


def _engine(tiny, gather: float) -> tuple[LocalEngine, list[int]]:
    """An engine on the tiny model that records the number of prompts of each batch it decodes."""
    model, tok = tiny
    engine = LocalEngine(model, tok, max_length=256, batch_size=8, calculator=False, gather=gather)
    batches: list[int] = []
    decode = engine._generate

    def recorded(prompts, max_tokens):
        batches.append(len(prompts))
        return decode(prompts, max_tokens)

    engine._generate = recorded
    return engine, batches


async def _staggered(engine: LocalEngine, prompts: list[str], every: float) -> list[str]:
    """Each prompt as its own request, one every ``every`` seconds (as clients that connect one after the
    other); their completions."""
    await engine.start()
    try:
        async def one(i: int, prompt: str) -> str:
            await asyncio.sleep(i * every)
            return (await engine.complete([prompt], 12))[0].completion

        return list(await asyncio.gather(*(one(i, p) for i, p in enumerate(prompts))))
    finally:
        await engine.stop()


def _alone(tiny) -> list[str]:
    engine, batches = _engine(tiny, 0.0)

    async def each():
        await engine.start()
        try:
            return [(await engine.complete([p], 12))[0].completion for p in PROBLEMS]
        finally:
            await engine.stop()

    answers = asyncio.run(each())
    assert batches == [1] * len(PROBLEMS)
    return answers


def test_a_gathering_window_batches_staggered_requests_and_each_gets_its_answer_alone(tiny):
    alone = _alone(tiny)
    assert len(set(alone)) > 1  # different problems, different completions: a mix-up would show
    engine, batches = _engine(tiny, 2.0)
    gathered = asyncio.run(_staggered(engine, PROBLEMS, 0.02))
    assert batches == [8]                    # one batch: the window waited for all 8 (and no longer: batch_size)
    assert gathered == alone


def test_window_zero_starts_the_first_request_at_once_alone(tiny):
    alone = _alone(tiny)
    engine, batches = _engine(tiny, 0.0)
    answers = asyncio.run(_staggered(engine, PROBLEMS[:3], 0.3))
    assert batches[0] == 1 and sum(batches) == 3
    assert answers == alone[:3]


@pytest.mark.parametrize("value", ["-1", "1001", "nan"])
def test_bad_gather_values_are_one_line_errors(capsys, value):
    assert_one_error(*cli(capsys, "serve", "--gather-ms", value)[::2], "--gather-ms", "0-1000")
