"""Overhead of pytest-procthread's core against the raw standard-library equivalent.

Run it by hand (it is not a test):

    python benchmarks/bench_core.py [--rounds N] [--json out.json] [--only fork,ipc]

Every figure is a *paired* measurement: each round times our side and the raw side back to
back (the order alternates from round to round), so that whatever the machine is doing
at that moment weighs on both sides alike. The ratio reported is the median of the
per-round ratios ours/raw, with a distribution-free 95% confidence interval (order
statistics of the binomial distribution); the absolute times are the medians of each side.

Keep this module's top level light: ``spawn`` children re-import it (as ``__mp_main__``) and
the ``forkserver`` server preloads it, on both sides of every comparison. That is why
pytest_procthread itself is only imported inside functions: its import cost must stay on
our side of the comparison, where a real child pays it.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import time
from typing import Any, Callable

# A small message: a tuple of the usual scalar kinds, as a test would send.
MESSAGE = ("ping", 12345, 3.5, b"0123456789abcdef")

GOAL_PROCESS = 1.3
GOAL_THREAD = 1.5
GOAL_IPC = 1.2

THREAD_BATCH = 100  # thread runs per side and round: one run is ~100 us, below timer noise
IPC_BATCH = 300  # round trips per side and round
WARMUP = 3


def noop() -> None:
    """The target of every process and thread started here."""


# -- echo children of the IPC benchmark (module level, so spawn can find them) ------------

def _pin(cpus: set[int] | None) -> None:
    if cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cpus)


def echo_raw(conn: Any, cpus: set[int] | None = None) -> None:
    _pin(cpus)
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        conn.send(message)


def echo_ours(end: Any, cpus: set[int] | None = None) -> None:
    _pin(cpus)
    while True:
        try:
            message = end.recv()
        except EOFError:
            return
        if message is None:
            return
        end.send(message)


# -- statistics ------------------------------------------------------------------------

def median(values: list[float]) -> float:
    xs = sorted(values)
    n = len(xs)
    mid = n // 2
    return xs[mid] if n % 2 else (xs[mid - 1] + xs[mid]) / 2


def median_ci(values: list[float], confidence: float = 0.95) -> tuple[float, float]:
    """Distribution-free CI of the median: [x_(k), x_(n-k+1)] with the largest k such that
    P(Bin(n, 1/2) <= k-1) <= (1-confidence)/2. Exact, no resampling."""
    import math

    xs = sorted(values)
    n = len(xs)
    half_alpha = (1.0 - confidence) / 2
    total = 2 ** n
    cdf = 0
    k = 1
    for j in range(n + 1):
        cdf += math.comb(n, j)
        if cdf / total > half_alpha:
            break
        k = j + 1  # P(B <= j) <= alpha/2: [x_(j+1), x_(n-j)] (1-indexed) still covers
    k = min(k, (n + 1) // 2)
    return xs[k - 1], xs[n - k]


def paired(ours: Callable[[], None], raw: Callable[[], None], rounds: int,
           batch: int = 1) -> tuple[list[float], list[float]]:
    """Time ``ours`` and ``raw`` ``rounds`` times each, interleaved, ``batch`` calls per
    sample; returns per-call seconds of each side, paired by round."""
    clock = time.perf_counter
    ours_s: list[float] = []
    raw_s: list[float] = []
    for _ in range(WARMUP):
        ours()
        raw()
    for i in range(rounds):
        order = ((ours, ours_s), (raw, raw_s)) if i % 2 == 0 else ((raw, raw_s), (ours, ours_s))
        for fn, sink in order:
            t0 = clock()
            for _ in range(batch):
                fn()
            sink.append((clock() - t0) / batch)
    return ours_s, raw_s


def summarize(name: str, goal: float, ours_s: list[float], raw_s: list[float],
              batch: int, note: str = "") -> dict[str, Any]:
    ratios = [o / r for o, r in zip(ours_s, raw_s)]
    ratio = median(ratios)
    low, high = median_ci(ratios)
    if high <= goal:
        verdict = "PASS"
    elif low > goal:
        verdict = "MISS"
    else:  # the interval straddles the goal: decide on the median, flag it
        verdict = ("PASS" if ratio <= goal else "MISS") + "?"
    return {
        "name": name, "goal": goal, "rounds": len(ratios), "batch": batch, "note": note,
        "ours_median_s": median(ours_s), "raw_median_s": median(raw_s),
        "ratio_median": ratio, "ratio_ci95": [low, high], "verdict": verdict,
        "ours_s": ours_s, "raw_s": raw_s, "ratios": ratios,
    }


# -- benchmarks ------------------------------------------------------------------------

def bench_process(method: str, rounds: int) -> dict[str, Any]:
    from pytest_procthread.process import ProcessRunner

    ctx: Any = multiprocessing.get_context(method)

    def ours() -> None:
        # What the isolated_process fixture does for one test: make, run, close.
        runner = ProcessRunner(start_method=method)
        try:
            outcome = runner.run(noop)
        finally:
            runner.close()
        if not outcome.returned:
            raise RuntimeError(f"our {method} child failed: {outcome!r}")

    def raw() -> None:
        process = ctx.Process(target=noop)
        process.start()
        process.join()
        if process.exitcode != 0:
            raise RuntimeError(f"raw {method} child exited with {process.exitcode}")
        process.close()

    ours_s, raw_s = paired(ours, raw, rounds)
    return summarize(f"process {method}", GOAL_PROCESS, ours_s, raw_s, 1,
                     "ProcessRunner(m).run(noop)+close vs ctx.Process start+join")


def bench_thread(rounds: int) -> dict[str, Any]:
    from pytest_procthread.thread import ThreadRunner

    def ours() -> None:
        runner = ThreadRunner()
        outcome = runner.run(noop)
        runner.close()
        if not outcome.returned:
            raise RuntimeError(f"our thread failed: {outcome!r}")

    def raw() -> None:
        thread = threading.Thread(target=noop)
        thread.start()
        thread.join()

    ours_s, raw_s = paired(ours, raw, rounds, THREAD_BATCH)
    return summarize("thread", GOAL_THREAD, ours_s, raw_s, THREAD_BATCH,
                     "ThreadRunner().run(noop)+close vs Thread start+join")


def _ipc_cpus(pin: bool) -> tuple[set[int] | None, set[int] | None]:
    """(parent CPUs, echo CPUs) for the IPC benchmark: one and the same CPU for this
    process and both echo children. Unpinned, the scheduler now and then leaves one
    side's echo on the other CPU, and a wake-up across CPUs costs 60-140 us in a VM
    against ~5 us on one CPU: that alone made one side 4-7x slower for whole runs. On one
    CPU both sides get the placement that a ping-pong normally gets anyway."""
    if not pin or not hasattr(os, "sched_getaffinity"):
        return None, None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return {cpus[0]}, {cpus[0]}


def bench_ipc(rounds: int, method: str, pin: bool = True) -> dict[str, Any]:
    from pytest_procthread.ipc import IpcPipe

    ctx: Any = multiprocessing.get_context(method)
    parent_cpus, echo_cpus = _ipc_cpus(pin)
    # Raw side first, so that its echo child inherits nothing of ours.
    raw_parent, raw_child = ctx.Pipe(duplex=True)
    raw_echo = ctx.Process(target=echo_raw, args=(raw_child, echo_cpus), name="bench-echo-raw")
    raw_echo.start()
    raw_child.close()

    pipe = IpcPipe(timeout=3600.0, name="bench")
    ours_echo = ctx.Process(target=echo_ours, args=(pipe.child, echo_cpus),
                            name="bench-echo-ours")
    ours_echo.start()
    pipe.child.close()  # what ProcessRunner.start does after handing the end over
    end = pipe.parent

    def ours() -> None:
        end.send(MESSAGE)
        if end.recv() != MESSAGE:
            raise RuntimeError("our echo answered something else")

    def raw() -> None:
        raw_parent.send(MESSAGE)
        if raw_parent.recv() != MESSAGE:
            raise RuntimeError("raw echo answered something else")

    saved_cpus = os.sched_getaffinity(0) if parent_cpus else None
    try:
        if parent_cpus:
            os.sched_setaffinity(0, parent_cpus)
        ours_s, raw_s = paired(ours, raw, rounds, IPC_BATCH)
    finally:
        if saved_cpus:
            os.sched_setaffinity(0, saved_cpus)
        end.send(None)
        raw_parent.send(None)
        ours_echo.join(10)
        raw_echo.join(10)
        pipe.close()
        raw_parent.close()
    pinned = f", test and echoes pinned to CPU {sorted(parent_cpus)[0]}" if parent_cpus else ""
    return summarize("ipc round trip", GOAL_IPC, ours_s, raw_s, IPC_BATCH,
                     f"IpcPipe vs mp.Pipe, echo in a {method} child, message {MESSAGE!r}"
                     f"{pinned}")


# -- report ----------------------------------------------------------------------------

def fmt_time(seconds: float) -> str:
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} us"


def header(rounds: int) -> dict[str, Any]:
    import importlib.util
    import platform

    import pytest_procthread
    import pytest_procthread.child.main as child
    from pytest_procthread.runtime import runtime_facts

    try:
        cached = os.path.exists(importlib.util.cache_from_source(child.__file__))
    except (NotImplementedError, ValueError):
        cached = False
    return {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "executable": sys.executable,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "affinity_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "start_methods": multiprocessing.get_all_start_methods(),
        "default_start_method": runtime_facts().default_start_method,
        "pytest_procthread": pytest_procthread.__version__,
        "rounds": rounds,
        "thread_batch": THREAD_BATCH,
        "ipc_batch": IPC_BATCH,
        # Without .pyc files our modules are compiled from source in every spawn and
        # forkserver child (several ms each): an installed wheel has them, an editable
        # install under PYTHONDONTWRITEBYTECODE=1 does not.
        "dont_write_bytecode": sys.dont_write_bytecode,
        "pycache_prefix": getattr(sys, "pycache_prefix", None),
        "package_pyc_cached": cached,
        "package_dir": os.path.dirname(pytest_procthread.__file__),
    }


def print_report(head: dict[str, Any], results: list[dict[str, Any]], elapsed: float) -> None:
    print(f"pytest-procthread {head['pytest_procthread']} core overhead -- "
          f"{head['python']} on {head['platform']}, {head['cpus']} CPUs")
    print(f"start methods: {', '.join(head['start_methods'])} "
          f"(default {head['default_start_method']}); {head['rounds']} paired rounds each; "
          f"thread x{head['thread_batch']}, ipc x{head['ipc_batch']} calls per sample")
    print(f"package: {head['package_dir']}; bytecode cache of our modules: "
          + ("yes" if head["package_pyc_cached"] else "NO")
          + (" (PYTHONDONTWRITEBYTECODE is set: spawn/forkserver children compile our modules "
             "from source every time)" if head["dont_write_bytecode"] else ""))
    rows = [("benchmark", "ours median", "raw median", "ratio median [95% CI]", "goal", "result")]
    for r in results:
        low, high = r["ratio_ci95"]
        rows.append((
            r["name"], fmt_time(r["ours_median_s"]), fmt_time(r["raw_median_s"]),
            f"{r['ratio_median']:.2f}x [{low:.2f}, {high:.2f}]", f"<= {r['goal']:.1f}x",
            r["verdict"],
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:-1], widths[1:-1])]
        print("  ".join([*cells, row[-1]]))
        if n == 0:
            print("  ".join("-" * w for w in widths))
    print(f"(ratio = median of per-round ours/raw; '?' = the CI straddles the goal; "
          f"total {elapsed:.1f} s)")
    for r in results:
        print(f"  {r['name']}: {r['note']}")


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=200,
                        help="paired samples per benchmark (default 200: ~35 s in all on 2 cores)")
    parser.add_argument("--json", metavar="PATH", help="also write every sample as JSON")
    parser.add_argument("--no-pin", action="store_true",
                        help="do not pin the ipc benchmark's processes to one CPU")
    parser.add_argument("--only", metavar="NAMES", default="",
                        help="comma-separated subset of: fork, forkserver, spawn, thread, ipc")
    args = parser.parse_args(argv)
    if args.rounds < 6:
        parser.error("--rounds must be at least 6 for a 95%% interval")
    wanted = {w.strip() for w in args.only.split(",") if w.strip()}
    unknown = wanted - {"fork", "forkserver", "spawn", "thread", "ipc"}
    if unknown:
        parser.error(f"--only: unknown benchmark(s) {', '.join(sorted(unknown))}")

    def selected(name: str) -> bool:
        return not wanted or name in wanted

    started = time.perf_counter()
    head = header(args.rounds)
    results: list[dict[str, Any]] = []
    methods = [m for m in ("fork", "forkserver", "spawn") if m in head["start_methods"]]
    for method in methods:
        if selected(method):
            print(f"... process {method}", file=sys.stderr, flush=True)
            results.append(bench_process(method, args.rounds))
    if selected("thread"):
        print("... thread", file=sys.stderr, flush=True)
        results.append(bench_thread(args.rounds))
    if selected("ipc"):
        print("... ipc", file=sys.stderr, flush=True)
        echo_method = "fork" if "fork" in head["start_methods"] else "spawn"
        results.append(bench_ipc(args.rounds, echo_method, pin=not args.no_pin))
    elapsed = time.perf_counter() - started
    print_report(head, results, elapsed)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"header": head, "elapsed_s": elapsed, "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
