import sys
from pathlib import Path

import pytest
from tests.conftest import single_torch_thread

# calculator_model (the calculator-style stub model and server) lives with the evaluate tests
sys.path.insert(0, str(Path(__file__).parents[1] / "evaluate"))

one_torch_thread = pytest.fixture(autouse=True, scope="module")(single_torch_thread)
