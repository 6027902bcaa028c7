"""Fixtures that patch the test process with ``monkeypatch``: a fresh child sees the same."""

import json
import sys
import types

import pytest

SETTINGS = {"mode": "real"}
CONFIG = types.SimpleNamespace(level=1)


@pytest.fixture
def patched(monkeypatch):
    monkeypatch.setattr(json, "dumps", lambda value, **kw: "patched")  # a module, a lambda
    monkeypatch.setattr(CONFIG, "level", 5)  # an object that a module holds
    monkeypatch.setitem(SETTINGS, "mode", "test")  # a mapping that a module holds
    monkeypatch.delattr(json, "JSONDecodeError")
    stand_in = types.ModuleType("made_up_module")
    stand_in.answer = 42
    monkeypatch.setitem(sys.modules, "made_up_module", stand_in)
    return stand_in


def test_sees_every_patch(patched, monkeypatch):
    assert json.dumps({}) == "patched"
    assert CONFIG.level == 5 and SETTINGS["mode"] == "test"
    assert not hasattr(json, "JSONDecodeError")
    import made_up_module

    assert made_up_module.answer == 42 and patched.answer == 42
    monkeypatch.setattr(CONFIG, "level", 6)  # the body's own monkeypatch works too
    assert CONFIG.level == 6
