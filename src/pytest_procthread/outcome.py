"""The result of running a callable elsewhere, shared by processes and threads.

One type for both so that a check can hold a thread's outcome next to a process's and
compare them field by field.
"""

from __future__ import annotations

import signal as _signal
import sys
from typing import Any, Optional

from .errors import ChildDiedError, ChildTimeoutError, to_raise
from .stacks import fold_below_entry, tail

# The NTSTATUS codes a crashing Windows process most often exits with.
NTSTATUS_NAMES: dict[int, str] = {
    0xC0000005: "access violation",
    0xC000001D: "illegal instruction",
    0xC0000094: "integer divide by zero",
    0xC0000096: "privileged instruction",
    0xC00000FD: "stack overflow",
    0xC0000374: "heap corruption",
    0xC0000409: "stack buffer overrun / fail-fast (abort)",
    0xC000013A: "terminated by Ctrl+C",
    0x80000003: "breakpoint",
    0x40010004: "terminated by debugger",
}


def _signal_text(sig: _signal.Signals) -> str:
    text = None
    try:
        text = _signal.strsignal(sig)
    except (ValueError, AttributeError):
        pass
    if not text:
        return sig.name
    # glibc appends the number for some signals ("Real-time signal 3"); keep it short.
    return f"{sig.name} ({text[0].lower()}{text[1:]})"


def signal_of(exitcode: Optional[int]) -> Optional[_signal.Signals]:
    """The signal that ended a process, from multiprocessing's negative exit code."""
    if exitcode is None or exitcode >= 0 or sys.platform == "win32":
        return None
    try:
        return _signal.Signals(-exitcode)
    except ValueError:
        return None


def describe_exit(exitcode: Optional[int], *, platform: str = sys.platform) -> str:
    """Say in words how a process ended, from its exit code.

    >>> describe_exit(-11, platform="linux")
    'killed by SIGSEGV (segmentation fault)'
    >>> describe_exit(0xC0000005, platform="win32")
    'exited with 0xC0000005 (access violation)'
    """
    if exitcode is None:
        return "still running"
    if platform == "win32":
        code = exitcode & 0xFFFFFFFF
        if code in NTSTATUS_NAMES:
            return f"exited with 0x{code:08X} ({NTSTATUS_NAMES[code]})"
        if code >= 0xC0000000:
            return f"exited with NTSTATUS 0x{code:08X}"
        return f"exited with status {exitcode}"
    if exitcode < 0:
        try:
            return f"killed by {_signal_text(_signal.Signals(-exitcode))}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exited with status {exitcode}"


def _short_repr(value: Any, limit: int = 80) -> str:
    try:
        text = repr(value)
    except Exception as exc:  # a broken __repr__ must not hide the outcome
        text = f"<{type(value).__name__} object; repr failed: {exc!r}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Outcome:
    """What happened when a callable ran in another process or thread.

    ``returned`` is True when the callable returned (then ``value`` holds what it
    returned); ``exception`` holds what it raised, re-raisable, with the child's frames in
    its traceback. ``crashed`` means it died without returning or raising (a signal, an
    abort, ``os._exit`` with a non-zero status). ``timed_out`` means it had not finished
    when the time was up.
    """

    def __init__(
        self,
        *,
        kind: str,
        name: str = "",
        returned: bool = False,
        value: Any = None,
        exception: Optional[BaseException] = None,
        traceback: str = "",
        exitcode: Optional[int] = None,
        crashed: bool = False,
        timed_out: bool = False,
        stdout: str = "",
        stderr: str = "",
        duration: float = 0.0,
        pid: Optional[int] = None,
        ident: Optional[int] = None,
        native_id: Optional[int] = None,
        start_method: Optional[str] = None,
        killed: bool = False,
        timeout: Optional[float] = None,
    ) -> None:
        self.kind = kind
        self.name = name
        self.returned = returned
        self.value = value
        self._exception = exception
        self._traceback = traceback
        self.exitcode = exitcode
        self.signal: Optional[_signal.Signals] = signal_of(exitcode)
        self.crashed = crashed
        self.timed_out = timed_out
        self.stdout = stdout
        self.stderr = stderr
        self.duration = duration
        self.pid = pid
        self.ident = ident
        self.native_id = native_id
        self.start_method = start_method
        self.killed = killed
        self.timeout = timeout
        # Whether the test has looked at the exception; the thread fixture fails a test
        # whose threads raised and nobody looked.
        self.observed = exception is None

    @property
    def exception(self) -> Optional[BaseException]:
        self.observed = True
        return self._exception

    @property
    def traceback(self) -> str:
        self.observed = True
        return self._traceback

    @property
    def raised(self) -> bool:
        """True when the callable raised an exception."""
        self.observed = True
        return self._exception is not None

    @property
    def ok(self) -> bool:
        """True when the callable returned normally in time."""
        self.observed = True
        return self.returned and not self.timed_out

    def describe(self) -> str:
        """One line a person can read: what happened and how long it took.

        >>> Outcome(kind="process", exitcode=-11, crashed=True, duration=0.02).describe()
        'process killed by SIGSEGV (segmentation fault) after 0.02 s'
        """
        self.observed = True
        who = self.kind if not self.name else f"{self.kind} {self.name!r}"
        after = f"after {self.duration:.2f} s"
        if self.timed_out:
            limit = f"{self.timeout:g} s" if self.timeout is not None else "its time limit"
            if self.kind == "thread":
                return f"{who} still running after {limit} (a thread cannot be killed)"
            return (
                f"{who} timed out after {limit}: stacks dumped to its stderr, "
                f"process tree stopped ({describe_exit(self.exitcode)})"
            )
        if self._exception is not None:
            exc = self._exception
            return f"{who} raised {type(exc).__name__}: {exc} {after}"
        if self.returned:
            return f"{who} returned {_short_repr(self.value)} {after}"
        if self.killed:
            return f"{who} was killed by the test ({describe_exit(self.exitcode)}) {after}"
        if self.exitcode is not None:
            text = describe_exit(self.exitcode)
            if self.exitcode == 0:
                text += " without returning a result"
            return f"{who} {text} {after}"
        return f"{who} has no result"

    def unwrap(self) -> Any:
        """Return the value, or raise what the callable raised, or say why there is none."""
        self.observed = True
        if self._exception is not None:
            raise to_raise(self._exception)
        if self.returned and not self.timed_out:
            return self.value
        detail = self.describe()
        if self.stderr.strip():
            detail += "\n--- its stderr (last lines) ---\n" + tail(
                fold_below_entry(self.stderr)
            )
        if self.timed_out:
            raise ChildTimeoutError(detail)
        raise ChildDiedError(detail)

    def __repr__(self) -> str:
        return f"<Outcome {self.describe()}>"
