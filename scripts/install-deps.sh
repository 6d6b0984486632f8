#!/usr/bin/env bash
# Installs the system packages Sluice's build and tests need, only those that are missing,
# so a machine that has them needs no network. Debian / Ubuntu, as root (or with sudo).
#   util-linux (setpriv)      e2e tests that run sluice as an unprivileged user
#   docker.io, containerd,    container discovery and container input tests against real
#   runc, busybox-static      daemons (images are built locally from busybox-static)
#   libpcre2-dev              the regex engine of the processors (PCRE2 with JIT)
set -euo pipefail
command -v swift >/dev/null || { echo "Swift is required (https://swift.org/install); it is not an apt package here." >&2; exit 1; }
need=()
command -v setpriv >/dev/null || need+=(util-linux)
command -v dockerd >/dev/null || need+=(docker.io)
command -v containerd >/dev/null || need+=(containerd)
command -v runc >/dev/null || need+=(runc)
[ -f /usr/include/pcre2.h ] || need+=(libpcre2-dev)
command -v pkg-config >/dev/null || need+=(pkg-config)
[ -x /bin/busybox ] || command -v busybox >/dev/null || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  echo "Installing: ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
