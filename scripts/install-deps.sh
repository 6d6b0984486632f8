#!/usr/bin/env bash
# Installs the system packages Sluice's build and tests need, only those that are missing,
# so a machine that has them needs no network. Debian / Ubuntu, as root (or with sudo).
set -euo pipefail
need=()
command -v swift >/dev/null || { echo "Swift is required (https://swift.org/install); it is not an apt package here." >&2; exit 1; }
command -v setpriv >/dev/null || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  echo "Installing: ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi
