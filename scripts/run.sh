#!/usr/bin/env bash
# Builds Sluice (release) and runs it on examples/: tails this host's logs, prints JSON lines.
# Extra arguments go to `sluice run` (e.g. --log-level debug).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
swift build -c release --product sluice
DATA=/var/lib/sluice
[ -w /var/lib ] || DATA="$PWD/.sluice-data"
exec .build/release/sluice run --config-dir examples --data-dir "$DATA" "$@"
