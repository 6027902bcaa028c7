"""What fork children run on the common path: nothing here may run an import statement."""

import os

import pytest


def noop():
    return None


def returns_data():
    return {"answer": 42, "pid": os.getpid()}


def test_isolated_process_children(isolated_process):
    fork = isolated_process.options(start_method="fork")
    assert fork.run(noop).returned
    assert fork.run(returns_data).value["answer"] == 42
    handle = fork.start(noop)
    assert handle.join().returned


@pytest.mark.isolated(start_method="fork")
def test_isolated_body(tmp_path):
    (tmp_path / "seen").write_text("by the child")


@pytest.mark.isolated(start_method="fork")
def test_isolated_body_with_fixtures(capsys, record_property, monkeypatch):
    print("to the captured output")
    record_property("key", "value")
    monkeypatch.setenv("IN_THE_CHILD", "1")
