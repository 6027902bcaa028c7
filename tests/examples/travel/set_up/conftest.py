"""Imported by pytest for the tests beside it: its import makes ``email.mime.text`` an
attribute of ``email``, which the test relies on without importing it."""

import email.mime.text  # noqa: F401
