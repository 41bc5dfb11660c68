"""``runtime.precision: auto`` on a CPU: the flags and a probe decide, the answer is cached per machine; the
detector is faked here, so the tests mean the same on every CPU."""

import json

import pytest

from mathlora.modeling import cpu_precision as cp


@pytest.fixture
def cpu(monkeypatch):
    """A fake CPU: set ``cpu.flags`` (None: unreadable) and ``cpu.speed`` (fp32, bf16 GFLOP/s); counts probes."""

    class Fake:
        flags: list[str] | None = ["avx512_bf16"]
        speed = (20.0, 40.0)
        probes = 0

        def measure(self):
            self.probes += 1
            return self.speed

    fake = Fake()
    monkeypatch.setattr(cp, "cpu_bf16_flags", lambda: fake.flags)
    monkeypatch.setattr(cp, "cpu_name", lambda: "Fake CPU 9000")
    return fake


def test_no_bf16_flag_is_fp32_without_a_probe(cpu, tmp_path):
    cpu.flags = []
    choice = cp.choose(cpu.measure, tmp_path / "c.json")
    assert (choice.precision, cpu.probes) == ("fp32", 0) and "no avx512_bf16/amx_bf16" in choice.reason


def test_a_bf16_flag_and_a_faster_probe_is_bf16_and_cached(cpu, tmp_path):
    path = tmp_path / "cache" / "c.json"
    choice = cp.choose(cpu.measure, path)
    assert choice.precision == "bf16" and choice.reason.startswith("avx512_bf16; probe matmul bf16 2.00x fp32")
    assert cpu.probes == 1
    [(key, entry)] = json.loads(path.read_text()).items()
    assert key.startswith("Fake CPU 9000 | flags avx512_bf16 | torch ") and entry["precision"] == "bf16"
    again = cp.choose(cpu.measure, path)
    assert cpu.probes == 1 and again.precision == "bf16" and again.reason.endswith("(cached)")
    assert not [p for p in path.parent.iterdir() if p.name != path.name]  # no temporary file left behind


def test_a_probe_that_is_not_clearly_faster_is_fp32(cpu, tmp_path):
    cpu.speed = (20.0, 22.0)  # 1.1x: below MIN_SPEEDUP
    assert cp.choose(cpu.measure, tmp_path / "c.json").precision == "fp32"
    cpu.flags, cpu.speed = None, (20.0, 30.0)  # flags unreadable: the probe alone decides
    choice = cp.choose(cpu.measure, tmp_path / "d.json")
    assert choice.precision == "bf16" and choice.reason.startswith("CPU flags unknown")


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"x": 1}', ""])
def test_a_corrupt_cache_is_ignored_and_replaced(cpu, tmp_path, content):
    path = tmp_path / "c.json"
    path.write_text(content)
    assert cp.choose(cpu.measure, path).precision == "bf16" and cpu.probes == 1
    assert any(v["precision"] == "bf16" for v in json.loads(path.read_text()).values() if isinstance(v, dict))
    # an entry of the wrong shape under this machine's key is measured again too
    key = next(iter(k for k in json.loads(path.read_text()) if k.startswith("Fake")))
    path.write_text(json.dumps({key: {"precision": "fp64"}}))
    assert cp.choose(cpu.measure, path).precision == "bf16" and cpu.probes == 2


def test_an_unwritable_cache_still_answers(cpu, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert cp.choose(cpu.measure, blocker / "sub" / "c.json").precision == "bf16"


def test_the_cache_lives_under_mathlora_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("MATHLORA_CACHE", str(tmp_path))
    assert cp.cache_path() == tmp_path / "cpu_precision.json"


def test_the_probe_and_the_flags_read_this_machine():
    fp32, bf16 = cp.probe(shape=(32, 64, 48), repeats=1)
    assert fp32 > 0 and bf16 > 0
    flags = cp.cpu_bf16_flags()
    assert flags is None or set(flags) <= set(cp.BF16_FLAGS)
    assert cp.cpu_name()


def test_several_processes_decide_by_the_flags_alone(cpu, tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    cpu.speed = (20.0, 21.0)  # a probe would say fp32: the flags say bf16, and every process agrees
    choice = cp.choose(cpu.measure, tmp_path / "c.json")
    assert (choice.precision, cpu.probes) == ("bf16", 0) and "2 processes" in choice.reason
    assert not (tmp_path / "c.json").exists()  # not measured, so not cached
    cpu.flags = []
    assert cp.choose(cpu.measure, tmp_path / "c.json").precision == "fp32"
