"""What runs in a child process, from its first statement to its exit.

``main.child_main`` is the whole sequence; the other modules are its steps: the spec it
is given and what it knows of itself (``spec``), its output and crash handlers
(``stdio``), how it ends with its parent (``lifeline``), multiprocessing's state in a
child made by ``os.fork`` (``mpstate``), assertion rewriting in a fresh interpreter
(``rewrite``), the warm template's serving loop (``template``), the warden's program
(``warden_program``), the descriptors a fork child must not keep (``fdguard``), and a
fork without the at-fork hooks that would change nothing (``forkhooks``), for every
process of ours that forks.

These modules import the standard library and ``pytest_procthread.wire`` only: under
``spawn`` every import is paid again by every child, and a fork child must run no import
statement at all (each one walks the import system, whose writes copy memory pages).
"""
