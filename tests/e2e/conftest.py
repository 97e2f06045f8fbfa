import pytest

from bluegreen.sandbox import LocalProject, make_project


def _project(tmp_path, policy: bool):
    lp = make_project(tmp_path, policy=policy)
    yield lp
    left = lp.teardown()
    assert not left, f"destroy left behind: {', '.join(left)}"


@pytest.fixture
def project(tmp_path) -> LocalProject:
    """The project as users run it: every preview and up passes the policy pack."""
    yield from _project(tmp_path, policy=True)


@pytest.fixture
def bare_project(tmp_path) -> LocalProject:
    """Without the policy pack, to prove the edge's own guards hold when nobody passes it."""
    yield from _project(tmp_path, policy=False)
