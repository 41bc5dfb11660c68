"""config: YAML loading and overrides."""

from __future__ import annotations

import pytest
from tests.conftest import single_torch_thread


one_torch_thread = pytest.fixture(autouse=True)(single_torch_thread)


def test_ratios_are_text_not_base_60(tmp_path):
    from mathlora.app.config import load_config

    assert load_config(None, ["sample.ratios=5:1"]).sample.ratios == "5:1"
    cfg = tmp_path / "c.yaml"
    cfg.write_text("sample: {total: 10, ratios: 5:1}\n")
    assert load_config(cfg).sample.ratios == "5:1"


@pytest.mark.parametrize("override, field", [
    ("train.betas=[2,2]", "betas"), ("train.betas=[0.9,1.0]", "betas"), ("train.betas=[-0.1,0.9]", "betas"),
    ("lora.target_modules=[]", "target_modules"), ("lora.target_modules=['']", "target_modules"),
    (f"seed={2**63}", "seed"), ("seed=-1", "seed"), (f"sample.seed={2**32}", "seed"),
    ("sample.ratios=1:1e308,2:1e308", "ratios"),
])
def test_values_torch_and_peft_would_reject_are_refused_at_load(override, field):
    from mathlora.app.config import load_config
    from mathlora.errors import MathloraError

    with pytest.raises(MathloraError, match=field):
        load_config(None, [override])
    assert load_config(None, ["train.betas=[0.9,0.999]", "seed=4294967295", "sample.ratios=1:1e9,2:1"])


# ---- layering: base: NAME_OR_PATH, mappings merge, lists replace, cycles and missing bases refused ----

def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_a_base_chain_merges_mappings_and_replaces_lists(tmp_path):
    from mathlora.app.config import load_config_layers

    _write(tmp_path / "team" / "team.yaml", "seed: 7\ntrain: {lr: 0.002, epochs: 4}\n"
                                            "lora: {r: 16, target_modules: [q_proj, k_proj, v_proj]}\n")
    _write(tmp_path / "team" / "mid.yaml", "base: team.yaml\ntrain: {epochs: 5}\n")
    mine = _write(tmp_path / "mine.yaml", "base: team/mid.yaml\nlora: {target_modules: [o_proj]}\n"
                                          "sample: {total: 10}\n")
    cfg, chain = load_config_layers(mine)
    assert chain == [str(mine), str(tmp_path / "team" / "mid.yaml"), str(tmp_path / "team" / "team.yaml")]
    # golden: each value from the layer that set it last; the rest are the library defaults
    assert (cfg.seed, cfg.train.lr, cfg.train.epochs) == (7, 0.002, 5)
    assert (cfg.lora.r, cfg.lora.target_modules, cfg.lora.alpha) == (16, ["o_proj"], 16)
    assert (cfg.sample.total, cfg.sample.ratios, cfg.solution_style) == (10, "1:4,2:3,3:2,4:1", "answer")
    assert cfg.train.warmup_ratio == 0.03 and cfg.train.global_batch_size == 32


def test_a_layers_column_mapping_replaces_its_bases(tmp_path):
    from mathlora.app.config import load_config_layers

    _write(tmp_path / "team.yaml", "data: {format: alpaca, columns: {instruction: prompt, output: reply}}\n")
    mine = _write(tmp_path / "mine.yaml", "base: team.yaml\n"
                                          "data: {format: problem_solution, columns: {problem: q, solution: a}}\n")
    cfg, _ = load_config_layers(mine)
    assert (cfg.data.format, cfg.data.columns) == ("problem_solution", {"problem": "q", "solution": "a"})


def test_base_demo_is_the_demo_with_only_what_differs(tmp_path):
    from mathlora.app.config import load_config

    mine = _write(tmp_path / "my.yaml", "base: demo\ntrain: {lr: 1.0e-3}\nrun_dir: runs/mine\n")
    demo = load_config("demo").model_dump()
    got = load_config(mine).model_dump()
    assert got["train"].pop("lr") == 1e-3 and got.pop("run_dir") == "runs/mine"
    demo["train"].pop("lr"), demo.pop("run_dir")
    assert got == demo
    assert load_config(None).model_dump() == load_config("demo").model_dump()  # no --config: the demo


def test_no_base_means_the_library_defaults(tmp_path):
    from mathlora.app.config import Config, load_config

    cfg = load_config(_write(tmp_path / "my.yaml", "train: {lr: 0.5}\n"))
    expected = Config().model_dump()
    expected["train"]["lr"] = 0.5
    assert cfg.model_dump() == expected
    assert (cfg.solution_style, cfg.sample.total) == ("answer", 100000)
    assert load_config("defaults").model_dump() == Config().model_dump()
    assert load_config(_write(tmp_path / "d.yaml", "base: defaults\nseed: 3\n")).seed == 3


def test_the_shipped_gpu_config_keeps_its_values_on_the_demo_base():
    from mathlora.app.config import load_config, read_layers

    cfg = load_config("gpu_smollm2")
    assert read_layers("gpu_smollm2")[1] == ["gpu_smollm2", "demo"]
    # its values before it named base: demo (a GPU run of the answer style, no calculator)
    assert (cfg.run_dir, cfg.solution_style, cfg.eval.calculator) == ("runs/gpu_smollm2", "answer", False)
    assert (cfg.synth.count, cfg.synth.squad_paragraphs, cfg.sample.total) == (12000, 200, 8000)
    assert (cfg.train.epochs, cfg.train.global_batch_size, cfg.train.micro_batch_size, cfg.train.lr) == \
        (3, 32, "auto", 1e-3)
    assert (cfg.train.gradient_checkpointing, cfg.train.liger, cfg.train.compile) == ("auto", "auto", "none")
    assert (cfg.train.save_steps, cfg.train.log_every) == (250, 25)
    assert (cfg.eval.batch_size, cfg.eval.max_new_tokens) == ("auto", 64)


@pytest.mark.parametrize("files, needle", [
    ({"a.yaml": "base: a.yaml\n"}, "config base cycle: {tmp}/a.yaml -> {tmp}/a.yaml"),
    ({"a.yaml": "base: b.yaml\n", "b.yaml": "base: a.yaml\nseed: 1\n"},
     "config base cycle: {tmp}/a.yaml -> {tmp}/b.yaml -> {tmp}/a.yaml"),
    ({"a.yaml": "base: nope\n"}, "config {tmp}/a.yaml: base 'nope' not found"),
    ({"a.yaml": "base: b.yaml\n", "b.yaml": "base: ../missing.yaml\n"}, "base '../missing.yaml' not found"),
    ({"a.yaml": "base: [demo]\n"}, "base must be a config name or path"),
    ({"a.yaml": "base: demo\ntrain: {nope: 1}\n"}, "config error in {tmp}/a.yaml <- demo: train.nope: unknown key"),
])
def test_bad_bases_are_one_line_errors(tmp_path, files, needle):
    from mathlora.app.config import load_config
    from mathlora.errors import MathloraError

    for name, text in files.items():
        _write(tmp_path / name, text)
    with pytest.raises(MathloraError) as e:
        load_config(tmp_path / "a.yaml")
    assert needle.format(tmp=tmp_path) in str(e.value) and "\n" not in str(e.value)


def test_base_is_not_an_override():
    from mathlora.app.config import load_config
    from mathlora.errors import MathloraError

    with pytest.raises(MathloraError, match="base is not an override"):
        load_config(None, ["base=llama3_8b_lora"])
