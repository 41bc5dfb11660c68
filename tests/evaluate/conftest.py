import sys
from pathlib import Path

import pytest
from tests.conftest import single_torch_thread

# completions_stub: the loopback completions server of the remote-backend tests
sys.path.insert(0, str(Path(__file__).parent))


one_torch_thread = pytest.fixture(autouse=True, scope="module")(single_torch_thread)
