"""The thread fan-out: a test body in n threads at once, k iterations each.

``plan`` reads how many (marker, command line, ini), ``unsafe`` decides which tests run
once and why, ``fanout`` runs the threads, ``failures`` turns what they raised into what
pytest reports, ``plugin`` holds the hooks and fixtures. ``markers.plugin`` dispatches a
test body here, or to a child process that fans out there.
"""
