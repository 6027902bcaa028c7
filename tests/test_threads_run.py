"""The whole-run fan-out (``--procthread-threads``), iterations, the per-thread fixtures,
the switch interval, pytest's semantics kept (xfail, unittest, custom items), threads
left running, and pytest-run-parallel beside us."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from pytest_procthread.runtime import usable_cpus

pytestmark = pytest.mark.timeout(120)

ARGS = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "--procthread-check-leaks")

WHOLE_RUN = '''
import threading
import pytest

SEEN = {}
LOCK = threading.Lock()


def note(name, thread_index):
    with LOCK:
        SEEN.setdefault(name, set()).add(thread_index)


def test_plain(thread_index, thread_count):
    note("plain", thread_index)
    assert thread_count == 3


@pytest.mark.threads(2)
def test_marker_overrides(thread_index, thread_count):
    note("marker", thread_index)
    assert thread_count == 2


@pytest.mark.threads(max=2)
def test_capped(thread_index):
    note("capped", thread_index)


@pytest.mark.threads(1)
def test_zz_once_and_check(thread_index, thread_count):
    assert thread_count == 1 and thread_index == 0
    assert SEEN == {"plain": {0, 1, 2}, "marker": {0, 1}, "capped": {0, 1}}
'''


def test_the_run_fans_every_test_out_and_the_marker_overrides(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_whole=WHOLE_RUN)
    result = pytester.runpytest(*ARGS, "-v", "--procthread-threads=3")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines([
        "*::test_plain PASSED (3 threads)*",
        "*::test_marker_overrides PASSED (2 threads)*",
        "*::test_capped PASSED (2 threads)*",
        "*::test_zz_once_and_check PASSED *[[]100%[]]",
        "*= procthread: threads =*",
        "3 tests ran in threads (2 in 2 threads, 1 in 3 threads); 0 ran once",
    ])


def test_the_ini_key_and_auto(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nprocthread_threads = auto\n")
    pytester.makepyfile(f"""
        import pytest

        def test_auto(thread_count):
            assert thread_count == {usable_cpus()}

        @pytest.mark.threads("auto", iterations=2)
        def test_marker_auto(thread_count, iteration_count):
            assert (thread_count, iteration_count) == ({usable_cpus()}, 2)
        """)
    result = pytester.runpytest(*ARGS)
    result.assert_outcomes(passed=2)


ITERATIONS = '''
import threading
import pytest

LOCK = threading.Lock()
STARTED = {}
FINISHED = {}
PAIRS = set()


@pytest.mark.threads(3, iterations=4)
def test_iterations(thread_index, iteration_index, iteration_count):
    with LOCK:
        # The barrier before each iteration: every thread has finished the one before.
        assert iteration_index == 0 or FINISHED.get(iteration_index - 1) == 3
        STARTED[iteration_index] = STARTED.get(iteration_index, 0) + 1
        PAIRS.add((thread_index, iteration_index))
    assert iteration_count == 4
    with LOCK:
        FINISHED[iteration_index] = FINISHED.get(iteration_index, 0) + 1


def test_every_pair_ran_once():
    assert PAIRS == {(t, i) for t in range(3) for i in range(4)}
    assert STARTED == {0: 3, 1: 3, 2: 3, 3: 3}


def test_option_iterations(iteration_count, thread_count):
    assert (iteration_count, thread_count) == (2, 1)
'''


def test_iterations_meet_at_a_barrier(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_iter=ITERATIONS)
    result = pytester.runpytest(*ARGS, "-v", "--procthread-iterations=2")
    result.assert_outcomes(passed=3)
    # The marker's iterations=4 overrides the option's 2 for its test.
    result.stdout.fnmatch_lines(["*::test_iterations PASSED (3 threads x 4 iterations)*"])


DIRECTORIES = '''
import os
import threading
import pytest

LOCK = threading.Lock()
PATHS = []


@pytest.fixture
def seeded(tmp_path):
    (tmp_path / "seed.txt").write_text("from the fixture")
    return tmp_path


@pytest.mark.threads(4, iterations=2)
def test_own_directories(tmp_path, tmpdir, seeded, thread_index, iteration_index):
    assert list(tmp_path.iterdir()) == []  # empty, and this thread's alone
    assert os.listdir(str(tmpdir)) == []
    assert tmp_path.parent == seeded  # inside the test's own
    (tmp_path / "mine.txt").write_text(f"{thread_index}")
    with LOCK:
        PATHS.append((str(tmp_path), str(tmpdir), thread_index, iteration_index))


def test_all_different():
    assert len({p for p, _, _, _ in PATHS}) == 8
    assert len({d for _, d, _, _ in PATHS}) == 8
'''


def test_each_thread_and_iteration_gets_its_own_tmp_path(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_dirs=DIRECTORIES)
    pytester.runpytest(*ARGS).assert_outcomes(passed=2)


SWITCHING = '''
import sys
import pytest

BEFORE = sys.getswitchinterval()


@pytest.mark.threads(2)
def test_lowered():
    assert sys.getswitchinterval() == pytest.approx(EXPECTED)


def test_restored():
    assert sys.getswitchinterval() == BEFORE
'''


@pytest.mark.parametrize(("args", "expected"), [
    ((), "1e-06"), (("--procthread-switch-interval=0.0001",), "0.0001"),
    (("--procthread-switch-interval=off",), "BEFORE"),
])
def test_the_switch_interval_is_lowered_while_the_threads_run(
    pytester: pytest.Pytester, args: tuple[str, ...], expected: str
) -> None:
    pytester.makepyfile(test_switch=SWITCHING.replace("EXPECTED", expected))
    pytester.runpytest(*ARGS, *args).assert_outcomes(passed=2)


@pytest.mark.parametrize(("args", "message"), [
    (("--procthread-threads=0",), "invalid number of threads in option --procthread-threads"),
    (("--procthread-threads=many",), "write a whole number from 1 to 1024 or 'auto'"),
    (("--procthread-threads=100000",), "write a whole number from 1 to 1024"),
    (("--procthread-iterations=-1",), "invalid number of iterations in option"),
    (("--procthread-switch-interval=nan",), "invalid switch interval in option"),
    (("--procthread-switch-interval=-1",), "or 'off' to leave"),
])
def test_bad_settings_are_usage_errors(
    pytester: pytest.Pytester, args: tuple[str, ...], message: str
) -> None:
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest(*ARGS, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()


XFAIL = '''
import pytest


@pytest.mark.xfail(raises=ValueError, strict=True)
@pytest.mark.threads(3)
def test_expected():
    raise ValueError("as expected")


@pytest.mark.xfail(raises=ValueError)
@pytest.mark.threads(3)
def test_not_all_expected(thread_index):
    if thread_index == 2:
        raise KeyError("not expected")
    raise ValueError("expected")
'''


def test_xfail_raises_holds_in_threads(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_xfail=XFAIL)
    result = pytester.runpytest(*ARGS, "-rxXf")
    result.assert_outcomes(xfailed=1, failed=1)
    result.stdout.fnmatch_lines(["FAILED *test_not_all_expected - KeyError: 'not expected'"])


UNITTEST = '''
import threading
import unittest
from pytest_procthread.parallel import current_thread_index

LOCK = threading.Lock()
SEEN = []


class Cases(unittest.TestCase):
    def setUp(self):
        self.items = []

    def test_own_instance(self):
        self.items.append(current_thread_index())
        self.assertEqual(len(self.items), 1)  # setUp ran for this thread's own instance
        with LOCK:
            SEEN.append(current_thread_index())

    def test_one_thread_fails(self):
        self.assertNotEqual(current_thread_index(), 2, "thread 2 fails")

    def test_zz_all_seen(self):
        self.assertEqual(sorted(SEEN), [0, 1, 2, 3])
'''


def test_unittest_methods_fan_out(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_cases=UNITTEST)
    pytester.makeconftest("""
        import pytest

        def pytest_collection_modifyitems(items):
            for item in items:
                if "zz" not in item.name:
                    item.add_marker(pytest.mark.threads(4))
        """)
    result = pytester.runpytest(*ARGS, "-v")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines([
        "*::test_one_thread_fails FAILED*",
        "*::test_own_instance PASSED (4 threads)*",
        "E * thread 2 fails",
        "E       (in thread 2 of 4)",
    ])


def test_an_item_that_cannot_fan_out_is_said(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_doc='''
        def double(x):
            """
            >>> double(2)
            4
            """
            return 2 * x
        ''')
    result = pytester.runpytest(*ARGS, "-v", "--doctest-modules", "--procthread-threads=2")
    result.stdout.fnmatch_lines([
        "0 tests ran in threads; 1 ran once:",
        "  1 ran once: is a DoctestItem, not a Python test function; only test functions and "
        "unittest methods can run in threads",
    ])


def test_a_threads_marker_on_a_custom_item_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("""
        import pytest

        class Check(pytest.Item):
            def runtest(self):
                pass

        class Checks(pytest.File):
            def collect(self):
                item = Check.from_parent(self, name="check")
                item.add_marker(pytest.mark.threads(4))
                yield item

        def pytest_collect_file(file_path, parent):
            if file_path.suffix == ".chk":
                return Checks.from_parent(parent, path=file_path)
        """)
    pytester.makefile(".chk", one="")
    result = pytester.runpytest(*ARGS)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert ("@pytest.mark.threads on one.chk::check: the item is a Check, not a Python test "
            "function" in result.stderr.str())


STRAY = '''
import threading
import pytest

GATE = threading.Event()


@pytest.mark.threads(2, timeout=0.5)
def test_a_leaves_a_thread(thread_index):
    if thread_index == 1:
        GATE.wait(60)


def test_b_is_not_run_beside_it():
    pass


def test_c_runs_and_releases_it():
    GATE.set()
'''


def test_a_thread_left_running_fails_the_next_setup(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_stray=STRAY)
    result = pytester.runpytest_subprocess(*ARGS, "-v")
    result.assert_outcomes(passed=1, failed=1, errors=1)
    result.stdout.fnmatch_lines([
        "*ERROR at setup of test_b_is_not_run_beside_it*",
        "not run: threads of an earlier test are still running (thread 1 of 2 of "
        "test_a_leaves_a_thread)*",
        "*_ test_a_leaves_a_thread _*",
        "thread 1 of 2 is still running 0.5 s after the threads started*",
        "*in test_a_leaves_a_thread",  # the thread's stack
        "    GATE.wait(60)",
    ])
    assert "raise_failures" not in result.stdout.str()




def test_both_fan_outs_asked_is_a_usage_error(pytester: pytest.Pytester) -> None:
    if importlib.util.find_spec("pytest_run_parallel") is None:
        pytester.copy_example("threads_peer/conftest.py")
    pytester.makepyfile("""
        import pytest

        @pytest.mark.threads(2)
        @pytest.mark.force_parallel_threads(4)
        def test_x():
            pass
        """)
    both = pytester.runpytest(*ARGS, "--parallel-threads=4", "--procthread-threads=2")
    assert both.ret == pytest.ExitCode.USAGE_ERROR
    assert "both pytest-run-parallel (--parallel-threads=4) and pytest-procthread" in \
        both.stderr.str()
    assert "-p no:run-parallel" in both.stderr.str()
    marked = pytester.runpytest(*ARGS, "-W", "ignore::pytest.PytestUnknownMarkWarning")
    assert marked.ret == pytest.ExitCode.USAGE_ERROR
    assert ("test_both_fan_outs_asked_is_a_usage_error.py::test_x is asked to run in threads "
            "by both" in marked.stderr.str())
    assert "@pytest.mark.force_parallel_threads(4)" in marked.stderr.str()


@pytest.mark.skipif(sys.version_info < (3, 11), reason="add_note and its display: 3.11+")
def test_the_summary_line_names_the_exception_type(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    pytester.makepyfile("""
        import pytest

        @pytest.mark.threads(4)
        def test_x(thread_index):
            raise LookupError("in every thread")
        """)
    result = pytester.runpytest(*ARGS, "-l")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        '>       raise LookupError("in every thread")',
        "E       LookupError: in every thread",
        "E       (in threads 0, 1, 2, 3 of 4: 4 identical failures, folded into this one)",
        "thread_index = 0",  # -l: the failing thread's locals
        "FAILED *::test_x - LookupError: in every thread",
    ])
    assert "_raise_problems" not in result.stdout.str()
    assert "fanout.py" not in result.stdout.str()


def test_status_words_and_summary_come_through_xdist(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_x="""
        import pytest

        def test_fanned(thread_count):
            assert thread_count == 2

        def test_once(capsys):
            pass
        """)
    result = pytester.runpytest_subprocess(*ARGS, "-n", "2", "-v", "--procthread-threads=2")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines_random([
        "*PASSED (2 threads) test_x.py::test_fanned*",
        "*PASSED (ran once: uses fixture 'capsys'*) test_x.py::test_once*",
        "1 test ran in threads (1 in 2 threads); 1 ran once:",
    ])


ISOLATED_CASES = '''
import unittest
import pytest
from pytest_procthread.parallel import current_thread_index


@pytest.mark.isolated
@pytest.mark.threads(3, iterations=2)
class Cases(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.shared = "set once"

    def setUp(self):
        self.items = []

    def test_ok(self):
        self.items.append(1)
        assert self.shared == "set once" and len(self.items) == 1

    def test_fail(self):
        assert current_thread_index() != 1, "thread 1"
'''


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_isolated_unittest_methods_fan_out_in_the_child(
    pytester: pytest.Pytester, method: str
) -> None:
    pytester.makepyfile(test_cases=ISOLATED_CASES)
    result = pytester.runpytest_subprocess(*ARGS, "-v", f"--procthread-start-method={method}")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines_random([
        "*::Cases::test_ok PASSED (3 threads x 2 iterations)*",
        "E       (in thread 1 (iterations 0, 1) of 3 threads, 2 iterations each: 2 identical "
        "failures, folded into this one)",
    ])
