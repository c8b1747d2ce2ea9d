#!/usr/bin/env bash
# Build the extension for the newest supported CPython found, then run a few of our users'
# seed programs (from ../shared/seed-examples, when present), examples/demo.py, which
# ends with a 100,000-tasklet run, and examples/checkpoint_demo.py (pickling).
set -eu
cd "$(dirname "$0")/.."
repo=$(pwd)
shared=${STACKLESS_SHARED:-$repo/../shared}
root=${PYENV_ROOT:-$HOME/.pyenv}
py=""
for v in 3.15 3.14 3.13 3.12 3.11; do
    for p in "$root"/versions/"$v".*/bin/python"$v" "$(command -v "python$v" 2>/dev/null)"; do
        if [ -n "$p" ] && [ -x "$p" ] && "$p" -c 'import sysconfig, sys; sys.exit(not sysconfig.get_config_h_filename())' 2>/dev/null; then
            py=$p
            break 2
        fi
    done
done
[ -n "$py" ] || { echo "error: no CPython 3.11-3.15 with headers found" >&2; exit 1; }
v=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
venv=$repo/.venvs/py$v
[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
echo "=== building stackless for $("$py" -V)"
"$venv/bin/python" -m pip install -q --disable-pip-version-check -U pip setuptools wheel
"$venv/bin/python" -m pip install -q --disable-pip-version-check --no-build-isolation --no-deps \
    --force-reinstall "$repo"

if [ -d "$shared/seed-examples" ]; then
    out=$(mktemp)
    trap 'rm -f "$out"' EXIT
    for name in hello round_robin cooperative producer_consumer bots; do
        echo
        echo "=== seed example $name.py"
        (cd "$shared/seed-examples" && "$venv/bin/python" "$name.py" | tee "$out")
        if cmp -s "$out" "$shared/seed-examples/$name.expected"; then
            echo "    (identical to what Stackless Python 3.7.5 printed)"
        else
            echo "    (DIFFERS from what Stackless Python 3.7.5 printed)"; exit 1
        fi
    done
fi
echo
echo "=== examples/demo.py"
cd "${TMPDIR:-/tmp}" # run outside the source tree, so the installed package is imported
"$venv/bin/python" "$repo/examples/demo.py"

echo
echo "=== examples/checkpoint_demo.py: pickled tasklets survive SIGKILL and move to Dask"
"$venv/bin/python" -m pip install -q --disable-pip-version-check distributed \
    || echo "(dask.distributed could not be installed: its step is skipped)"
"$venv/bin/python" "$repo/examples/checkpoint_demo.py"
