"""Fixtures and the crash hook of the inner suite of tests/test_isolated.py."""

import os

import pytest

EVENTS = os.environ["ISO_EVENTS"]


def log(event):
    with open(EVENTS, "a") as f:
        f.write(event + "\n")


@pytest.fixture(scope="session")
def parent_pid():
    return os.getpid()


@pytest.fixture
def logged(request):
    log(f"setup {request.node.name} {os.getpid()}")
    yield "fixture value"
    log(f"teardown {request.node.name} {os.getpid()}")


@pytest.fixture
def lock():
    import threading

    return threading.Lock()


@pytest.fixture
def env_from_fixture(monkeypatch):
    monkeypatch.setenv("ISO_FIXTURE_ENV", "set by a fixture")


def _rebuild_here_only(pid):
    if os.getpid() != pid:
        raise RuntimeError("this value cannot be rebuilt in another process")
    return FailsInAFreshChild()


class FailsInAFreshChild:
    def __reduce__(self):
        return (_rebuild_here_only, (os.getpid(),))


@pytest.fixture
def rebuild_fails():
    return FailsInAFreshChild()


def pytest_procthread_isolated_crash(item, outcome):
    item.user_properties.append(("crash_hook", outcome.describe()))
    if "skipped_by_hook" in item.name:
        pytest.skip(f"the crash hook skipped it: {outcome.describe()}")
