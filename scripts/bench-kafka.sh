#!/usr/bin/env bash
# Plain lines -> flusher_kafka_v2 -> noida-db's Kafka (and, with --fluent-bit, Fluent Bit's tail ->
# out_kafka on the same input): wall time from handing over the input until every line is in the
# topic (kcat -Q), the collector's CPU seconds and peak RSS, the broker's CPU seconds.
# Usage: scripts/bench-kafka.sh [--sluice BIN] [--fluent-bit BIN] [--lines N] [--codec none|gzip|snappy|lz4|zstd]
# Default BIN: .build/release/sluice (build it with: swift build -c release --product sluice).
# Needs noida-db (scripts/install-deps.sh unpacks it) and kcat (apt-get install kcat).
set -euo pipefail
cd "$(dirname "$0")/.."
SLUICE=.build/release/sluice; FB=""; LINES=2000000; CODEC=none
while [ $# -gt 0 ]; do
  case "$1" in
    --sluice) SLUICE=$2; shift 2 ;;
    --fluent-bit) FB=$2; shift 2 ;;
    --lines) LINES=$2; shift 2 ;;
    --codec) CODEC=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
NOIDA=/var/tmp/sluice-servers/noida/noida_db/noida-db
[ -x "$NOIDA" ] || { echo "noida-db is missing: run scripts/install-deps.sh" >&2; exit 1; }
command -v kcat >/dev/null || { echo "kcat is missing: apt-get install kcat" >&2; exit 1; }
W=$(mktemp -d /var/tmp/sluice-bench-kafka.XXXXXX)
trap 'kill -9 $(jobs -p) 2>/dev/null; rm -rf "$W"' EXIT
python3 - "$W/input.log" "$LINES" <<'PY'
import sys
n = int(sys.argv[2]); pad = 'x' * 85
with open(sys.argv[1], 'w') as f:
    for i in range(n): f.write('bench-%08d %s\n' % (i, pad))
PY
BYTES=$(stat -c %s "$W/input.log")

start_broker() {
  PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
  rm -rf "$W/noida"; "$NOIDA" start --data-dir "$W/noida" --host 127.0.0.1 --only kafka --kafka-port "$PORT" >"$W/noida.log" 2>&1 &
  NPID=$!
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
}

# Waits until the topic holds every line, then prints the figures of process $1 named $2.
measure() {
  local pid=$1 name=$2 t0=$3
  until [ "$(kcat -b 127.0.0.1:$PORT -Q -t bench:0:-1 2>/dev/null | awk '{print $NF}')" -ge "$LINES" ] 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || { echo "$name exited early" >&2; return 1; }
    sleep 0.2
  done
  local t1; t1=$(date +%s.%N)
  read -r ut st < <(awk '{print $14, $15}' /proc/$pid/stat)
  local hwm; hwm=$(awk '/VmHWM/{print $2}' /proc/$pid/status)
  read -r nut nst < <(awk '{print $14, $15}' /proc/$NPID/stat)
  kill -TERM "$pid"; wait "$pid" || true
  kill -9 "$NPID"; wait "$NPID" 2>/dev/null || true
  python3 -c "
wall=$t1-$t0; b=$BYTES; n=$LINES; tck=$(getconf CLK_TCK); cpu=($ut+$st)/tck; ncpu=($nut+$nst)/tck
print(f'$name ($CODEC): {n} lines, {b/1e6:.0f} MB in {wall:.2f} s: {n/wall:,.0f} lines/s, {b/1e6/wall:.1f} MB/s; '
      f'{cpu:.2f} CPU-s = {cpu/(b/2**30):.1f} CPU-s/GiB; peak RSS {$hwm/1024:.0f} MiB; broker {ncpu:.2f} CPU-s')"
}

# Sluice: a file that exists at start is read from its last 1 MiB (the incumbent's TailSizeKB), so
# the input is handed over (renamed into the watched directory) once the input has started.
start_broker
mkdir -p "$W/s/conf" "$W/s/logs" "$W/s/data"
cat > "$W/s/conf/kafka.yaml" <<Y
inputs:
  - Type: input_file
    FilePaths: [$W/s/logs/*.log]
flushers:
  - Type: flusher_kafka_v2
    Brokers: [127.0.0.1:$PORT]
    Topic: bench
    Compression: $CODEC
Y
"$SLUICE" run --config-dir "$W/s/conf" --data-dir "$W/s/data" --http-address 127.0.0.1:0 2>"$W/s/sluice.log" &
SPID=$!
for _ in $(seq 200); do grep -q "Input started" "$W/s/sluice.log" && break; sleep 0.05; done
cp "$W/input.log" "$W/s/input.log" && mv "$W/s/input.log" "$W/s/logs/app.log"
measure $SPID "sluice flusher_kafka_v2" "$(date +%s.%N)"

if [ -n "$FB" ]; then
  start_broker
  mkdir -p "$W/f/logs" && cp "$W/input.log" "$W/f/logs/app.log"
  cat > "$W/f/fb.conf" <<C
[SERVICE]
    Flush        1
    Log_Level    warn
[INPUT]
    Name              tail
    Path              $W/f/logs/*.log
    Read_from_Head    true
    Buffer_Chunk_Size 1M
    Buffer_Max_Size   1M
[OUTPUT]
    Name        kafka
    Match       *
    Brokers     127.0.0.1:$PORT
    Topics      bench
    Format      json
    rdkafka.enable.idempotence true
    rdkafka.compression.codec $CODEC
C
  T0=$(date +%s.%N)
  "$FB" -c "$W/f/fb.conf" >"$W/f/fb.log" 2>&1 &
  measure $! "fluent-bit out_kafka" "$T0"
fi
