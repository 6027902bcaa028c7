"""``forkhooks.fork``: the standard library's lock-reset hooks left out of a fork only where
they would change nothing, and every other hook kept.

Each check runs in a fresh interpreter (a subprocess): the test process may have threads
of its own (pytest-xdist's, pytest-timeout's), and the point is what happens in a process
with one thread and in one with two.
"""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap

import pytest

pytestmark = [
    pytest.mark.skipif(
        platform.python_implementation() != "CPython" or not hasattr(sys, "_current_frames"),
        reason="the hooks are left out on CPython only; elsewhere fork() is os.fork()",
    ),
    pytest.mark.skipif(sys.platform == "win32", reason="no fork"),
    pytest.mark.timeout(120),
]

# Forks one child with forkhooks.fork_without_lock_hooks(), runs CHECK in it, and sends
# back what CHECK returns (a repr on one line); the parent prints it, then its own findings.
HARNESS = """
import logging, os, random, sys, threading
from pytest_procthread.child import forkhooks

def child_says(check):
    r, w = os.pipe()
    pid = forkhooks.fork_without_lock_hooks()
    if pid == 0:
        os.close(r)
        code = 0
        try:
            os.write(w, repr(check()).encode())
        except BaseException as exc:
            os.write(w, ("error " + repr(exc)).encode())
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    chunks = []
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, b"".join(chunks)
    return b"".join(chunks).decode()
"""


def run(body: str) -> list[str]:
    """Run HARNESS + ``body`` in a fresh interpreter; its printed lines."""
    done = subprocess.run(
        [sys.executable, "-c", HARNESS + textwrap.dedent(body)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_with_one_thread_the_lock_hooks_are_left_out_and_the_lists_restored() -> None:
    lines = run("""
        skipped = forkhooks.skipped_hooks()
        print(threading._after_fork in skipped)
        print(any(getattr(h, "__module__", "") == "logging" for h in skipped))
        lists = forkhooks._lists
        before = [list(hooks) for hooks in lists]
        limbo_lock = threading._active_limbo_lock
        # threading's hook makes a new lock: the same one in the child means it did not run
        print(child_says(lambda: threading._active_limbo_lock is limbo_lock))
        print([list(hooks) for hooks in lists] == before)
        # and in the child too, so that a fork from the child runs every hook again
        print(child_says(lambda: [list(hooks) for hooks in lists] == before))
    """)
    assert lines == ["True", "True", "True", "True", "True"]


def test_other_hooks_still_run_in_both_processes() -> None:
    lines = run("""
        calls = []
        os.register_at_fork(
            before=lambda: calls.append("before"),
            after_in_parent=lambda: calls.append("parent"),
            after_in_child=lambda: calls.append("child"),
        )
        print(child_says(lambda: calls))
        print(calls)
        # random's reseed is kept: two children draw different numbers, as with os.fork
        print(child_says(random.random) != child_says(random.random))
    """)
    assert lines == ["['before', 'child']", "['before', 'parent']", "True"]


def test_the_child_is_a_sound_single_threaded_process() -> None:
    """What the skipped hooks look after, checked in the child: threads, locks, logging,
    and a fork from the child, after the child started a thread of its own."""
    lines = run("""
        import io
        stream = io.StringIO()
        logging.basicConfig(stream=stream, level=logging.INFO, format="%(message)s")

        def check():
            main = threading.main_thread()
            state = [
                threading.active_count(), main is threading.current_thread(),
                main.ident == threading.get_ident(), main.is_alive(),
            ]
            logging.info("logged in the child")
            state.append(stream.getvalue().strip())
            started = threading.Event()
            worker = threading.Thread(target=started.set)
            worker.start()
            worker.join(10)
            state.append(started.is_set())
            keep = threading.Event()
            sleeper = threading.Thread(target=keep.wait, args=(10,), daemon=True)
            sleeper.start()
            # A fork with two threads: every hook runs, so the grandchild has one thread.
            state.append(child_says(threading.active_count))
            keep.set()
            sleeper.join(10)
            return state

        print(child_says(check))
    """)
    assert lines == ["[1, True, True, True, 'logged in the child', True, '1']"]


def test_with_two_threads_every_hook_runs() -> None:
    lines = run("""
        keep = threading.Event()
        other = threading.Thread(target=keep.wait, args=(10,), daemon=True)
        other.start()
        limbo_lock = threading._active_limbo_lock
        print(child_says(lambda: (threading.active_count(),
                                  threading._active_limbo_lock is limbo_lock)))
        keep.set()
        other.join(10)
    """)
    assert lines == ["(1, False)"]


def test_a_failed_fork_leaves_the_lists_as_they_were() -> None:
    lines = run("""
        lists = forkhooks._hook_lists()
        assert lists is not None, "the hook lists were not found"
        before = [list(hooks) for hooks in lists]
        real_fork = os.fork

        def failing_fork():
            raise BlockingIOError(11, "Resource temporarily unavailable")

        os.fork = failing_fork
        try:
            forkhooks.fork_without_lock_hooks()
        except BlockingIOError:
            print("raised")
        finally:
            os.fork = real_fork
        print([list(hooks) for hooks in lists] == before)
    """)
    assert lines == ["raised", "True"]


def test_lists_with_nothing_but_the_sentinel_are_found() -> None:
    """In a process that has not imported logging, the before and after-in-parent lists
    hold only the sentinels: found all the same, and emptied again."""
    script = textwrap.dedent("""
        import os, sys, threading
        from pytest_procthread.child import forkhooks
        assert "logging" not in sys.modules, sorted(sys.modules)
        limbo_lock = threading._active_limbo_lock
        pid = forkhooks.fork_without_lock_hooks()
        if pid == 0:
            os._exit(0 if threading._active_limbo_lock is limbo_lock else 3)
        _, status = os.waitpid(pid, 0)
        before, parent, child = forkhooks._lists
        print(os.waitstatus_to_exitcode(status), before, parent, threading._after_fork in child)
    """)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", "[]", "[]", "True"]
