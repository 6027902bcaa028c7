"""Records every import statement that a fork child of this test process runs.

``builtins.__import__`` is what every ``import`` statement calls; replaced here, in the
test process, before any child is forked, so every fork child has the replacement. It
writes, in a child only, the module asked for to the file named by ``FORK_IMPORTS``.
"""

import builtins
import os

PARENT = os.getpid()
RECORD = os.open(os.environ["FORK_IMPORTS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
_original_import = builtins.__import__


def _recording_import(name, globals=None, locals=None, fromlist=(), level=0):
    if os.getpid() != PARENT:
        where = (globals or {}).get("__name__", "?")
        os.write(RECORD, f"{where}: import {'.' * level}{name} {list(fromlist or ())}\n".encode())
    return _original_import(name, globals, locals, fromlist, level)


builtins.__import__ = _recording_import
