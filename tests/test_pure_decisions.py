"""The pure decisions of the runner and the isolated test, with plain values: which start
paths a child takes, the result record, the failure text of a child that died, the side
channel's reader, and the warden's scan of a process tree."""

from __future__ import annotations

import pickle
import threading
from pathlib import Path

import pytest

from pytest_procthread.child.warden_program import descendants, parent_of, read_parents
from pytest_procthread.errors import NotPicklableError, ProcThreadError
from pytest_procthread.isolated.failure import died_message
from pytest_procthread.isolated.sidecar import read_sidecar
from pytest_procthread.outcome import Outcome
from pytest_procthread.process.capture import Capture
from pytest_procthread.process.launch import choose_launchers
from pytest_procthread.wire import framing, result

# -- which start paths -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "warm", "externals", "templates", "paths"),
    [
        ("fork", False, False, True, ("fork",)),
        ("fork", True, True, True, ("fork",)),  # fork takes multiprocessing objects too
        ("spawn", False, False, True, ("multiprocessing",)),
        ("spawn", True, False, True, ("template", "multiprocessing")),
        ("forkserver", True, False, True, ("template", "multiprocessing")),
        ("spawn", True, True, True, ("multiprocessing",)),  # a queue: only at a start
        ("spawn", True, False, False, ("multiprocessing",)),  # no fork here (Windows)
    ],
)
def test_start_paths(method: str, warm: bool, externals: bool, templates: bool,
                     paths: tuple[str, ...]) -> None:
    assert choose_launchers(method, warm=warm, carries_externals=externals,
                            templates_possible=templates) == paths


# -- the result record -----------------------------------------------------------------------


def test_records_round_trip() -> None:
    assert result.decode(result.encode(result.returned([1, "two"]))) == result.returned(
        [1, "two"])
    assert result.decode(result.RETURNED_NONE) == result.returned(None)
    raised = result.decode(result.encode(result.raised(ValueError("bad"), "tb text")))
    assert raised["status"] == "raised" and raised["traceback"] == "tb text"
    assert isinstance(raised["exception"], ValueError) and str(raised["exception"]) == "bad"


def test_an_unpicklable_value_is_replaced_by_an_error_naming_it() -> None:
    record = result.decode(result.encode(result.returned(threading.Lock())))
    assert record["status"] == "raised"
    assert isinstance(record["exception"], NotPicklableError)
    assert "the target returned" in str(record["exception"])


class _ExitsOnLoad:
    def __reduce__(self) -> tuple[object, tuple[int]]:
        return (SystemExit, (3,))


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"not a pickle", "could not be unpickled in the parent"),
        (pickle.dumps({"v": 99, "status": "returned", "value": 1}), "result format 99"),
        (pickle.dumps(["a list"]), "AttributeError"),
        (pickle.dumps(_ExitsOnLoad()), "SystemExit"),
    ],
)
def test_a_record_that_cannot_be_read_becomes_an_error(data: bytes, says: str) -> None:
    record = result.decode(data)
    assert record["status"] == "raised"
    assert isinstance(record["exception"], ProcThreadError)
    assert says in str(record["exception"])


# -- the failure text of a child that died ---------------------------------------------------

DUMP = "\n".join([
    "Fatal Python error: Segmentation fault",
    "",
    "Current thread 0x00007f00 (most recent call first):",
    '  File "/src/test_x.py", line 12 in test_parse',
    '  File "/site/pytest_procthread/child/main.py", line 50 in child_main',
    '  File "/site/pytest_procthread/child/mpstate.py", line 160 in run_target',
    '  File "/site/_pytest/main.py", line 300 in _main',
    "",
    "Thread 0x00007f01 (most recent call first):",
    '  File "/site/pytest_procthread/child/lifeline.py", line 58 in watch',
])


def crashed(**fields: object) -> Outcome:
    values: dict[str, object] = dict(kind="process", exitcode=-11, crashed=True, duration=0.02,
                                     pid=4121, start_method="spawn", stderr=DUMP)
    values.update(fields)
    return Outcome(**values)  # type: ignore[arg-type]


