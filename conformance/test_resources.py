"""Resources: what a process keeps to itself, what its threads share, what each costs.

What a child runs is defined inside the check: it then travels by value (cloudpickle), so
that a spawn or forkserver child need not import this module, and pytest with it.
"""

from __future__ import annotations

import mmap
import os
import socket
import stat
import threading
from pathlib import Path
from typing import Any, Optional

import psutil
import pytest

from pytest_procthread.claims.verdicts import ClaimCheck
from pytest_procthread.ipc import IpcPipe, PipeEnd
from pytest_procthread.process import ProcessRunner
from pytest_procthread.thread import ThreadRunner

WAIT = 30.0
PAGE = mmap.PAGESIZE
ENV_KEY = "PROCTHREAD_CONFORMANCE_MARK"
CHILD_UMASK = 0o077
THREAD_UMASK = 0o027


def current_umask() -> int:
    """This thread's umask: read where the OS shows it, else set and put back at once."""
    for status in ("/proc/thread-self/status", "/proc/self/status"):
        try:
            with open(status) as f:
                for line in f:
                    if line.startswith("Umask:"):
                        return int(line.split()[1], 8)
        except OSError:
            continue
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def libc_getenv(key: str) -> Optional[str]:
    """The variable as C code in this process sees it (None where that cannot be asked)."""
    if os.name != "posix":
        return None
    try:
        import ctypes

        getenv = ctypes.CDLL(None).getenv
        getenv.restype = ctypes.c_char_p
        getenv.argtypes = [ctypes.c_char_p]
        value = getenv(key.encode())
    except (OSError, AttributeError):
        return None
    return value.decode() if value is not None else "<unset>"


def holds_open(path: str) -> bool:
    """Whether this process has ``path`` open, by the OS's list of its open files."""
    try:
        return any(os.path.samefile(f.path, path) for f in psutil.Process().open_files())
    except (psutil.Error, OSError):
        return False


def same_file(fd: int, path: str) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except OSError:
        return False


def stack_resident(native_id: Optional[int]) -> Optional[int]:
    """Bytes of a blocked thread's stack that are in memory (Linux: the mapping that holds
    its stack pointer, from /proc); None where the OS does not say."""
    try:
        # "running" until the thread has blocked: a bounded number of looks, no waiting.
        for _ in range(1000):
            with open(f"/proc/self/task/{native_id}/syscall") as f:
                fields = f.read().split()  # "nr args... sp pc" once blocked
            if len(fields) > 2:
                break
            os.sched_yield()
        stack_pointer = int(fields[-2], 16)
        with open("/proc/self/smaps") as f:
            inside = False
            for line in f:
                head = line.split(maxsplit=1)[0]
                if "-" in head and not head.endswith(":"):
                    low, high = (int(x, 16) for x in head.split("-"))
                    inside = low <= stack_pointer < high
                elif inside and head == "Rss:":
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError, AttributeError):
        pass
    return None


# -- a process has resources of its own ---------------------------------------------------

