#!/usr/bin/env bash
# Builds a Debian image without any registry: debootstrap (minbase) + extra Debian packages, then
# `docker import`. Skips the work when the image already exists (cache).
#
#   deploy/images/debian-base.sh IMAGE [PACKAGE...]
#
# Env: DEBIAN_SUITE (default bookworm), DEBIAN_MIRROR (default http://deb.debian.org/debian).
# Needs root (debootstrap, chroot); installs debootstrap with apt-get when missing.
set -euo pipefail
IMAGE=${1:?usage: debian-base.sh IMAGE [PACKAGE...]}
shift
SUITE=${DEBIAN_SUITE:-bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
	echo "debian-base: $IMAGE exists, skipped" >&2
	exit 0
fi
if ! command -v debootstrap >/dev/null 2>&1; then
	DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >&2
fi
root=$(mktemp -d /tmp/sluice-deploy-rootfs.XXXXXX)
trap 'umount -l "$root/proc" 2>/dev/null || true; rm -rf "$root"' EXIT
include=""
if [[ $# -gt 0 ]]; then include="--include=$(IFS=,; echo "$*")"; fi
echo "debian-base: debootstrap $SUITE $* -> $IMAGE" >&2
debootstrap --variant=minbase $include "$SUITE" "$root" "$MIRROR" >"$root.log" 2>&1 || { tail -30 "$root.log" >&2; exit 1; }
rm -f "$root.log"
# Trim what a container never needs.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* \
	"$root"/usr/share/man/* "$root"/usr/share/locale/* "$root"/usr/share/info/*
tar -C "$root" -c . | docker import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
	--change 'CMD ["/bin/sh"]' - "$IMAGE" >/dev/null
echo "debian-base: built $IMAGE" >&2
