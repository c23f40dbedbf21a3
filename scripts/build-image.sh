#!/usr/bin/env bash
# Builds haechi's container image with podman without pulling any image:
# the static binary is built here (CGO_ENABLED=0; the SQLite driver is pure
# Go), then the Containerfile's FROM scratch context is put together from
# it, the host's CA bundle and a passwd/group for the image's user.
#
#   scripts/build-image.sh [TAG]          (default localhost/haechi:dev)
#
# The version, revision and date come from git when there is one and go in
# the binary with -ldflags -X (go build's own VCS stamping is off in CI's
# -buildvcs=false and in git worktrees); HAECHI_VERSION overrides the
# version. scripts/check-image.sh TAG checks the result.
set -euo pipefail
cd "$(dirname "$0")/.."

tag="${1:-localhost/haechi:dev}"
podman="${PODMAN:-podman}"
ca="${HAECHI_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
uid=65532

[ -s "$ca" ] || { echo "build-image: no CA bundle at $ca (Debian: apt-get install ca-certificates; or set HAECHI_CA_BUNDLE)" >&2; exit 1; }
command -v "$podman" >/dev/null || { echo "build-image: $podman not found (Debian: apt-get install podman)" >&2; exit 1; }

version="${HAECHI_VERSION:-}"
revision=""
date=""
if git rev-parse --git-dir >/dev/null 2>&1; then
	[ -n "$version" ] || version="$(git describe --tags --always --dirty 2>/dev/null || true)"
	revision="$(git rev-parse HEAD)"
	date="$(TZ=UTC git log -1 --date=format-local:%Y-%m-%dT%H:%M:%SZ --format=%cd)"
fi

ctx="$(mktemp -d "${TMPDIR:-/tmp}/haechi-image.XXXXXX")"
trap 'rm -rf "$ctx"' EXIT
root="$ctx/rootfs"
mkdir -p "$root/usr/local/bin" "$root/etc/ssl/certs" "$root/tmp" "$ctx/data"
chmod 1777 "$root/tmp"
chmod 0755 "$root" "$root/usr" "$root/usr/local" "$root/usr/local/bin" "$root/etc" "$root/etc/ssl" "$root/etc/ssl/certs" "$ctx/data"

pkg=github.com/haechi-sec/haechi/internal/cli
echo "build-image: go build (CGO_ENABLED=0) version=${version:-unknown} revision=${revision:-unknown}"
CGO_ENABLED=0 go build -trimpath -buildvcs=false \
	-ldflags "-s -w -X $pkg.Version=$version -X $pkg.Revision=$revision -X $pkg.Date=$date" \
	-o "$root/usr/local/bin/haechi" ./cmd/haechi

install -m 0644 "$ca" "$root/etc/ssl/certs/ca-certificates.crt"
printf 'root:x:0:0:root:/root:/sbin/nologin\nhaechi:x:%d:%d:haechi:/data:/sbin/nologin\n' "$uid" "$uid" >"$root/etc/passwd"
printf 'root:x:0:\nhaechi:x:%d:\n' "$uid" >"$root/etc/group"
chmod 0644 "$root/etc/passwd" "$root/etc/group"

# --format docker: the OCI image format has no HEALTHCHECK. --layers=false:
# one image, no intermediate images left behind.
"$podman" build --quiet --format docker --pull=never --layers=false \
	--build-arg "VERSION=${version:-unknown}" --build-arg "REVISION=${revision:-unknown}" \
	-f Containerfile -t "$tag" "$ctx" >/dev/null
echo "build-image: built $tag ($("$podman" image inspect --format '{{.Id}}' "$tag" | cut -c1-12))"
