#!/usr/bin/env bash
# Runs the whole test suite: installs what is missing, builds, runs unit, integration and
# end-to-end tests (the real sluice binary against real files).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
# Keep SwiftPM's build folder outside the clone in CI so repeated runs on one machine reuse it.
SCRATCH=()
if [ "${CI:-}" = "true" ]; then SCRATCH=(--scratch-path /var/tmp/sluice-ci-build); fi
swift build "${SCRATCH[@]}" --build-tests

# A hang must fail the run with its cause, not stall it: the tests' output is line-buffered (so
# the log ends at the test that hangs), and past SLUICE_TEST_TIMEOUT_MIN minutes (default 40; the
# suite takes about 15) the test process's thread stacks are printed (gdb) and it is killed.
watchdog() {
    local end=$(( SECONDS + $1 ))
    # Short sleeps: once the watchdog is killed, nothing of it outlives the run by more than 5 s.
    while [ "$SECONDS" -lt "$end" ]; do sleep 5 >/dev/null 2>&1 </dev/null; done
    echo "scripts/test.sh: the tests are still running after $1 s; thread stacks of the test process follow." >&2
    for p in $(pgrep -f 'sluicePackageTests.xctest' || true); do
        if command -v gdb >/dev/null; then
            gdb -p "$p" -batch -ex 'thread apply all bt 40' </dev/null 2>&1 | grep -v -e '^\[New LWP' -e '^warning:' >&2 || true
        fi
        kill -9 "$p" 2>/dev/null || true
    done
}
watchdog "$(( ${SLUICE_TEST_TIMEOUT_MIN:-40} * 60 ))" &
WATCHDOG=$!
# One test at a time: several suites start real daemons and measure latencies on 2 cores.
rc=0
stdbuf -oL -eL swift test "${SCRATCH[@]}" --skip-build --no-parallel "$@" || rc=$?
kill "$WATCHDOG" 2>/dev/null || true
exit "$rc"
