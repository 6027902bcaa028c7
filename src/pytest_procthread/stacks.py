"""Reading what a child left in its stderr: its stack dump (faulthandler's), its last lines.

Two things in every dump say nothing about the test: the frames below the child's entry
point (``child.main.child_main``), which are multiprocessing's and, under fork, the whole
stack of the test process that the child inherited (often fifty lines of pytest); and
the lifeline watcher's thread (``child.lifeline.watch``). They are recognised by the code
objects of those two functions, and folded or dropped.
"""

from __future__ import annotations

import os
import re
from types import CodeType

from .child.lifeline import watch
from .child.main import child_main

# A frame line of a faulthandler dump (a Python traceback has ", in" instead of " in").
_DUMP_FRAME = re.compile(r'^  File "(?P<file>.*)", line \d+ in (?P<function>\S+)$')
_THREAD_HEADER = re.compile(r"^(Current thread|Thread) 0x[0-9a-fA-F]+ ")
_STACK_STARTS = re.compile(
    r"^(Fatal Python error|procthread: no result after|Current thread 0x|Thread 0x"
    r"|Stack \(most recent call first\))"
)


def _where(code: CodeType) -> tuple[str, str]:
    """The last two parts of the function's file (``child/main.py``) and its name: the
    same in the test process and in a child, wherever the package is installed."""
    directory, base = os.path.split(code.co_filename)
    return f"{os.path.basename(directory)}/{base}", code.co_name


_ENTRY = _where(child_main.__code__)
_WATCHER = _where(watch.__code__)


def _frame_of(line: str) -> tuple[str, str] | None:
    match = _DUMP_FRAME.match(line)
    if match is None:
        return None
    directory, base = os.path.split(match.group("file").replace("\\", "/"))
    return f"{os.path.basename(directory)}/{base}", match.group("function")


def _folded(hidden: int) -> str:
    return f"  [... {hidden} frame{'' if hidden == 1 else 's'} below the child's entry point ...]"


def fold_below_entry(text: str) -> str:
    """``text`` with the frames below the child's entry point of each stack folded into
    one line that says how many there were."""
    out: list[str] = []
    hidden = 0
    below = False
    for line in text.splitlines():
        frame = _frame_of(line)
        if below and frame:
            hidden += 1
            continue
        if below and hidden:
            out.append(_folded(hidden))
        below = False
        out.append(line)
        if frame == _ENTRY:
            below, hidden = True, 0
    if below and hidden:
        out.append(_folded(hidden))
    return "\n".join(out)


def without_watcher(text: str) -> str:
    """``text`` without the lifeline watcher's thread: every child has it, it says
    nothing about the test."""
    out: list[str] = []
    block: list[str] = []
    for line in [*text.splitlines(), ""]:
        if block and (not line.strip() or _THREAD_HEADER.match(line)):
            if not any(_frame_of(b) == _WATCHER for b in block):
                out += block
            else:
                while out and not out[-1].strip():
                    out.pop()
            block = []
        if _THREAD_HEADER.match(line):
            block = [line]
        elif block:
            block.append(line)
        else:
            out.append(line)
    return "\n".join(out).rstrip()


def stack_dump(stderr: str) -> str:
    """The stack dump at the end of a child's stderr (faulthandler), made readable."""
    lines = stderr.splitlines()
    start = next((i for i, line in enumerate(lines) if _STACK_STARTS.match(line)), None)
    if start is None:
        return ""
    return without_watcher(fold_below_entry("\n".join(lines[start:])))


def tail(text: str, lines: int = 30) -> str:
    """The last ``lines`` lines of ``text``, saying how many came before."""
    parts = text.rstrip().splitlines()
    if len(parts) <= lines:
        return "\n".join(parts)
    return "\n".join([f"[... {len(parts) - lines} earlier lines ...]", *parts[-lines:]])
