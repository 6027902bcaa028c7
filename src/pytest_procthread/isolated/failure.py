"""The failure of an isolated test whose child died: what died, how, where, what it said."""

from __future__ import annotations

from ..outcome import Outcome, describe_exit
from ..stacks import fold_below_entry, stack_dump, tail, without_watcher


def _section(title: str, text: str, lines: int = 40) -> list[str]:
    return [f"--- {title} ---", tail(text, lines)] if text.strip() else []


def died_message(nodeid: str, outcome: Outcome, captured: bool, lost: str = "") -> str:
    """The failure text of a child that crashed, timed out or ended without a result.

    ``captured``: pytest captures output, so what the child printed is in the report's
    sections already and only its stack is shown here; else its output's last lines.
    ``lost``: why its exit status is unknown, if it is (its template died).
    """
    pid = f"pid {outcome.pid}" if outcome.pid else "pid unknown"
    where = f"({pid}, start method {outcome.start_method})"
    how = describe_exit(outcome.exitcode)
    if outcome.timed_out:
        head = (
            f"the isolated child running {nodeid} {where} did not finish within "
            f"{outcome.timeout:g} s: the stacks of its threads were dumped, then it and "
            f"every process it started were stopped ({how})"
        )
        stack_title = "the stack of every thread at the timeout"
    elif outcome.crashed:
        head = (f"the isolated child running {nodeid} {where} crashed: {how} "
                f"after {outcome.duration:.2f} s")
        stack_title = "its Python stack at the crash (faulthandler)"
    else:  # exit status 0 without a result, or the warm template that forked it died
        head = (f"the isolated child running {nodeid} {where} ended without a result: "
                f"{lost or outcome.describe()}")
        stack_title = "its Python stack"
        if captured:
            return "\n".join([head, *_section("its stderr (last lines)", outcome.stderr, 20)])
    parts = [head]
    stack = stack_dump(outcome.stderr)
    if captured:
        parts += _section(stack_title, stack, 60)
        if not stack and not outcome.timed_out:
            parts.append("(no Python stack: it was killed outright, or ended with os._exit)")
        if outcome.stdout.strip() or outcome.stderr.strip():
            parts.append("(everything it printed is under 'Captured stdout call' and "
                         "'Captured stderr call')")
    else:
        stderr = without_watcher(fold_below_entry(outcome.stderr))
        parts += _section("its stdout (last lines)", outcome.stdout)
        parts += _section(f"its stderr (last lines), with {stack_title}" if stack
                          else "its stderr (last lines)", stderr, 60)
    return "\n".join(parts)
