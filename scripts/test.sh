#!/usr/bin/env bash
# Build the extension and run the whole test suite on every supported CPython.
#
#   scripts/test.sh                          3.11-3.15 and the extra lanes below; fails if
#                                            one is missing
#   STACKLESS_PYTHONS="3.12" STACKLESS_SID_PYTHONS="" scripts/test.sh   a subset
#
# For each version it makes (or reuses) the virtual environment .venvs/pyX.Y, installs pip,
# setuptools and pytest there, builds and installs this package with pip, and runs pytest
# over tests/ (which includes the seed examples and conformance probes of ../shared). Then
# the debug build (-O0 -g, C assertions on) runs the suite once more on the newest version,
# again under valgrind's memcheck (the tests that run in the pytest process; programs the
# tests start as subprocesses run natively), and built with AddressSanitizer (subprocesses
# too). STACKLESS_SKIP_DEBUG=1 leaves these three lanes out. Last, the extension is cross-
# compiled for AArch64, and the benchmark suite makes a smoke run (scripts/bench.sh --smoke).
# The pickle fuzz lane loads 10,000 mutated pickles of started tasklets with the ASan build,
# and again under each Debian debug interpreter (STACKLESS_FUZZ_CASES changes the count; the
# seed is the time, printed on a failure).
#
# CPython 3.14 and 3.15 come from Debian unstable: scripts/sid-root.sh makes (once) a
# minimal root in chroot/sid with their release and debug interpreters, the tree is copied
# into it, and this script runs there again (STACKLESS_IN_SID=1) with one lane per release
# interpreter and one per debug interpreter (python3.X-dbg, C assertions of the interpreter
# and of the extension's debug build). Exit status 0 only if every lane passed.
set -u
cd "$(dirname "$0")/.."
repo=$(pwd)
in_sid=${STACKLESS_IN_SID:-0}
if [ "$in_sid" = 1 ]; then
    versions=${STACKLESS_PYTHONS-"3.14 3.15"}
    venvs=/stackless/venvs
else
    versions=${STACKLESS_PYTHONS-"3.11 3.12 3.13"}
    venvs=$repo/.venvs
fi
sid_versions=${STACKLESS_SID_PYTHONS-"3.14 3.15"}
shared=${STACKLESS_SHARED:-$repo/../shared}
export STACKLESS_SHARED=$shared

if [ ! -d "$shared/seed-examples" ] || [ ! -d "$shared/conformance" ]; then
    echo "error: $shared (seed examples, conformance probes) not found; set STACKLESS_SHARED" >&2
    exit 2
fi

. "$repo/scripts/find-python.sh"

# lane NAME PYTHON VENV [ENV...]: build, install and test in one virtual environment
lane() {
    local name=$1 py=$2 venv=$3
    shift 3
    echo "=== $name: $("$py" -VV | head -1)"
    if [ ! -x "$venv/bin/python" ]; then
        "$py" -m venv "$venv" || return 1
    fi
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -U pip setuptools wheel pytest || return 1
    if [ "$#" = 0 ]; then
        # release lanes: Dask for the tests of stackless.migrate.run_on_dask (they skip
        # where it cannot be installed: no wheels of its dependencies for that Python)
        "$venv/bin/python" -m pip install -q --disable-pip-version-check distributed \
            || echo "(dask.distributed not installed for $name: its tests skip)"
    fi
    env "$@" "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-build-isolation \
        --no-deps --force-reinstall "$repo" || return 1
    # run from outside the tree so that the installed package is what gets imported
    (cd "$venv" && env "$@" $RUNNER "$venv/bin/python" -m pytest -q -p no:cacheprovider "$repo/tests")
}
RUNNER=""

status=0
results=()
newest=""
for v in $versions; do
    if ! py=$(find_python "$v"); then
        echo "error: Python $v not found (pyenv versions or python$v on PATH)" >&2
        results+=("$v: MISSING")
        status=1
        continue
    fi
    newest=$py
    if lane "CPython $v" "$py" "$venvs/py$v"; then
        results+=("$v: passed")
    else
        results+=("$v: FAILED")
        status=1
    fi
    if [ "$in_sid" = 1 ]; then
        # Debian's debug interpreter: its own ABI (d), so its own build of the extension
        if dbg=$(command -v "python$v-dbg"); then
            if lane "CPython $v debug interpreter, debug build of the extension" "$dbg" \
                "$venvs/py$v-dbg" STACKLESS_DEBUG=1; then
                results+=("$v debug interpreter: passed")
                # the interpreter's own assertions watch the pickle fuzz here
                fuzz_cases=${STACKLESS_FUZZ_CASES:-10000}
                echo "=== pickle fuzz: $fuzz_cases cases, CPython $v debug interpreter"
                if (cd "$venvs/py$v-dbg" && "$venvs/py$v-dbg/bin/python" \
                    "$repo/tests/fuzz_pickles.py" "$fuzz_cases" "$(date +%s)"); then
                    results+=("$v debug interpreter pickle fuzz ($fuzz_cases cases): passed")
                else
                    results+=("$v debug interpreter pickle fuzz ($fuzz_cases cases): FAILED")
                    status=1
                fi
            else
                results+=("$v debug interpreter: FAILED")
                status=1
            fi
        else
            results+=("$v debug interpreter: MISSING (python$v-dbg)")
            status=1
        fi
    fi
