"""The MindFormers export run by the real MindSpore + MindFormers (``make test-ascend``).

From a run folder of a 2-layer model of SmolLM2-135M's shape: ``export mindspore-ckpt`` (the base) and
``export mindformers --device-target cpu`` (YAML, MindRecord, run_finetune.py); MindFormers then builds the model
from our YAML, loads our checkpoint and runs two finetune steps on our MindRecord; the checkpoint it saves holds
our base weights unchanged and trained LoRA tensors, and ``import mindspore-ckpt`` reads it back as a peft adapter.
The Ascend YAML (the default target, which cannot run here) is checked for names: every class it names is in
the installed MindFormers' registry and every model key is a parameter of its LlamaConfig / LoraConfig.

MindFormers 1.x pins pyarrow 19, which mathlora's datasets cannot use, so it lives in its own environment:
``MATHLORA_MINDFORMERS_PYTHON`` names that environment's python (``make test-ascend`` makes one with the pinned
pair); without it, the current python if it has MindFormers. The export side needs MindSpore here
(``mathlora[mindspore]``).
"""

import importlib.util
import math
import os
import re
import subprocess
import sys
import time

import pytest

from .conftest import make_run

pytestmark = pytest.mark.ascend

MF_PYTHON = os.environ.get("MATHLORA_MINDFORMERS_PYTHON") or (
    sys.executable if importlib.util.find_spec("mindformers") else None)
if MF_PYTHON is None or importlib.util.find_spec("mindspore") is None:
    pytest.skip("needs MindSpore here and MindFormers (MATHLORA_MINDFORMERS_PYTHON): make test-ascend",
                allow_module_level=True)

MODEL = "tiny-random-llama:shape=smollm2-135m,layers=2"
STEP = re.compile(r"step:\[\s*(\d+)/\s*(\d+)\], loss:\[([-\d.e+naif]+)/")
STEP_TIME = re.compile(r"step:\[\s*\d+/\s*\d+\], loss:.*?per_step_time: (\d+)ms")


