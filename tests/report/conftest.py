import pytest
from tests.report.report_run import build_run


@pytest.fixture(scope="package")
def run(tmp_path_factory):
    """The report of a finished run (``report_run.build_run``), built once for the report tests."""
    return build_run(tmp_path_factory.mktemp("report") / "run")