done

if [ "$in_sid" = 1 ]; then
    echo
    echo "=== summary (Debian unstable root)"
    printf '  %s\n' "${results[@]}"
    exit $status
fi

if [ -n "$newest" ] && [ "${STACKLESS_SKIP_DEBUG:-0}" != 1 ]; then
    v=$("$newest" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    if lane "CPython $v, debug build of the extension" "$newest" "$repo/.venvs/py$v-debug" STACKLESS_DEBUG=1; then
        results+=("$v debug build: passed")
    else
        results+=("$v debug build: FAILED")
        status=1
    fi
    asan=$(gcc -print-file-name=libasan.so)
    if [ -f "$asan" ]; then
        if lane "CPython $v, AddressSanitizer build" "$newest" "$repo/.venvs/py$v-asan" \
            STACKLESS_ASAN=1 PYTHONMALLOC=malloc LD_PRELOAD="$asan" \
            ASAN_OPTIONS=detect_leaks=0:detect_stack_use_after_return=0; then
            results+=("$v AddressSanitizer build: passed")
        else
            results+=("$v AddressSanitizer build: FAILED")
            status=1
        fi
        # the pickle fuzz lane: mutated pickles of started tasklets must raise or run
        fuzz_cases=${STACKLESS_FUZZ_CASES:-10000}
        echo "=== pickle fuzz: $fuzz_cases cases, AddressSanitizer build on CPython $v"
        if (cd "$repo/.venvs/py$v-asan" && env PYTHONMALLOC=malloc LD_PRELOAD="$asan" \
            ASAN_OPTIONS=detect_leaks=0:detect_stack_use_after_return=0:allocator_may_return_null=1:max_allocation_size_mb=2048 \
            "$repo/.venvs/py$v-asan/bin/python" "$repo/tests/fuzz_pickles.py" "$fuzz_cases" \
            "$(date +%s)"); then
            results+=("$v pickle fuzz ($fuzz_cases cases, ASan): passed")
        else
            results+=("$v pickle fuzz ($fuzz_cases cases, ASan): FAILED")
            status=1
        fi
    else
        results+=("AddressSanitizer runtime: MISSING (gcc's libasan)")
        status=1
    fi
    if true; then
        if ! command -v valgrind >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
            apt-get install -y -q valgrind >/dev/null 2>&1 || true
        fi
        if command -v valgrind >/dev/null; then
            RUNNER="valgrind -q --error-exitcode=99 --leak-check=no"
            if lane "CPython $v, debug build under valgrind" "$newest" "$repo/.venvs/py$v-debug" \
                STACKLESS_DEBUG=1 PYTHONMALLOC=malloc; then
                results+=("$v debug build under valgrind: passed")
            else
                results+=("$v debug build under valgrind: FAILED")
                status=1
            fi
            RUNNER=""
        else
            results+=("valgrind: MISSING (install Debian's valgrind)")
            status=1
        fi
    fi
fi

if [ -n "$newest" ]; then
    echo "=== AArch64 cross-compile check"
    if scripts/cross-check-aarch64.sh "$newest"; then
        results+=("aarch64 cross build: passed")
    else
        results+=("aarch64 cross build: FAILED")
        status=1
    fi
fi

if [ -n "$newest" ]; then
    # keeps the benchmark suite alive: tiny sizes, one run, no assertion on time
    v=$("$newest" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    echo "=== benchmark smoke run (CPython $v)"
    if STACKLESS_PYTHONS="$v" scripts/bench.sh --smoke; then
        results+=("$v benchmark smoke run: passed")
    else
        results+=("$v benchmark smoke run: FAILED")
        status=1
    fi
fi

if [ -n "$sid_versions" ]; then
    echo "=== CPython $sid_versions in a Debian unstable root (chroot/sid)"
    sid_start=$(date +%s)
    if scripts/sid-root.sh; then
        # a copy, not a bind mount: removing the root can then never reach the tree
        sid=$repo/chroot/sid
        rm -rf "$sid/stackless/main" "$sid/stackless/shared"
        mkdir -p "$sid/stackless/main" "$sid/stackless/shared"
        tar -C "$repo" --exclude=./.git --exclude=./.venvs --exclude=./build --exclude=./chroot \
            --exclude='*.so' -cf - . | tar -C "$sid/stackless/main" -xf -
        tar -C "$shared" -cf - . | tar -C "$sid/stackless/shared" -xf -
        if scripts/sid-root.sh --run env STACKLESS_IN_SID=1 STACKLESS_PYTHONS="$sid_versions" \
            STACKLESS_SHARED=/stackless/shared bash /stackless/main/scripts/test.sh; then
            results+=("$sid_versions (release and debug interpreters): passed")
        else
            results+=("$sid_versions (release and debug interpreters): FAILED")
            status=1
        fi
    else
        results+=("Debian unstable root for $sid_versions: FAILED to make (see chroot/sid.log)")
        status=1
    fi
    echo "(Debian unstable lane: $(($(date +%s) - sid_start)) s including setting up the root)"
fi

echo
echo "=== summary"
printf '  %s\n' "${results[@]}"
exit $status
