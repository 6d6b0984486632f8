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
# One test at a time: several suites start real daemons and measure latencies on 2 cores.
swift test "${SCRATCH[@]}" --skip-build --no-parallel "$@"
