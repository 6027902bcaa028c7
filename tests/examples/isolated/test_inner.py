"""The inner suite of tests/test_isolated.py: one test per behaviour of ``isolated``."""

import logging
import os
import sys
import warnings

import pytest

from pytest_procthread import faults

STATE = {"touched": False, "set_in_parent": False}


class CustomError(Exception):
    pass


@pytest.fixture
def mark_parent():
    STATE["set_in_parent"] = True
    yield
    STATE["set_in_parent"] = False


@pytest.mark.isolated
def test_body_runs_in_a_child(parent_pid, logged, tmp_path):
    assert os.getpid() != parent_pid
    assert logged == "fixture value"
    (tmp_path / "written").write_text("by the child")


@pytest.mark.isolated
def test_damages_global_state():
    STATE["touched"] = True
    os.environ["ISO_DAMAGE"] = "1"


def test_state_intact_in_the_test_process():
    assert STATE["touched"] is False and "ISO_DAMAGE" not in os.environ


@pytest.mark.isolated
def test_state_intact_in_the_next_child():
    assert STATE["touched"] is False and "ISO_DAMAGE" not in os.environ


@pytest.mark.isolated
def test_assert_introspection():
    def three():
        return 3

    assert three() == 4


@pytest.mark.isolated
def test_assert_comparison_detail():
    assert [1, 2, 3] == [1, 2, 4]


@pytest.mark.isolated
def test_skip_in_child():
    pytest.skip("skipped in the child")


@pytest.mark.isolated
def test_xfail_in_child():
    pytest.xfail("xfailed in the child")


@pytest.mark.isolated
def test_fail_in_child():
    pytest.fail("failed in the child")


@pytest.mark.isolated
def test_custom_exception():
    raise CustomError("raised in the child")


@pytest.mark.isolated
def test_segfault():
    print("printed before the crash")
    faults.segfault()


@pytest.mark.xfail(reason="it crashes", strict=True)
@pytest.mark.isolated
def test_crash_with_xfail():
    faults.segfault()


@pytest.mark.isolated
def test_exit_status():
    os._exit(3)


@pytest.mark.isolated
def test_abort_skipped_by_hook():
    faults.abort()


@pytest.mark.isolated(timeout=1)
def test_hang_times_out():
    import subprocess

    grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    with open(os.environ["ISO_EVENTS"], "a") as f:
        f.write(f"grandchild {grandchild.pid}\n")
    faults.hang()


@pytest.mark.isolated
def test_warning_relayed():
    warnings.warn("warned in the child", UserWarning, stacklevel=1)


@pytest.mark.isolated
def test_warns_and_records_then_crashes(record_property):
    warnings.warn("warned before the crash", UserWarning, stacklevel=1)
    record_property("before_crash", "7")
    faults.segfault()


@pytest.mark.isolated
def test_recwarn_in_child(recwarn):
    warnings.warn("kept by recwarn", UserWarning, stacklevel=1)
    assert [str(w.message) for w in recwarn] == ["kept by recwarn"]
    with pytest.warns(DeprecationWarning, match="kept by pytest.warns"):
        warnings.warn("kept by pytest.warns", DeprecationWarning, stacklevel=1)


@pytest.mark.isolated
def test_warns_then_warning_relayed():
    with pytest.warns(UserWarning, match="checked"):
        warnings.warn("checked in the child", UserWarning, stacklevel=1)
    warnings.warn("relayed after pytest.warns", UserWarning, stacklevel=1)


class Unpicklable:
    def __reduce__(self):
        raise TypeError("no")

    def __repr__(self):
        return "<unpicklable extra>"


@pytest.fixture
def logs_seen_by_teardown(caplog):
    yield
    seen = [r.getMessage() for r in caplog.get_records("call")]
    assert "informed in the child" in seen, seen


@pytest.mark.isolated
def test_logs_in_child(logs_seen_by_teardown, caplog):
    caplog.set_level(logging.INFO)
    logging.getLogger("app").info("informed in the child")
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        logging.getLogger("app").exception("failed in the child",
                                           extra={"odd": Unpicklable()})
    assert caplog.record_tuples[0] == ("app", logging.INFO, "informed in the child")
    assert "ZeroDivisionError" in caplog.text
    with caplog.at_level(logging.DEBUG, logger="app"):
        logging.getLogger("app").debug("debugged in the child")
    assert caplog.messages[-1] == "debugged in the child"
    assert caplog.get_records("call")[-1].levelno == logging.DEBUG


@pytest.mark.isolated
def test_record_property(record_property):
    record_property("from_child", "42")


@pytest.mark.isolated
def test_capsys_in_child(capsys):
    print("read by the test")
    assert capsys.readouterr().out == "read by the test\n"
    print("left for the report")
    pytest.fail("show the output")


@pytest.mark.isolated
def test_output_relayed():
    print("stdout of the child")
    os.write(2, b"fd-level stderr of the child\n")
    pytest.fail("show the output")


@pytest.mark.isolated
def test_returns_a_value():
    return 5


@pytest.mark.isolated
def test_lock_fixture(lock):
    assert lock.acquire(timeout=1)


@pytest.mark.isolated
def test_value_rebuilt_in_the_child(rebuild_fails):
    pass


@pytest.mark.isolated
def test_env_from_fixture(env_from_fixture, monkeypatch):
    assert os.environ["ISO_FIXTURE_ENV"] == "set by a fixture"
    monkeypatch.setenv("ISO_FIXTURE_ENV", "changed in the child")  # undone with the child


@pytest.mark.requires(fork=True)
@pytest.mark.isolated(start_method="fork")
def test_marker_start_method_fork(mark_parent):
    assert STATE["set_in_parent"] is True


@pytest.mark.isolated(start_method="spawn")
def test_marker_start_method_spawn(mark_parent):
    assert STATE["set_in_parent"] is False


class TestInAClass:
    def setup_method(self):
        self.value = 7

    @pytest.mark.isolated
    def test_method(self):
        assert self.value == 7


@pytest.mark.isolated
@pytest.mark.parametrize("n", [1, 2])
def test_parametrized(n):
    assert n in (1, 2)
