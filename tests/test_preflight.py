"""preflight: the whole config is checked before the first stage."""

from __future__ import annotations

import pytest
from tests.cli_helpers import SMALL, assert_one_error, cli
from tests.conftest import single_torch_thread


one_torch_thread = pytest.fixture(autouse=True)(single_torch_thread)


@pytest.mark.parametrize("override, needle", [("model=/no/such/model", "/no/such/model"),
                                              ("template=nope", "unknown template"),
                                              ("sample.ratios=1:4,9:1", "level 9"),
                                              ("label.judge=local", "label.model")])
def test_config_is_checked_before_the_first_stage(tmp_path, capsys, override, needle):
    extra = ["label.model=/no/such/judge"] if override == "label.judge=local" else []
    rc, out, err = cli(capsys, "run", "--no-progress", "-o", tmp_path / "run", *SMALL, override, *extra)
    assert_one_error(rc, err, needle)
    assert "[ 1/" not in out and not (tmp_path / "run/raw").exists()
