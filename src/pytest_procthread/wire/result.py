"""The result record: what a child's call came to, sent once from the child to the parent.

One record per child, as a dict of plain fields with a version, pickled and framed::

    {"v": VERSION, "status": "returned", "value": ...}
    {"v": VERSION, "status": "raised", "exception": ..., "traceback": "..."}

The child makes it with :func:`returned` or :func:`raised` and :func:`encode`; the test
process reads it with :func:`decode`, which never raises: a record it cannot read becomes
a ``raised`` record that says why.
"""

from __future__ import annotations

import pickle
from typing import Any

from ..errors import NotPicklableError, ProcThreadError
from . import framing, pickling

VERSION = 1
Record = dict[str, Any]

# Values that plain pickle sends faithfully everywhere, without a look at each object.
_PLAIN_VALUES = (type(None), bool, int, float, str, bytes)


def returned(value: Any) -> Record:
    return {"v": VERSION, "status": "returned", "value": value}


def raised(exception: BaseException, traceback: str) -> Record:
    return {"v": VERSION, "status": "raised", "exception": exception, "traceback": traceback}


# What most targets return; encoded and framed once, at import.
RETURNED_NONE = pickle.dumps(returned(None), pickle.HIGHEST_PROTOCOL)
RETURNED_NONE_FRAMED = framing.frame(RETURNED_NONE)


def encode(record: Record) -> bytes:
    """The record as bytes. A value that cannot be pickled, or that holds multiprocessing
    objects, is replaced by a NotPicklableError that names it."""
    if type(record.get("value")) in _PLAIN_VALUES and "exception" not in record:
        return pickle.dumps(record, pickle.HIGHEST_PROTOCOL)
    try:
        data, externals = pickling.dumps(record)
        if externals:
            raise TypeError(
                f"it holds {len(externals)} multiprocessing object(s), which cannot be sent back"
            )
    except (Exception, SystemExit) as exc:  # a __reduce__ may even call sys.exit()
        message = pickling.describe_unpicklable(
            "the target returned", record.get("value"), exc,
            "Return plain data (numbers, strings, lists, dicts, dataclasses) instead.",
        )
        error = NotPicklableError(message, what="the return value")
        data, _ = pickling.dumps(raised(error, message))
    return data


def decode(data: bytes) -> Record:
    """The record in ``data``. Unpickling runs code the child chose: whatever it raises,
    even SystemExit, becomes a ``raised`` record with a ProcThreadError that says so."""
    if data == RETURNED_NONE:  # most targets; no unpickler needed
        return returned(None)
    try:
        # A result never holds multiprocessing objects (the child refuses them), so plain
        # pickle reads it: no unpickler object of our own to build.
        record: Record = pickle.loads(data)
        if record.get("v") != VERSION:
            raise ProcThreadError(f"result format {record.get('v')!r}")
    except (Exception, SystemExit) as exc:
        return raised(
            ProcThreadError(
                f"the child's result could not be unpickled in the parent: "
                f"{type(exc).__name__}: {exc}. Return plain data, or objects whose "
                f"classes the parent can import."
            ),
            "",
        )
    return record
