#!/usr/bin/env bash
# Installs the system packages Sluice's build and tests need, only those that are missing,
# so a machine that has them needs no network. Debian / Ubuntu, as root (or with sudo).
#   util-linux (setpriv)      e2e tests that run sluice as an unprivileged user
#   docker.io, containerd,    container discovery and container input tests against real
#   runc, busybox-static      daemons (images are built locally from busybox-static)
#   libpcre2-dev              the regex engine of the processors (PCRE2 with JIT)
#   libzstd-dev, libsnappy-dev  request body compression of the network flushers
#   librdkafka-dev            the Kafka flushers' producer (and the mock cluster of their tests)
#   clickhouse-server/-client, curl   the real ClickHouse the flusher tests start on loopback
#   prometheus                the real Prometheus that scrapes /metrics in the monitoring tests
#   gdb                       thread stacks of a test process that hangs (scripts/test.sh's watchdog)
# and, from PyPI, osmem-server (an OpenSearch-compatible _bulk server) and noida-db (whose Kafka
# emulation Debian's librdkafka 2.0.2 speaks to), unpacked under /var/tmp/sluice-servers for the
# Elasticsearch and Kafka flushers' tests, and kubernetes-validate (the
# Kubernetes API schemas, offline), installed under /var/tmp/sluice-servers/kubernetes-validate
# unless it is on PATH, for the test that validates the deploy/ manifests.
set -euo pipefail
command -v swift >/dev/null || { echo "Swift is required (https://swift.org/install); it is not an apt package here." >&2; exit 1; }
need=()
command -v setpriv >/dev/null || need+=(util-linux)
command -v dockerd >/dev/null || need+=(docker.io)
command -v containerd >/dev/null || need+=(containerd)
command -v runc >/dev/null || need+=(runc)
[ -f /usr/include/pcre2.h ] || need+=(libpcre2-dev)
command -v pkg-config >/dev/null || need+=(pkg-config)
[ -f /usr/include/zstd.h ] || need+=(libzstd-dev)
[ -f /usr/include/snappy-c.h ] || need+=(libsnappy-dev)
[ -f /usr/include/librdkafka/rdkafka.h ] || need+=(librdkafka-dev)
[ -x /usr/sbin/clickhouse-server ] || need+=(clickhouse-server)
command -v clickhouse-client >/dev/null || need+=(clickhouse-client)
command -v curl >/dev/null || need+=(curl)
[ -x /usr/bin/prometheus ] || need+=(prometheus)
[ -x /bin/busybox ] || command -v busybox >/dev/null || need+=(busybox-static)
command -v gdb >/dev/null || need+=(gdb)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  echo "Installing: ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

SERVERS=/var/tmp/sluice-servers
if [ ! -x "$SERVERS/osmem/osmem_server/bin/osmem-server" ]; then
  mkdir -p "$SERVERS/wheels"
  ls "$SERVERS"/wheels/osmem_server-*.whl >/dev/null 2>&1 || python3 -m pip download --no-deps -q -d "$SERVERS/wheels" osmem-server
  rm -rf "$SERVERS/osmem" && python3 -m zipfile -e "$(ls "$SERVERS"/wheels/osmem_server-*.whl | head -1)" "$SERVERS/osmem"
  chmod +x "$SERVERS/osmem/osmem_server/bin/osmem-server"
fi
if [ ! -x "$SERVERS/noida/noida_db/noida-db" ]; then
  mkdir -p "$SERVERS/wheels"
  ls "$SERVERS"/wheels/noida_db-*.whl >/dev/null 2>&1 || python3 -m pip download --no-deps -q -d "$SERVERS/wheels" noida-db
  rm -rf "$SERVERS/noida" && python3 -m zipfile -e "$(ls "$SERVERS"/wheels/noida_db-*.whl | head -1)" "$SERVERS/noida"
  chmod +x "$SERVERS/noida/noida_db/noida-db"
fi

# kubernetes-validate and its dependencies in a directory of their own (pip --target: no change to
# the system's Python packages); the tests run it as PYTHONPATH=<dir> python3 -m kubernetes_validate.
KV="$SERVERS/kubernetes-validate"
if ! command -v kubernetes-validate >/dev/null && [ ! -f "$KV/kubernetes_validate/__main__.py" ]; then
  rm -rf "$KV.tmp" && PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q --disable-pip-version-check --target "$KV.tmp" kubernetes-validate
  rm -rf "$KV" && mv "$KV.tmp" "$KV"
fi
