"""One rule for "same result": the NOT_RESULT marks where the fields are declared, read by result_settings."""

from pydantic import BaseModel, Field

from mathlora.app.cli import main
from mathlora.evaluate.config import EvalConfig
from mathlora.label.config import LabelConfig
from mathlora.modeling.openai_client import EndpointConfig
from mathlora.run_dir.same_result import NOT_RESULT, result_settings
from mathlora.train.config import TrainConfig


def not_result(section) -> set[str]:
    return set(section.model_fields) - set(result_settings(section()))


def test_the_marks_say_which_settings_cannot_change_a_result():
    assert not_result(TrainConfig) == {"save_steps", "merge_checkpoints", "log_every", "distributed",
                                       "gradient_checkpointing", "micro_batch_size", "memory_fraction", "liger",
                                       "compile", "attn_implementation", "report_to"}
    # the openai backend's server: never local generation; checkpoints: whether more is scored, never a score
    assert not_result(EvalConfig) == {"model", "endpoint", "checkpoints"}
    assert not_result(LabelConfig) == {"max_consecutive_failures", "batch_size", "retry_failed"}
    # an endpoint's URL can change a judge's verdicts; how requests go cannot
    assert not_result(EndpointConfig) == {"api_key_env", "concurrency", "timeout", "max_retries", "retry_base_delay",
                                          "retry_max_delay"}


def test_result_settings_are_json_values_and_nested_sections_follow_their_own_marks():
    class Inner(BaseModel):
        kept: tuple[int, int] = (1, 2)
        dropped: int = Field(3, json_schema_extra=NOT_RESULT)

    class Outer(BaseModel):
        inner: Inner = Inner()
        gone: Inner = Field(Inner(), json_schema_extra=NOT_RESULT)
        name: str = "x"

    assert result_settings(Outer()) == {"inner": {"kept": [1, 2]}, "name": "x"}


SMALL = ["model=tiny-random-llama", "label.judge=heuristic", "synth.count=48", "synth.test_count=4",
         "synth.squad_paragraphs=2", "sample.total=16"]


def test_retry_and_batching_settings_of_the_judge_do_not_redo_labeling(tmp_path, capsys):
    run = ["run", "--no-progress", "-o", str(tmp_path / "run"), "--stop-after", "label", *SMALL]
    assert main(run) == 0
    assert "label: done" in capsys.readouterr().out
    assert main([*run, "label.endpoint.max_retries=0", "label.endpoint.retry_base_delay=0",
                 "label.endpoint.retry_max_delay=1", "label.max_consecutive_failures=3", "label.batch_size=2",
                 "label.endpoint.timeout=5", "label.endpoint.concurrency=1", "label.endpoint.api_key_env=K"]) == 0
    assert "label: fresh, skipped" in capsys.readouterr().out
    assert main([*run, "label.max_tokens=4"]) == 0  # a reply-length limit can change a verdict
    assert "label: done" in capsys.readouterr().out


def test_an_old_flat_endpoint_key_says_where_it_moved(tmp_path, capsys):
    assert main(["run", "-o", str(tmp_path / "r"), "label.base_url=http://x:1/v1"]) == 2
    assert "label.base_url: moved to label.endpoint.base_url" in capsys.readouterr().err
    assert main(["run", "-o", str(tmp_path / "r"), "eval.concurrency=4"]) == 2
    assert "eval.concurrency: moved to eval.endpoint.concurrency" in capsys.readouterr().err
    assert main(["run", "-o", str(tmp_path / "r"), "label.endpoint.base_url=ftp://x"]) == 2
    assert "must be an http(s) URL" in capsys.readouterr().err