def test_a_crash_under_capture_shows_the_stack_only() -> None:
    text = died_message("test_x.py::test_parse", crashed(stdout="printed"), captured=True)
    lines = text.splitlines()
    assert lines[0] == ("the isolated child running test_x.py::test_parse (pid 4121, start "
                        "method spawn) crashed: killed by SIGSEGV (segmentation fault) after "
                        "0.02 s")
    assert lines[1] == "--- its Python stack at the crash (faulthandler) ---"
    assert "in test_parse" in text and "in child_main" in text
    assert "[... 2 frames below the child's entry point ...]" in text
    assert "_pytest" not in text and "in watch" not in text  # ours, said nothing
    assert lines[-1] == ("(everything it printed is under 'Captured stdout call' and "
                         "'Captured stderr call')")


def test_a_crash_without_capture_shows_what_it_printed() -> None:
    text = died_message("t::x", crashed(stdout="said before dying"), captured=False)
    assert "--- its stdout (last lines) ---\nsaid before dying" in text
    assert ("--- its stderr (last lines), with its Python stack at the crash (faulthandler) ---"
            in text)


def test_a_crash_with_no_stack_says_why() -> None:
    text = died_message("t::x", crashed(exitcode=-9, stderr=""), captured=True)
    assert "killed by SIGKILL" in text
    assert "(no Python stack: it was killed outright, or ended with os._exit)" in text


def test_a_timeout_names_its_limit() -> None:
    text = died_message("t::x", crashed(crashed=False, timed_out=True, timeout=1.5,
                                        exitcode=-15), captured=True)
    assert "did not finish within 1.5 s" in text and "(killed by SIGTERM" in text
    assert "--- the stack of every thread at the timeout ---" in text


def test_a_lost_exit_status_says_why() -> None:
    text = died_message("t::x", crashed(crashed=False, exitcode=None, stderr="last words"),
                        captured=True, lost="its template died")
    assert text.splitlines()[0].endswith("ended without a result: its template died")
    assert "--- its stderr (last lines) ---\nlast words" in text


# -- the side channel's reader ---------------------------------------------------------------


def side_file(tmp_path: Path, data: bytes) -> Capture:
    path = tmp_path / "side"
    path.write_bytes(data)
    return Capture(str(path), None)


def test_the_side_channel_reads_records_in_order(tmp_path: Path) -> None:
    records = [("warning", ("w", UserWarning, "f.py", 3)), ("call", ("record_property",
                                                                    ("k", "v"), {}))]
    data = b"".join(framing.frame(pickle.dumps(r)) for r in records)
    assert read_sidecar(side_file(tmp_path, data)) == records


def test_a_record_cut_by_a_crash_ends_the_list(tmp_path: Path) -> None:
    whole = framing.frame(pickle.dumps(("log", {"msg": "kept"})))
    cut = framing.frame(pickle.dumps(("log", {"msg": "cut"})))[:-3]
    assert read_sidecar(side_file(tmp_path, whole + cut)) == [("log", {"msg": "kept"})]


def test_a_record_that_cannot_be_unpickled_is_skipped(tmp_path: Path) -> None:
    data = framing.frame(b"garbage") + framing.frame(pickle.dumps(("comparison", "==")))
    assert read_sidecar(side_file(tmp_path, data)) == [("comparison", "==")]


def test_no_side_file_no_records(tmp_path: Path) -> None:
    assert read_sidecar(Capture(str(tmp_path / "never written"), None)) == []


# -- the warden's scan -----------------------------------------------------------------------


def test_parent_of_a_stat_line() -> None:
    assert parent_of(b"123 (python3) S 45 123 123 0 -1") == 45
    assert parent_of(b"7 (a (tricky) name) ) R 1 7 7 0") == 1  # a name with ") " in it


def test_descendants_of_a_tree() -> None:
    tree = {1: [2, 3], 2: [4], 4: [5], 3: [], 9: [10]}
    assert sorted(descendants(1, tree)) == [2, 3, 4, 5]
    assert descendants(5, tree) == []
    assert descendants(42, tree) == []


def test_read_parents_from_a_proc_tree(tmp_path: Path) -> None:
    for pid, ppid, name in [(10, 1, "init child"), (11, 10, "a (b) c"), (12, 11, "leaf")]:
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "stat").write_bytes(f"{pid} ({name}) S {ppid} 0 0".encode())
    (tmp_path / "13").mkdir()  # ended while it was read: no stat file
    (tmp_path / "self").mkdir()  # not a pid
    parents = read_parents(str(tmp_path))
    assert parents == {1: [10], 10: [11], 11: [12]}
    assert sorted(descendants(10, parents)) == [11, 12]
