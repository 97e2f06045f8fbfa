import pytest

from tests.e2e.harness import LocalProject, make_project


@pytest.fixture
def project(tmp_path) -> LocalProject:
    lp = make_project(tmp_path)
    yield lp
    left = lp.teardown()
    assert not left, f"destroy left behind: {', '.join(left)}"
