"""This plugin's own fixtures in the body of an isolated test: they work there as in a
plain run, under every start method."""

import os


def _echo(end):
    end.send(end.recv() + 1)


def _pid():
    return os.getpid()


def test_ipc_pipe_to_a_child_of_the_body(ipc_pipe, isolated_process):
    child = isolated_process.start(_echo, ipc_pipe.child)
    ipc_pipe.parent.send(1)
    assert ipc_pipe.parent.recv(timeout=30) == 2
    child.join(timeout=30).unwrap()


def test_ipc_pipe_within_the_body(ipc_pipe):
    ipc_pipe.parent.send("one way")
    assert ipc_pipe.child.recv(timeout=30) == "one way"
    ipc_pipe.child.send("and back")
    assert ipc_pipe.parent.recv(timeout=30) == "and back"


def test_isolated_process_starts_children_of_the_body(isolated_process):
    pids = {isolated_process.run(_pid).unwrap() for _ in range(2)}
    assert len(pids) == 2 and os.getpid() not in pids


def test_isolated_process_keeps_its_settings(isolated_process):
    assert isolated_process.options(timeout=7).timeout == 7
    assert isolated_process.start_method == os.environ["EXPECTED_START_METHOD"]


def test_a_child_left_running_ends_with_the_body(isolated_process, ipc_pipe):
    isolated_process.start(_echo, ipc_pipe.child)  # never answered, never joined


def test_sibling_thread(sibling_thread):
    assert sibling_thread.run(lambda: 5).unwrap() == 5
