#!/usr/bin/env bash
# Builds the Sluice container image with the local dockerd, from nothing but what Sluice needs:
# `FROM scratch` + a root file system made here of the sluice binary (debug info stripped) at
# /usr/bin/sluice, every shared library `ldd` reports for it (glibc and its loader, libpcre2-8,
# libzstd, libsnappy, libstdc++, libgcc_s, libz, and the Swift runtime's .so files when the binary
# is linked to them), the host's CA bundle, a minimal /etc, a default pipeline under
# /etc/sluice/pipelines (every other container's stdout/stderr → JSON lines on stdout) and
# /var/lib/sluice. No registry is needed.
#
#   scripts/build-image.sh [--binary PATH] [--tag sluice:latest] [--docker-host unix:///path]
#
# Without --binary: `swift build -c release --product sluice --static-swift-stdlib` first.
# --docker-host (else $DOCKER_HOST, else docker's default) is the daemon that builds the image.
set -euo pipefail

BINARY="" TAG="sluice:latest"
while [ $# -gt 0 ]; do
    case "$1" in
        --binary) BINARY="$2"; shift 2 ;;
        --tag) TAG="$2"; shift 2 ;;
        --docker-host) export DOCKER_HOST="$2"; shift 2 ;;
        -h | --help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build-image.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
if [ -n "$BINARY" ]; then BINARY="$(realpath "$BINARY")"; fi
cd "$(dirname "$0")/.."

if [ -z "$BINARY" ]; then
    swift build -c release --product sluice --static-swift-stdlib
    BINARY="$(swift build -c release --static-swift-stdlib --show-bin-path)/sluice"
fi
[ -x "$BINARY" ] || { echo "build-image.sh: $BINARY is not an executable" >&2; exit 1; }

CTX="$(mktemp -d /tmp/sluice-image.XXXXXX)"
trap 'rm -rf "$CTX"' EXIT
R="$CTX/rootfs"
mkdir -p "$R/usr/bin" "$R/etc/ssl/certs" "$R/etc/sluice/pipelines" "$R/var/lib/sluice" "$R/tmp"
chmod 1777 "$R/tmp"

# The binary without its DWARF (the symbol table stays, for backtraces).
strip --strip-debug -o "$R/usr/bin/sluice" "$BINARY" 2>/dev/null || cp "$BINARY" "$R/usr/bin/sluice"
chmod 755 "$R/usr/bin/sluice"

# Its shared libraries at the paths the loader looks for them (RUNPATH included), and the loader.
LIBS="$(ldd "$BINARY")"
if grep -q "not found" <<<"$LIBS"; then
    echo "build-image.sh: ldd $BINARY: missing libraries:" >&2
    grep "not found" <<<"$LIBS" >&2
    exit 1
fi
awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$LIBS" | sort -u | while read -r lib; do
    mkdir -p "$R$(dirname "$lib")"
    cp -L "$lib" "$R$lib"
done

# CA certificates (HTTPS flushers), users, name resolution (/etc/hosts and resolv.conf come from the runtime).
for ca in /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt; do
    if [ -f "$ca" ]; then cp -L "$ca" "$R/etc/ssl/certs/ca-certificates.crt"; break; fi
done
printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n' >"$R/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$R/etc/group"
printf 'hosts: files dns\n' >"$R/etc/nsswitch.conf"

cat >"$R/etc/sluice/pipelines/container-stdout.yaml" <<'EOF'
# The image's default pipeline: every container's stdout and stderr with its metadata
# (_container_name_, _container_id_, _image_name_, Kubernetes names), as JSON lines on Sluice's
# stdout. Sluice's own container carries the image label io.sluice.collector=true and is left out
# (it would read its own output). Mount your own pipelines over /etc/sluice/pipelines.
enable: true
inputs:
  - Type: input_container_stdio
    IgnoringStderr: false
    ContainerFilters:
      ExcludeContainerLabel:
        io.sluice.collector: "true"
flushers:
  - Type: flusher_stdout
EOF

cat >"$CTX/Dockerfile" <<'EOF'
FROM scratch
COPY rootfs/ /
LABEL io.sluice.collector="true"
ENTRYPOINT ["/usr/bin/sluice"]
CMD ["run", "--config-dir", "/etc/sluice/pipelines", "--data-dir", "/var/lib/sluice"]
EOF

# Check that the file system is complete before handing it to docker (chroot needs root). The
# check gets a /proc as a container does: without one, libdispatch's worker-pool monitor (it
# reads /proc/<tid>/stat) traps now and then (SIGILL), which says nothing about the image.
if [ "$(id -u)" = 0 ]; then
    mkdir -p "$R/proc"
    mount -t proc proc "$R/proc"
    trap 'umount "$R/proc" 2>/dev/null; rm -rf "$CTX"' EXIT
    STARTS=0
    chroot "$R" /usr/bin/sluice version >/dev/null && STARTS=1
    umount "$R/proc"
    rmdir "$R/proc"
    trap 'rm -rf "$CTX"' EXIT
    [ "$STARTS" = 1 ] || { echo "build-image.sh: sluice does not start in the image's root" >&2; exit 1; }
fi

# The classic builder: it needs no buildx plugin and pulls nothing for FROM scratch.
if ! OUT="$(DOCKER_BUILDKIT=0 docker build -t "$TAG" "$CTX" 2>&1)"; then
    echo "$OUT" >&2
    echo "build-image.sh: docker build failed" >&2
    exit 1
fi
SIZE="$(docker image inspect -f '{{.Size}}' "$TAG")"
echo "built $TAG from $BINARY (+ $(find "$R" -name '*.so*' | wc -l) shared libraries): image size $SIZE bytes ($((SIZE / 1048576)) MiB)"