@pytest.mark.claim("process-resources-own")
def test_a_child_keeps_its_files_directory_environment_and_umask(
    procs: ProcessRunner, ipc_pipe: IpcPipe, tmp_path: Path, claim: ClaimCheck
) -> None:
    def take_own_resources(
        end: PipeEnd, workdir: str, parent_path: str, parent_fd: int
    ) -> None:
        """In the child: open a file, move, set a variable and a umask; close the copy of
        the parent's descriptor if it was inherited; hold all that while the parent looks."""
        child_path = os.path.join(workdir, "opened-by-child.txt")
        fd = os.open(child_path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.write(fd, b"child")
        child_dir = os.path.join(workdir, "child-cwd")
        os.mkdir(child_dir)
        os.chdir(child_dir)
        os.environ[ENV_KEY] = "set by the child"
        os.umask(CHILD_UMASK)
        umask = os.umask(CHILD_UMASK)
        try:
            inherited = os.path.samestat(os.fstat(parent_fd), os.stat(parent_path))
        except OSError:
            inherited = False
        if inherited:  # under fork: the child's copy of the parent's descriptor
            os.close(parent_fd)
        end.send({
            "fd": fd, "path": child_path, "cwd": os.getcwd(), "dir": child_dir,
            "env": os.environ.get(ENV_KEY), "umask": umask,
            "inherited_parent_fd": inherited,
        })
        end.recv(timeout=WAIT)

    parent_path = tmp_path / "opened-by-parent.txt"
    parent_path.write_bytes(b"parent")
    cwd_before, umask_before = os.getcwd(), current_umask()
    env_before = os.environ.get(ENV_KEY)
    parent_fd = os.open(parent_path, os.O_RDONLY)
    try:
        handle = procs.start(
            take_own_resources, ipc_pipe.child, str(tmp_path), str(parent_path), parent_fd
        )
        child = ipc_pipe.parent.recv(timeout=WAIT)
        # While the child holds everything: what we have, and what the OS says it has.
        here = {
            "our directory unchanged": os.path.samefile(os.getcwd(), cwd_before),
            "our environment unchanged": os.environ.get(ENV_KEY) == env_before,
            "our umask unchanged": current_umask() == umask_before,
            "the child's file not open here": not same_file(child["fd"], child["path"])
            and not holds_open(child["path"]),
        }
        seen_by_os: dict[str, Any] = {}
        try:
            other = psutil.Process(handle.pid)
            seen_by_os["in its own directory"] = os.path.samefile(other.cwd(), child["dir"])
            seen_by_os["holding its file"] = any(
                os.path.samefile(f.path, child["path"]) for f in other.open_files()
            )
        except (psutil.AccessDenied, NotImplementedError, OSError):
            pass  # not every OS lets us look; what we see here decides
        ipc_pipe.parent.send("done")
        handle.join().unwrap()
        # The child has closed its copy of our descriptor (under fork) and ended: ours works.
        os.lseek(parent_fd, 0, os.SEEK_SET)
        here["our descriptor still reads"] = os.read(parent_fd, 100) == b"parent"
    finally:
        os.close(parent_fd)
    assert child["env"] == "set by the child" and child["umask"] == CHILD_UMASK, child
    assert os.path.samefile(child["cwd"], child["dir"]), child
    kept = all(here.values()) and all(seen_by_os.values())
    closed = ", closed its copy of our descriptor" if child["inherited_parent_fd"] else ""
    os_view = (
        "; the OS shows the child " + ", ".join(f"{k}: {v}" for k, v in seen_by_os.items())
        if seen_by_os else ""
    )
    claim.decide(
        kept,
        f"the child opened a file, moved to a directory, set {ENV_KEY} and umask "
        f"{CHILD_UMASK:03o}{closed}; meanwhile here: "
        f"{', '.join(f'{k}: {v}' for k, v in here.items())}{os_view} ({procs.start_method})",
        child=child, here=here, seen_by_os=seen_by_os,
        umask_here=f"{umask_before:03o}",
    )


# -- threads share their process's resources ----------------------------------------------

@pytest.mark.claim("threads-share-resources")
def test_threads_share_files_sockets_directory_environment_and_umask(
    sibling_thread: ThreadRunner, tmp_path: Path, claim: ClaimCheck
) -> None:
    """One thread opens a file and a socket and changes the directory, the environment and
    the umask; another thread, already running, uses and sees all of it."""
    opened: dict[str, Any] = {}
    changed = threading.Event()
    thread_dir = tmp_path / "thread-cwd"
    thread_dir.mkdir()
    file_path = tmp_path / "opened-by-a-thread.txt"

    def change_everything() -> None:
        try:
            opened["fd"] = os.open(file_path, os.O_CREAT | os.O_RDWR, 0o600)
            opened["sockets"] = socket.socketpair()
            os.chdir(thread_dir)
            os.environ[ENV_KEY] = "set by a thread"
            opened["old_umask"] = os.umask(THREAD_UMASK)
        finally:
            changed.set()

    def use_and_look() -> dict[str, Any]:
        if not changed.wait(WAIT):
            raise TimeoutError("the other thread never made its changes")
        os.write(opened["fd"], b"written through the other thread's descriptor")
        opened["sockets"][0].sendall(b"sent on the other thread's socket")
        seen: dict[str, Any] = {
            "cwd": os.getcwd(), "env": os.environ.get(ENV_KEY),
            "env_in_c": libc_getenv(ENV_KEY), "umask": current_umask(),
        }
        if os.name == "posix":
            probe = os.path.join(os.getcwd(), "made-under-the-umask")
            os.close(os.open(probe, os.O_CREAT | os.O_WRONLY, 0o666))
            seen["new_file_mode"] = stat.S_IMODE(os.stat(probe).st_mode)
        return seen

    cwd_before, umask_before = os.getcwd(), current_umask()
    env_before = os.environ.get(ENV_KEY)
    try:
        looker = sibling_thread.start(use_and_look)  # running before anything changes
        sibling_thread.run(change_everything).unwrap()
        seen = looker.join().unwrap()
        os.lseek(opened["fd"], 0, os.SEEK_SET)
        in_file = os.read(opened["fd"], 100)
        receiver = opened["sockets"][1]
        receiver.settimeout(WAIT)
        on_socket = receiver.recv(100)
    finally:
        os.chdir(cwd_before)
        if env_before is None:
            os.environ.pop(ENV_KEY, None)
        else:
            os.environ[ENV_KEY] = env_before
        os.umask(umask_before)
        if "fd" in opened:
            os.close(opened["fd"])
        for sock in opened.get("sockets", ()):
            sock.close()
    shared = {
        "file": in_file == b"written through the other thread's descriptor",
        "socket": on_socket == b"sent on the other thread's socket",
        "directory": os.path.samefile(seen["cwd"], thread_dir),
        "environment": seen["env"] == "set by a thread"
        and seen["env_in_c"] in (None, "set by a thread"),
        "umask": seen["umask"] == THREAD_UMASK
        and seen.get("new_file_mode", 0o666 & ~THREAD_UMASK) == 0o666 & ~THREAD_UMASK,
    }
    claim.decide(
        all(shared.values()),
        "another thread, already running, used and saw what one thread opened and changed: "
        + ", ".join(f"{what} {ok}" for what, ok in shared.items()),
        seen=seen, umask_set=f"{THREAD_UMASK:03o}",
        new_file_mode=f"{seen['new_file_mode']:03o}" if "new_file_mode" in seen else None,
    )


# -- one more process costs more memory than one more thread ------------------------------

@pytest.mark.claim("process-costs-more-memory")
def test_one_more_process_costs_more_memory_than_one_more_thread(
    procs: ProcessRunner, sibling_thread: ThreadRunner, claim: ClaimCheck
) -> None:
    """A fresh child, parked on a pipe: its unique set size (the memory that is its own
    and would be freed with it), read by the parent from the OS. One more thread, parked on
    an event: how much the unique set size of this process grows while it exists."""

    def park(end: PipeEnd) -> None:
        end.send("parked")
        end.recv(timeout=WAIT)

    child_rss: list[int] = []
    thread_growth: list[int] = []
    thread_stack: list[Optional[int]] = []

    def one_more_process() -> float:
        with IpcPipe(timeout=WAIT, name="park") as pipe:
            handle = procs.start(park, pipe.child)
            try:
                assert pipe.parent.recv() == "parked"
                memory = psutil.Process(handle.pid).memory_full_info()
                pipe.parent.send("go")
            finally:
                outcome = handle.join()
            outcome.unwrap()
        child_rss.append(memory.rss)
        return float(memory.uss)

    me = psutil.Process()

    def one_more_thread() -> float:
        parked, release = threading.Event(), threading.Event()

        def park_thread() -> None:
            parked.set()
            release.wait(WAIT)

        before = me.memory_full_info().uss
        handle = sibling_thread.start(park_thread)
        try:
            assert parked.wait(WAIT), "the thread never started"
            after = me.memory_full_info().uss
            stack = stack_resident(handle.native_id)
        finally:
            release.set()
            handle.join().unwrap()
        thread_growth.append(after - before)
        thread_stack.append(stack)
        # The larger of two views: how much this process grew, and how much of the new
        # thread's stack is in memory (a stack reused from the C library's cache was paid
        # for before, so the growth alone could undercount it). A running thread has
        # touched at least one page; a smaller growth is the noise of this process's own
        # allocations. Each choice can only make the thread look dearer.
        return float(max(after - before, stack or 0, PAGE))

    claim.compare(
        one_more_process, one_more_thread,
        a_label=f"one more process ({procs.start_method})", b_label="one more thread",
        unit="B", budget=0.6, min_pairs=6,
        measure="process: the child's unique set size (USS); thread: the larger of this "
        "process's USS growth and the thread's resident stack",
        child_rss=child_rss, thread_uss_growth=thread_growth, thread_stack_resident=thread_stack,
        page=PAGE,
    )
