import pytest


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny-model generation is latency-bound: one thread is fastest and immune to a busy 2-core box."""
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)
