"""Tests whose function or parameters a fresh child can only get by reference."""

import functools
import io
import sys
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

SENTINEL = object()
LOCK = threading.Lock()


def made_at_import():
    def pipe(value):
        return value

    return pipe


PIPE = made_at_import()


@settings(max_examples=5, database=None)
@given(st.integers())
def test_hypothesis_wrapped(n):
    assert isinstance(n, int)


def no_wraps(fn):
    def wrapper(*args, **kwargs):  # no functools.wraps: pickle cannot find it by name
        return fn(*args, **kwargs)

    wrapper.__name__ = fn.__name__
    return wrapper


@no_wraps
def test_plain_decorator_without_wraps():
    pass


def with_wraps(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs)

    return wrapper


@with_wraps
def test_decorator_with_wraps():
    pass


@pytest.mark.parametrize("stream", [sys.stdout, io.StringIO()])
def test_unpicklable_stream_parameter(stream):
    stream.write("")


@pytest.mark.parametrize("lock", [LOCK])
def test_unpicklable_lock_parameter(lock):
    assert lock is LOCK  # the module's own lock, in the child's import of the module


@pytest.mark.parametrize("value", [SENTINEL, PIPE])
def test_identity_of_parameters(value):
    assert value is SENTINEL or value is PIPE


@pytest.mark.parametrize(("name", "value"), [("sentinel", SENTINEL), pytest.param("pipe", PIPE)])
def test_several_argnames_and_param(name, value):
    assert value is {"sentinel": SENTINEL, "pipe": PIPE}[name]


@pytest.mark.parametrize("value", [SENTINEL])
class TestParametrizedClass:
    def setup_method(self):
        self.ready = True

    def test_method(self, value):
        assert self.ready and value is SENTINEL

    @settings(max_examples=3, database=None)
    @given(st.booleans())
    def test_hypothesis_method(self, value, flag):
        assert value is SENTINEL and flag in (True, False)
