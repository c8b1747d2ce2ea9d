#!/usr/bin/env bash
# Build the module and run the benchmark suite against gevent, asyncio and threads on every
# CPython found of 3.11, 3.12 and 3.13, then the million-tasklet run, the pickling benchmark
# and the line-echo server (10,000 connections; against uvloop and tealetio too), and write
# docs/benchmarks.md.
#
#   scripts/bench.sh                  full run (a few minutes per version)
#   scripts/bench.sh --smoke          tiny sizes, one run each, no report (what CI runs)
#   STACKLESS_PYTHONS="3.13" scripts/bench.sh   a subset
#
# Each version gets the virtual environment .venvs/bench-pyX.Y with gevent from PyPI and
# this package installed (a release build).
set -eu
cd "$(dirname "$0")/.."
repo=$(pwd)
smoke=0
[ "${1:-}" = --smoke ] && smoke=1
versions=${STACKLESS_PYTHONS-"3.11 3.12 3.13"}
out=$repo/build/bench
mkdir -p "$out"
rm -f "$out"/*.json "$out/million.txt" "$out"/pickling-*.txt "$out"/echo-*.txt

. "$repo/scripts/find-python.sh"

status=0
for v in $versions; do
    if ! py=$(find_python "$v"); then
        echo "error: Python $v not found" >&2
        status=1
        continue
    fi
    venv=$repo/.venvs/bench-py$v
    [ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -U pip setuptools wheel gevent
    "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-build-isolation --no-deps \
        --force-reinstall "$repo"
    echo "=== CPython $v"
    if [ $smoke = 1 ]; then
        "$venv/bin/python" bench/run.py --smoke || status=1
        "$venv/bin/python" bench/million.py 10000 || status=1
        "$venv/bin/python" bench/pickling.py 200 || status=1
    else
        "$venv/bin/python" bench/run.py --json "$out/py$v.json" || status=1
        "$venv/bin/python" bench/million.py | tee -a "$out/million.txt" || status=1
        "$venv/bin/python" bench/pickling.py | tee "$out/pickling-py$v.txt" || status=1
        # the echo server against gevent, asyncio, uvloop and tealetio (those that install)
        "$venv/bin/python" -m pip install -q --disable-pip-version-check uvloop tealetio \
            || echo "(uvloop or tealetio not installable for $v: their rows say so)"
        "$venv/bin/python" bench/echo.py | tee "$out/echo-py$v.txt" || status=1
    fi
done
if [ $smoke = 0 ] && ls "$out"/*.json >/dev/null 2>&1; then
    python3 bench/report.py docs/benchmarks.md "$out"/py*.json --million "$out/million.txt"
    {
        echo
        echo "## Pickling started tasklets (bench/pickling.py)"
        echo
        echo "No peer can pickle a suspended task; the suite has no Stackless 3.7.5 figures for"
        echo "this. Best of 5 runs."
        for f in "$out"/pickling-py*.txt; do
            echo
            cat "$f"
        done
        echo
        echo "## Line-echo server, 10,000 connections (bench/echo.py)"
        for f in "$out"/echo-py*.txt; do
            echo
            cat "$f"
        done
    } >> docs/benchmarks.md
    echo "wrote docs/benchmarks.md"
fi
exit $status