def test_mindformers_builds_loads_our_checkpoint_and_trains_two_steps(tmp_path, capsys):
    import mindspore as ms
    import numpy as np

    from mathlora.app.cli import main
    from mathlora.export import ms_names
    from mathlora.export.mindformers import RUNNER_NAME

    run = make_run(tmp_path / "run", model=MODEL, extra_overrides={
        "train.global_batch_size": 4, "train.micro_batch_size": 4, "train.epochs": 1, "train.save_steps": None,
        "train.gradient_checkpointing": True})  # 10 records, 4 a step, the last partial batch dropped: 2 steps
    base = tmp_path / "base.ckpt"
    assert main(["export", "mindspore-ckpt", "--model", MODEL, "--output", str(base)]) == 0
    mf = tmp_path / "mf"
    assert main(["export", "mindformers", "--run", str(run), "--output", str(mf), "--device-target", "cpu",
                 "--load-checkpoint", str(base)]) == 0
    capsys.readouterr()

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["GLOG_v"] = "3"  # MindSpore's own log: errors only
    started = time.monotonic()
    done = subprocess.run([MF_PYTHON, str(mf / RUNNER_NAME), "--output_dir", str(tmp_path / "out")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200)
    seconds = time.monotonic() - started
    log = done.stdout + done.stderr
    tail = "\n".join(log.splitlines()[-40:])
    assert done.returncode == 0, tail
    steps = [(int(a), int(b), float(loss)) for a, b, loss in STEP.findall(log)]
    assert [(a, b) for a, b, _ in steps] == [(1, 2), (2, 2)], tail
    assert all(math.isfinite(loss) and 0 < loss < 20 for *_, loss in steps), steps
    # MindFormers names what it did not load: only the 8 LoRA tensors (new), every base weight loaded
    unloaded = re.search(r"Network parameters are not loaded: \(\[(.*?)\]", log)
    assert unloaded, tail
    names = re.findall(r"'([^']+)'", unloaded.group(1))
    assert len(names) == 8 and all("mindpet_delta_lora_" in n for n in names), names

    saved = sorted((tmp_path / "out" / "checkpoint" / "rank_0").glob("mathlora*.ckpt"))
    assert [p.name for p in saved] == ["mathlora_rank_0-1_2.ckpt"], saved  # epoch 1, step 2
    ours, theirs = ms.load_checkpoint(str(base)), ms.load_checkpoint(str(saved[0]))
    for name, value in ours.items():  # frozen base weights: ours, bit for bit (MindFormers' init would differ)
        assert np.array_equal(value.asnumpy(), theirs[name].asnumpy()), name
    lora = {n: theirs[n].asnumpy() for n in theirs if ms_names.is_ms_lora(n) and n.startswith("model.")}
    assert len(lora) == 8 and all(np.isfinite(v).all() for v in lora.values())
    assert any(np.abs(v).max() > 0 for n, v in lora.items() if n.endswith("lora_b")), "LoRA B still zero"

    hf = tmp_path / "imported"
    assert main(["import", "mindspore-ckpt", "--ckpt", str(saved[0]), "--model", MODEL, "--lora-alpha", "16",
                 "--output", str(hf)]) == 0
    assert "8 LoRA tensors" in capsys.readouterr().out
    assert (hf / "adapter" / "adapter_config.json").is_file()
    step_ms = ", ".join(f"{int(ms) / 1000:.1f}" for ms in STEP_TIME.findall(log))
    print(f"\nMindFormers finetune: {len(steps)} steps (s each: {step_ms}; the first compiles), loss "
          f"{steps[0][2]:.4f} -> {steps[-1][2]:.4f}, {seconds:.0f} s in MindFormers ({MF_PYTHON})")


CHECK_NAMES = r"""
import inspect, json, sys
import mindformers  # noqa: F401  (registers every class)
from mindformers import MindFormerConfig
from mindformers.models.llama import LlamaConfig
from mindformers.pet.pet_config import LoraConfig
from mindformers.tools.register import MindFormerRegister
out = {}
for path in sys.argv[1:]:
    c = MindFormerConfig(path)
    names = [("optimizer", c.optimizer.type), ("lr", c.lr_schedule.type), ("wrapper", c.runner_wrapper.type),
             ("trainer", c.trainer.type), ("dataset", c.train_dataset_task.type),
             ("dataset_loader", c.train_dataset.data_loader.type), ("config", c.model.model_config.type),
             ("models", c.model.arch.type)] + [("callback", cb["type"]) for cb in c.callbacks]
    missing = []
    for kind, name in names:
        try:
            MindFormerRegister.get_cls(kind, name)
        except Exception:
            missing.append(name)
    model_keys = set(inspect.signature(LlamaConfig.__init__).parameters) | {"type", "pet_config"}
    lora_keys = set(inspect.signature(LoraConfig.__init__).parameters) | {"pet_type"}
    mc = c.model.model_config
    unknown = [k for k in mc if k not in model_keys] + [k for k in mc["pet_config"] if k not in lora_keys]
    out[path] = {"missing": missing, "unknown": unknown}
print("RESULT " + json.dumps(out))
"""


def test_ascend_yaml_names_only_what_mindformers_has(run_dir, tmp_path, capsys):
    """The default (Ascend) YAML cannot run here; what it names can be checked: every class is in MindFormers'
    registry and every model_config/pet_config key is a LlamaConfig/LoraConfig parameter. The contest-era YAML
    (--mindformers 1.3) names FP32StateAdamWeightDecay, which the installed MindFormers no longer has."""
    import json

    from mathlora.app.cli import main
    from mathlora.export.mindformers import YAML_NAME

    paths = []
    for release in ("1.9", "1.3"):
        out = tmp_path / release
        assert main(["export", "mindformers", "--run", str(run_dir), "--output", str(out), "--devices", "2",
                     "--mindformers", release, "--no-mindrecord"]) == 0
        paths.append(str(out / YAML_NAME))
    capsys.readouterr()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    done = subprocess.run([MF_PYTHON, "-c", CHECK_NAMES, *paths], cwd=tmp_path, env={**env, "GLOG_v": "3"},
                          capture_output=True, text=True, timeout=600)
    result = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and result, (done.stdout + done.stderr)[-3000:]
    found = json.loads(result[0][len("RESULT "):])
    assert found[paths[0]] == {"missing": [], "unknown": []}
    assert found[paths[1]] == {"missing": ["FP32StateAdamWeightDecay"], "unknown": []}
