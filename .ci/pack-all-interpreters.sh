#!/usr/bin/env bash
# The conformance pack on every interpreter of this machine, merged into one table.
#
#   .ci/pack-all-interpreters.sh prepare WORK           find the interpreters, make a fresh venv
#                                                       for each and `pip install .` into it
#   .ci/pack-all-interpreters.sh run WORK REPORTS       run the pack on each, one at a time,
#                                                       then merge the reports
#   .ci/pack-all-interpreters.sh all WORK REPORTS       both
#   .ci/pack-all-interpreters.sh add WORK PYTHON        after prepare: one more interpreter,
#                                                       for one that was not there yet (built)
#   .ci/pack-all-interpreters.sh ensure-pypy WORK       only PyPy's apt-get, if it is missing
#   .ci/pack-all-interpreters.sh ensure-chromium WORK   only chromium's apt-get (for the tests)
#
# Interpreters: $PYTHON (default python3), every CPython >= 3.9 under
# `$(pyenv root)/versions/*/bin/python3.X`, and PyPy (`pypy3`; installed with apt-get as
# root when missing). Older ones (2.7, 3.6-3.8) are skipped: the package needs 3.9.
# A free-threaded build (3.13t) runs the pack twice: as it starts, with the GIL off, and with
# PYTHON_GIL=1; each report records the GIL state, so they are two sets of columns.
#
# `prepare` installs in parallel (nothing is measured then); `run` runs the packs strictly
# in sequence, because the pack measures timings. Each interpreter gets its own copy of
# the source, since `pip install .` builds in the source tree and parallel builds in one
# tree would race. Exit status: 0 only if every interpreter installed, every pack run
# passed (pytest exit 0; exit 5, nothing collected, is a failure) and wrote its report,
# and the merged table has no unexpected verdict.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python3}
MIN_MINOR=9
PARALLEL_INSTALLS=${PARALLEL_INSTALLS:-3}

now() { date +%s; }
say() { printf '%s\n' "$*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo -n "$@"
    else
        say "cannot run as root (not root, no password-less sudo): $*"
        return 1
    fi
}

# One line about an interpreter: "<impl> <X.Y.Z> <minor> <t or -> <real executable>".
describe_interpreter() {
    "$1" -c 'import os, sys, sysconfig
impl = sys.implementation.name
ft = "t" if sysconfig.get_config_var("Py_GIL_DISABLED") else "-"
v = sys.version_info
print(impl, "%d.%d.%d" % v[:3], v[1] if v[0] == 3 else -1, ft, os.path.realpath(sys.executable))' \
        2>/dev/null
}

pyenv_root() {
    if command -v pyenv >/dev/null 2>&1; then
        pyenv root
    else
        printf '%s\n' "${PYENV_ROOT:-$HOME/.pyenv}"
    fi
}

# dpkg lets one apt-get at a time in, and apt-get fails at once when another holds the lock.
# So each check-and-install holds $WORK/apt.lock: a second caller waits, then finds the
# package there. Runs "$@" under the lock; WHAT names the package in the error.
with_apt_lock() {
    local work=$1 what=$2
    shift 2
    mkdir -p "$work" || return 1
    (
        if ! flock -w 900 9; then
            say "ERROR: $work/apt.lock still held after 15 minutes: $what's apt-get cannot run"
            exit 1
        fi
        "$@"
    ) 9>"$work/apt.lock"
}

# PyPy: present, or installed from the distribution (pypy3-dev has the headers psutil is
# built against). Prints why when it cannot. .ci/run calls this before its own apt-get,
# while prepare may call it too. An install that failed is not tried again in the same
# WORK: a second try could overlap the caller's next apt-get, and the first failure has
# said why already.
ensure_pypy() {
    with_apt_lock "$1" PyPy ensure_pypy_once "$1"
}

ensure_pypy_once() {
    if [ -e "$1/pypy-install.failed" ]; then
        say "ERROR: installing PyPy with apt-get failed earlier in this run (its output is"
        say "       in the log of the step that tried); the pack cannot run on PyPy"
        return 1
    fi
    ensure_pypy_locked || { touch "$1/pypy-install.failed"; return 1; }
}

ensure_pypy_locked() {
    local need=0
    command -v pypy3 >/dev/null 2>&1 || need=1
    if [ "$need" -eq 0 ] && command -v dpkg >/dev/null 2>&1 \
        && [ "$(readlink -f "$(command -v pypy3)")" = "$(readlink -f /usr/bin/pypy3 2>/dev/null)" ] \
        && ! dpkg -s pypy3-dev >/dev/null 2>&1; then
        need=1  # the distribution's PyPy without its headers: psutil would not build
    fi
    [ "$need" -eq 0 ] && return 0
    if ! command -v apt-get >/dev/null 2>&1; then
        say "ERROR: PyPy (pypy3) is missing and this machine has no apt-get to install it"
        return 1
    fi
    say "PyPy is missing: apt-get update && apt-get install -y pypy3 pypy3-dev"
    if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q \
        || ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q pypy3 pypy3-dev; then
        say "ERROR: installing PyPy with apt-get failed (see the apt-get output above);"
        say "       the pack cannot run on PyPy, so this run fails"
        return 1
    fi
    command -v pypy3 >/dev/null 2>&1 || { say "ERROR: apt-get ran but there is no pypy3"; return 1; }
}

