import sys
from pathlib import Path

import pytest

# completions_stub: the loopback completions server of the remote-backend tests
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny-model generation is latency-bound: one thread is fastest and immune to a busy 2-core box."""
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)
