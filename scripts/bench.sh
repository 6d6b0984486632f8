#!/usr/bin/env bash
# Builds sluice and sluice-bench in release mode, then runs the benchmark against the real binary
# (sluice-bench finds `sluice` next to itself in .build/release).
# Usage: scripts/bench.sh [sluice-bench options]      (scripts/bench.sh --help lists them)
#   e.g. scripts/bench.sh --size-mib 512 --scenario plain-file --scenario many-files
#        scripts/bench.sh --scenario docker-json --scenario cri   (runtime logs through ContainerLogFormat)
# Scenarios: plain-file, plain-blackhole, many-files, docker-json, cri (default: all of them).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
swift build -c release --product sluice
swift build -c release --product sluice-bench
exec .build/release/sluice-bench "$@"
