"""What crosses a process boundary, and how: the pickling policy (``pickling``), the one
framing of every message (``framing``), the versioned result record (``result``), and
exceptions with their tracebacks (``exceptions``, ``tracebacks``).

Both sides import these modules: the test process and every child. They use the standard
library only at import time (cloudpickle and tblib load when a value needs them).
"""
