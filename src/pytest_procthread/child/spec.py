"""What a child is told, and what it knows of itself while it runs: the spec the parent
builds for it, how a pipe end travels, and the parent's objects it holds on to.

Kept to plain classes with ``__slots__``: importing dataclasses pulls in inspect (and
more), a few milliseconds in every spawn and forkserver child.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional

if TYPE_CHECKING:
    from .coverage import CoveragePlan

Call = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class ChildSpec:
    """Everything the child needs, small and picklable by multiprocessing."""

    __slots__ = (
        "capture_fds", "cores_off", "coverage", "direct_call", "externals", "lifeline_conn",
        "name", "outside", "payload", "result_conn", "start_method", "stderr_path",
        "stdout_path", "timeout", "warden",
    )

    def __init__(
        self,
        name: str,
        start_method: str,
        result_conn: Any,
        lifeline_conn: Any,
        stdout_path: str,
        stderr_path: str,
        timeout: float,
        # Under fork the call is inherited as objects; otherwise it arrives pickled.
        direct_call: Optional[Call] = None,
        payload: bytes = b"",
        externals: Optional[list[Any]] = None,
        # Under fork, where the output files are memory files: the child's inherited copies
        # of them, to dup2() onto fd 1 and 2 instead of opening the paths.
        capture_fds: Optional[tuple[int, int]] = None,
        # Under fork on Linux: the parent's warden pipe and the parent's pid (see
        # process.warden); the child enlists there instead of starting a lifeline watcher.
        warden: Optional[tuple[int, int]] = None,
        # Under fork: the parent lowered the core limit for the fork, so the child starts
        # with core dumps off and need not turn them off itself.
        cores_off: bool = False,
        # Under spawn and forkserver on Linux: the warden's pipe (an FdRef) and the tree
        # mark; the child enlists there as well as watching its lifeline.
        outside: Optional[tuple[FdRef, str]] = None,
        # When coverage.py measures the test process: how the child measures itself.
        coverage: Optional[CoveragePlan] = None,
    ) -> None:
        self.name = name
        self.start_method = start_method
        self.result_conn = result_conn
        self.lifeline_conn = lifeline_conn
        self.stdout_path = stdout_path
        self.stderr_path = stderr_path
        self.timeout = timeout
        self.direct_call = direct_call
        self.payload = payload
        self.externals: list[Any] = [] if externals is None else externals
        self.capture_fds = capture_fds
        self.warden = warden
        self.cores_off = cores_off
        self.outside = outside
        self.coverage = coverage

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in sorted(self.__slots__))
        return f"ChildSpec({fields})"


class FdRef:
    """One end of a pipe handed to the child as a bare descriptor (POSIX only).

    multiprocessing hands it over exactly as it hands over a ``Connection`` (``DupFd``),
    but rebuilding it in the child needs neither ``multiprocessing.connection`` nor what
    that imports (tempfile, shutil, random, bz2, lzma): several milliseconds in every spawn
    and forkserver child. Windows keeps passing ``Connection`` objects, whose handles
    multiprocessing duplicates (``DupHandle``); the child accepts either.
    """

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __repr__(self) -> str:
        return f"FdRef({self.fd})"

    def __reduce__(self) -> Any:
        from multiprocessing import reduction

        return (_rebuild_fd, (reduction.DupFd(self.fd),))


def _rebuild_fd(dup: Any) -> FdRef:
    return FdRef(dup.detach())


_current_spec: Optional[ChildSpec] = None
_kept: list[Any] = []


def enter(spec: ChildSpec) -> None:
    """At the child's start: this process is now the child of ``spec``."""
    global _current_spec
    _current_spec = spec


def current_output_paths() -> Optional[tuple[str, str]]:
    """In an isolated child: the files its fd 1 and fd 2 write to; elsewhere None."""
    spec = _current_spec
    return None if spec is None else (spec.stdout_path, spec.stderr_path)


def keep(*replaced: Any) -> None:
    """In a fork child: hold on to objects of the parent that the child replaces. Freed,
    each would write to its own memory page and to its neighbours' in the collector's
    list (copies of the parent's pages, a few microseconds each); the child ends soon."""
    _kept.extend(replaced)