# The browser tests/test_matrix_browser.py draws the matrix page in (Debian's chromium).
ensure_chromium() {
    with_apt_lock "$1" chromium ensure_chromium_locked
}

ensure_chromium_locked() {
    command -v chromium >/dev/null 2>&1 && return 0
    if ! command -v apt-get >/dev/null 2>&1; then
        say "ERROR: chromium is missing and this machine has no apt-get to install it"
        return 1
    fi
    say "chromium is missing: apt-get update && apt-get install -y chromium"
    if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q \
        || ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; then
        say "ERROR: installing chromium with apt-get failed (see the apt-get output above);"
        say "       the matrix page cannot be checked in a browser, so the tests fail"
        return 1
    fi
    command -v chromium >/dev/null 2>&1 || { say "ERROR: apt-get ran but there is no chromium"; return 1; }
}

# Fills $WORK/interpreters: "<slot> <tag> <python>" in run order (CPython by version, then
# PyPy). A slot is a directory $WORK/<slot> for the venv, the source copy and the logs.
discover() {
    local work=$1 root exe line impl version minor ft real seen=" " n=0
    local -a candidates=("$PYTHON")
    root=$(pyenv_root)
    if [ -d "$root/versions" ]; then
        for exe in "$root"/versions/*/bin/python3.*; do
            [[ $(basename "$exe") =~ ^python3\.[0-9]+t?$ ]] && candidates+=("$exe")
        done
    fi
    : >"$work/found"
    for exe in "${candidates[@]}"; do
        line=$(describe_interpreter "$exe") || { say "skipped $exe: does not run"; continue; }
        read -r impl version minor ft real <<<"$line"
        if [ "$impl" != cpython ] || [ "$minor" -lt "$MIN_MINOR" ]; then
            say "skipped $exe ($impl $version): the package needs CPython or PyPy >= 3.$MIN_MINOR"
            continue
        fi
        case "$seen" in *" $real "*) continue ;; esac
        seen="$seen$real "
        printf '%s %s-%s%s %s\n' "$version" "$impl" "$version" "${ft/-/}" "$real" >>"$work/found"
    done
    : >"$work/interpreters"
    while read -r _ tag exe; do
        n=$((n + 1))
        printf '%02d %s %s\n' "$n" "$tag" "$exe" >>"$work/interpreters"
    done < <(sort -V "$work/found")
    # PyPy last; it may still have to be installed, so its tag is known only after that.
    printf '%02d pypy3 pypy3\n' "$((n + 1))" >>"$work/interpreters"
}

# Make the slot's venv and install the package into it; records status and seconds.
prepare_one() {
    local work=$1 slot=$2 start
    mkdir -p "$work/$slot"
    start=$(now)
    install_into_slot "$@" >"$work/$slot/install.log" 2>&1
    echo "$?" >"$work/$slot/install.rc"
    echo $(($(now) - start)) >"$work/$slot/install.seconds"
}

install_into_slot() {
    local work=$1 slot=$2 tag=$3 python=$4 dir="$1/$2" line impl version minor ft real
    echo "install-failed" >"$dir/status"
    echo "$tag" >"$dir/tag"
    if [ "$python" = pypy3 ]; then
        ensure_pypy "$work" || return 1
        python=$(command -v pypy3)
        line=$(describe_interpreter "$python") || { say "ERROR: $python does not run"; return 1; }
        read -r impl version minor ft real <<<"$line"
        if [ "$minor" -lt "$MIN_MINOR" ]; then
            say "skipped $python ($impl $version): the package needs Python >= 3.$MIN_MINOR"
            echo "skipped" >"$dir/status"
            return 0
        fi
        tag="$impl-$version"
    fi
    echo "$tag" >"$dir/tag"
    say "--- $tag ($python): fresh venv, pip install ."
    mkdir -p "$dir/source"
    (cd "$ROOT" && tar -c --exclude='*.egg-info' --exclude=__pycache__ \
        pyproject.toml README.md src conformance) | tar -x -C "$dir/source" || return 1
    "$python" -m venv "$dir/venv" || return 1
    "$dir/venv/bin/python" -m pip install -q --progress-bar off "$dir/source" || return 1
    "$dir/venv/bin/python" -c 'import pytest_procthread, psutil, sys
print("installed in", sys.executable, "- psutil", psutil.__version__)' || return 1
    # $PYTHON's venv runs README (a) as written; the others run the installed pack (run_one).
    if [ "$(describe_interpreter "$python" | cut -d' ' -f5)" = "$(describe_interpreter "$PYTHON" | cut -d' ' -f5)" ]; then
        touch "$dir/readme-command"
    fi
    # A free-threaded build is run twice, GIL off and on (see run).
    if "$dir/venv/bin/python" -c 'import sys, sysconfig
sys.exit(0 if sysconfig.get_config_var("Py_GIL_DISABLED") else 1)'; then
        touch "$dir/free-threaded"
    fi
    echo "ready" >"$dir/status"
}

# After prepare: one more interpreter at the end of the run order, for one that did not exist
# when prepare ran (.ci/run builds the free-threaded CPython meanwhile). Nothing if it is
# in the run already.
add() {
    local work=$1 python=$2 line impl version minor ft real slot tag
    if [ ! -s "$work/interpreters" ]; then
        say "ERROR: $work has no interpreters: run prepare before add"
        return 1
    fi
    line=$(describe_interpreter "$python") || { say "ERROR: $python does not run"; return 1; }
    read -r impl version minor ft real <<<"$line"
    if [ "$impl" != cpython ] || [ "$minor" -lt "$MIN_MINOR" ]; then
        say "ERROR: $python ($impl $version): the package needs CPython >= 3.$MIN_MINOR"
        return 1
    fi
    if awk -v exe="$real" '$3 == exe { found = 1 } END { exit !found }' "$work/interpreters"; then
        say "$python ($real) is in the run already"
        return 0
    fi
    slot=$(printf '%02d' "$(($(wc -l <"$work/interpreters") + 1))")
    tag="$impl-$version${ft/-/}"
    printf '%s %s %s\n' "$slot" "$tag" "$real" >>"$work/interpreters"
    prepare_one "$work" "$slot" "$tag" "$real"
    grep -v "is ignored: it is neither a file nor a directory" "$work/$slot/install.log"
    say "    ($(cat "$work/$slot/install.seconds") s, $(cat "$work/$slot/status"))"
    [ "$(cat "$work/$slot/status")" = ready ]
}

prepare() {
    local work=$1 slot tag python start
    mkdir -p "$work"
    start=$(now)
    discover "$work"
    say "interpreters (run order):"
    sed 's/^/  /' "$work/interpreters"
    while read -r slot tag python; do
        while [ "$(jobs -rp | wc -l)" -ge "$PARALLEL_INSTALLS" ]; do wait -n; done
        prepare_one "$work" "$slot" "$tag" "$python" &
    done <"$work/interpreters"
    wait
    local failed=0
    while read -r slot _ _; do
        # (the environment's pip configuration may name index locations that do not exist)
        grep -v "is ignored: it is neither a file nor a directory" "$work/$slot/install.log"
        say "    ($(cat "$work/$slot/install.seconds") s, $(cat "$work/$slot/status"))"
        [ "$(cat "$work/$slot/status")" = install-failed ] && failed=1
    done <"$work/interpreters"
    say "prepare: $(($(now) - start)) s for every venv and install (in parallel)"
    return "$failed"
}

# One pack run of a slot's venv: its report, its line in the summary, $failed and $made.
# gil is "default" (PYTHON_GIL unset) or "on" (PYTHON_GIL=1, a free-threaded build only);
# on a free-threaded build the report must say that GIL state, or its columns would be
# named as the other run's.
run_one() {
    local work=$1 reports=$2 slot=$3 label=$4 gil=$5 python="$1/$3/venv/bin/python"
    local report="$2/$3-$4.json" rc start seconds result="passed" wanted recorded
    local -a env=(env -u PYTHON_GIL)
    [ "$gil" = on ] && env=(env PYTHON_GIL=1)
    say
    start=$(now)
    if [ -e "$work/$slot/readme-command" ]; then
        say "=== conformance pack on $label, README (a) from the checkout: ${env[*]} python -m pytest conformance/"
        (cd "$ROOT" && "${env[@]}" "$python" -m pytest conformance/ -p no:cacheprovider \
            "--procthread-report=$report")
        rc=$?
    else
        # As a user without a checkout runs it: the pack installed with the package, from a
        # directory that holds no copy of it.
        say "=== conformance pack on $label, the installed pack: ${env[*]} python -m pytest_procthread pack"
        (cd "$work/$slot" && "${env[@]}" "$python" -m pytest_procthread pack -p no:cacheprovider \
            "--procthread-report=$report")
        rc=$?
    fi
    seconds=$(($(now) - start))
    say "--- $label: pack took $seconds s, pytest exit $rc"
    if [ "$rc" -eq 5 ]; then
        result="FAILED: no test was collected (pytest exit 5)"
    elif [ "$rc" -ne 0 ]; then
        result="FAILED: pytest exit $rc"
    elif [ ! -s "$report" ]; then
        result="FAILED: no report written"
    elif [ -e "$work/$slot/free-threaded" ]; then
        wanted=False
        [ "$gil" = on ] && wanted=True
        recorded=$("$python" -c 'import json, sys
print(json.load(open(sys.argv[1], encoding="utf-8"))["runtime"]["gil_enabled"])' "$report")
        if [ "$recorded" != "$wanted" ]; then
            result="FAILED: the report says gil_enabled=$recorded, this run wanted $wanted"
        fi
    fi
    [ "$result" = passed ] || failed=1
    printf '%-20s %8s %8s  %s\n' "$label" "$(cat "$work/$slot/install.seconds")" "$seconds" \
        "$result" >>"$work/summary"
    [ -s "$report" ] && made+=("$report")
    return 0
}

run() {
    local work=$1 reports=$2 slot tag status rc failed=0 merger=""
    local -a made=()  # run_one adds to made and sets failed
    mkdir -p "$reports"
    # Absolute: the installed pack runs in another directory.
    reports=$(cd "$reports" && pwd)
    # Old reports would be merged too (or refused, from another pack version): start clean.
    # Each report is named <slot>-<tag>.json, so that `$reports/*.json` is in run order.
    rm -f "$reports"/*.json "$reports"/matrix.md "$reports"/matrix.html
    : >"$work/summary"
    while read -r slot _ _; do
        status=$(cat "$work/$slot/status" 2>/dev/null || echo "not-prepared")
        tag=$(cat "$work/$slot/tag" 2>/dev/null || echo "$slot")
        if [ "$status" = skipped ]; then
            continue
        elif [ "$status" != ready ]; then
            printf '%-20s %8s %8s  %s\n' "$tag" "-" "-" "FAILED: install ($status)" >>"$work/summary"
            failed=1
            continue
        fi
        # The environment's PYTHON_GIL would decide the GIL of a free-threaded build: unset
        # for its own default (off), then 1 for the second run, named <tag>-gil.
        run_one "$work" "$reports" "$slot" "$tag" default
        if [ -e "$work/$slot/free-threaded" ]; then
            run_one "$work" "$reports" "$slot" "$tag-gil" on
        fi
        [ -z "$merger" ] && merger="$work/$slot/venv/bin/python"
    done <"$work/interpreters"

    say
    say "=== per interpreter (seconds)"
    printf '%-20s %8s %8s  %s\n' interpreter install pack result
    cat "$work/summary"

    say
    say "=== merged: python -m pytest_procthread matrix ${#made[@]} reports --format markdown --fail-on-unexpected"
    if [ "${#made[@]}" -eq 0 ]; then
        say "FAILED: no report to merge"
        return 1
    fi
    "$merger" -m pytest_procthread matrix "${made[@]}" --format html -o "$reports/matrix.html"
    "$merger" -m pytest_procthread matrix "${made[@]}" --format markdown -o "$reports/matrix.md"
    "$merger" -m pytest_procthread matrix "${made[@]}" --format markdown --fail-on-unexpected
    rc=$?
    case "$rc" in
        0) ;;
        1) say "FAILED: the merged table has unexpected verdicts (in bold above)"; failed=1 ;;
        *) say "FAILED: the reports could not be merged (exit $rc)"; failed=1 ;;
    esac
    say "written: $reports/matrix.md, $reports/matrix.html and one JSON report per interpreter"
    return "$failed"
}

case "${1:-}" in
    prepare) [ $# -eq 2 ] || { say "usage: $0 prepare WORK"; exit 2; }
             prepare "$2" ;;
    run)     [ $# -eq 3 ] || { say "usage: $0 run WORK REPORTS"; exit 2; }
             run "$2" "$3" ;;
    all)     [ $# -eq 3 ] || { say "usage: $0 all WORK REPORTS"; exit 2; }
             prepare "$2"; p=$?
             run "$2" "$3"; r=$?
             [ "$p" -eq 0 ] && [ "$r" -eq 0 ] ;;
    add)     [ $# -eq 3 ] || { say "usage: $0 add WORK PYTHON"; exit 2; }
             add "$2" "$3" ;;
    ensure-pypy) [ $# -eq 2 ] || { say "usage: $0 ensure-pypy WORK"; exit 2; }
             ensure_pypy "$2" ;;
    ensure-chromium) [ $# -eq 2 ] || { say "usage: $0 ensure-chromium WORK"; exit 2; }
             ensure_chromium "$2" ;;
    *)       say "usage: $0 {prepare WORK | run WORK REPORTS | all WORK REPORTS | add WORK PYTHON | ensure-pypy WORK | ensure-chromium WORK}"
             exit 2 ;;
esac
