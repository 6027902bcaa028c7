"""A failure in an isolated child reads as it would without isolation: pytest shows the
function's source from its first line, its arguments, its locals with ``-l``, the carets
under the failing expression (3.11+), chained exceptions, and hides what
``__tracebackhide__`` hides."""

from __future__ import annotations

import re

import pytest

from pytest_procthread.runtime import runtime_facts

pytestmark = pytest.mark.timeout(120)

SHAPES = '''
import os
import pytest

MODE = os.environ["SHAPES_MODE"]
if MODE != "none":
    pytestmark = pytest.mark.isolated(start_method=MODE)


def helper(x, *args, key=1, **kw):
    total = x + key
    return 1 / (total - total)


@pytest.mark.parametrize("n", [3])
def test_arguments_and_locals(n, tmp_path):
    numbers = list(range(100))
    helper(n, 2, key=3, extra="é")


def test_multiline_assert():
    value = {"a": 1}
    assert (
        value["a"]
        == 2
    )


def test_chained():
    try:
        {}["missing"]
    except KeyError as exc:
        raise ValueError("while handling") from exc


def test_lambda():
    f = lambda y: y.nope  # noqa: E731
    f(3)


def test_deep():
    def down(n):
        if n == 0:
            raise RuntimeError("bottom")
        down(n - 1)
    down(3)


def test_one_line_after_def():
    s = "naïve"; assert s.upper() == "NAÏVE!"


def test_hidden():
    __tracebackhide__ = True
    inner()


def inner():
    assert 1 == 2
'''

_VARYING = [
    (re.compile(r"0x[0-9a-fA-F]+"), "0x?"),
    (re.compile(r"pytest-\d+"), "pytest-N"),
    (re.compile(r"test_[a-z_]+?\d+"), "test_dir"),
    (re.compile(r"^=+ .*(passed|failed).* =+$", re.M), ""),
]


def failures(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, mode: str) -> str:
    pytester.makepyfile(test_shapes=SHAPES)
    monkeypatch.setenv("SHAPES_MODE", mode)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-l", "-rN", "--color=no")
    assert result.ret == 1, result.stdout.str()
    text = result.stdout.str()
    text = text[text.index("= FAILURES ="):]
    for pattern, replacement in _VARYING:
        text = pattern.sub(replacement, text)
    return text


@pytest.mark.parametrize("method", runtime_facts().start_methods)
def test_failure_reads_as_without_isolation(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    expected = failures(pytester, monkeypatch, "none")
    got = failures(pytester, monkeypatch, method)
    # The pieces that a bare frame loses, present in the plain run to begin with.
    for piece in ("def helper(x, *args, key=1, **kw):", "\nn = 3\n",
                  "x = 3, key = 3, args = (2,), kw = {'extra': 'é'}",
                  "numbers    = [0, 1, 2, 3, 4, 5, ...]", "total      = 6",
                  "y = 3", "s          = 'naïve'", "The above exception was the direct cause"):
        assert piece in expected, piece
    assert "def test_hidden():" not in expected and "def inner():" in expected
    assert got == expected
