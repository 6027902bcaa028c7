"""unittest.TestCase classes, isolated as their call phase: setUp, the method, tearDown."""

import os
import unittest

STATE = []
PARENT = os.getpid()


def setUpModule():
    STATE.append("module set up")


class Cases(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.shared = "class state"

    def setUp(self):
        self.value = 7

    def test_runs_in_a_child(self):
        assert os.getpid() != PARENT

    def test_1_has_its_set_up_and_damages_the_state(self):
        assert self.value == 7 and self.shared == "class state"
        assert "module set up" in STATE
        STATE.append("damage")

    def test_2_damage_stays_in_its_child(self):
        assert "damage" not in STATE

    def test_failure(self):
        self.assertEqual(1, 2)

    def test_error(self):
        raise KeyError("boom")

    @unittest.skip("not now")
    def test_skipped(self):
        pass

    def test_skip_inside(self):
        self.skipTest("inside")

    @unittest.expectedFailure
    def test_expected_failure(self):
        raise AssertionError("expected to fail")

    @unittest.expectedFailure
    def test_unexpected_success(self):
        pass

    def test_crash(self):
        os.abort()


@unittest.skip("the whole class")
class SkippedCases(unittest.TestCase):
    def test_a(self):
        pass
