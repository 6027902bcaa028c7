"""Module and class state that the test process's setups made, and a conftest's import."""

import email
import unittest

STATE = {}


def setup_module(module):
    module.STATE["module"] = "set up"


class TestXunitClass:
    def setup_class(cls):
        cls.table = {"BRST": -10800}

    def setup_method(self):
        self.ready = True

    def test_sees_the_class_and_module_set_up(self):
        assert self.ready and self.table == {"BRST": -10800}
        assert STATE == {"module": "set up"}


class TestCaseWithXunitSetUp(unittest.TestCase):
    @classmethod
    def setup_class(cls):  # pytest's name, on a unittest class (as python-dateutil has it)
        cls.default = 2003

    def test_sees_it(self):
        self.assertEqual(self.default, 2003)


def test_uses_what_the_conftest_imported():
    assert email.mime.text.MIMEText("x").get_payload() == "x"
