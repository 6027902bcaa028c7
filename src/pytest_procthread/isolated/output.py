"""An isolated child's output in the test process: under pytest's capture once the body
has ended (:func:`relay_output`), and with ``-s`` on the terminal while it runs
(:class:`LiveOutput`)."""

from __future__ import annotations

import codecs
import contextlib
import os
import sys
import threading
from typing import Any, Optional

from ..outcome import Outcome

_STREAM_INTERVAL = 0.05  # -s: how often the test process copies the child's output


class LiveOutput:
    """With ``-s``: copies what the child writes to the terminal while it runs.

    The output files are opened once, at the start: a capture's path is only valid until
    the handle is released (see ``process.capture``), and the last copy may run after that.
    """

    def __init__(self, paths: tuple[str, str]) -> None:
        self._files: list[Any] = []
        for path in paths:
            try:
                self._files.append(open(path, "rb"))  # noqa: SIM115  (closed in stop())
            except OSError:
                self._files.append(None)
        self._offsets = [0, 0]
        self.written = [0, 0]  # characters written from each stream
        self._decoders = [
            codecs.getincrementaldecoder("utf-8")("backslashreplace")
            for _ in paths
        ]
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="procthread-isolated-output", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(_STREAM_INTERVAL):
            self.pump()

    def pump(self) -> None:
        for index, (f, stream) in enumerate(zip(self._files, (sys.stdout, sys.stderr))):
            if f is None:
                continue
            try:
                size = os.fstat(f.fileno()).st_size
                if size < self._offsets[index]:  # capsys.readouterr() took it
                    self._offsets[index] = self.written[index] = 0
                f.seek(self._offsets[index])
                data = f.read()
            except (OSError, ValueError):
                continue
            if data:
                self._offsets[index] += len(data)
                text = self._decoders[index].decode(data)
                self.written[index] += len(text)
                with contextlib.suppress(Exception):
                    stream.write(text)
                    stream.flush()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5.0)
        for f in self._files:
            if f is not None:
                f.close()


def relay_output(outcome: Outcome, live: Optional[LiveOutput]) -> None:
    """Write what the child printed, and ``live`` has not written yet, to this process's
    ``sys.stdout`` and ``sys.stderr`` (pytest's capture of the test)."""
    done = live.written if live is not None else [0, 0]
    for text, stream, skip in zip((outcome.stdout, outcome.stderr),
                                  (sys.stdout, sys.stderr), done):
        rest = text[skip:]
        if rest:
            stream.write(rest)
            with contextlib.suppress(Exception):
                stream.flush()
