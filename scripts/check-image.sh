#!/usr/bin/env bash
# Checks an image built by scripts/build-image.sh without running a
# container (a sandbox's rlimits can refuse `podman run`): it mounts the
# image's root with `podman image mount` (inside `podman unshare` when not
# root) and runs haechi from it, chrooted into that root as the image's user
# where chroot is allowed, so the binary is proven to need nothing the image
# lacks. Every check prints what it found; the first failure exits 1.
#
#   scripts/check-image.sh [TAG]          (default localhost/haechi:dev)
set -euo pipefail

tag="${1:-localhost/haechi:dev}"
podman="${PODMAN:-podman}"

if [ "$(id -u)" != 0 ] && [ -z "${HAECHI_CHECK_IMAGE_UNSHARED:-}" ]; then
	# Rootless storage can only be mounted in podman's user namespace.
	exec env HAECHI_CHECK_IMAGE_UNSHARED=1 "$podman" unshare "$0" "$@"
fi

fail() { echo "check-image: FAIL: $*" >&2; exit 1; }
ok() { echo "check-image: ok: $*"; }

# The image's configuration.
cfg="$("$podman" image inspect --format '{{.Config.User}}|{{json .Config.Volumes}}|{{json .Config.Entrypoint}}|{{json .HealthCheck}}' "$tag")" ||
	fail "no image $tag"
IFS='|' read -r user volumes entrypoint health <<<"$cfg"
[ "$user" = "65532:65532" ] || fail "user is '$user', want 65532:65532 (non-root)"
ok "user $user"
[[ "$volumes" == *'"/data"'* ]] || fail "volumes $volumes, want /data"
ok "volume /data"
[ "$entrypoint" = '["/usr/local/bin/haechi"]' ] || fail "entrypoint $entrypoint"
[[ "$health" == *'/healthz'* ]] || fail "healthcheck $health, want one on /healthz (built with --format docker?)"
ok "healthcheck $health"

mnt="$("$podman" image mount "$tag")" || fail "podman image mount $tag"
trap '"$podman" image unmount "$tag" >/dev/null 2>&1 || true' EXIT
bin="$mnt/usr/local/bin/haechi"
[ -x "$bin" ] || fail "no executable /usr/local/bin/haechi in the image"
[ -s "$mnt/etc/ssl/certs/ca-certificates.crt" ] || fail "no CA bundle"
grep -q BEGIN "$mnt/etc/ssl/certs/ca-certificates.crt" || fail "the CA bundle holds no certificate"
ok "CA bundle ($(grep -c 'BEGIN CERTIFICATE' "$mnt/etc/ssl/certs/ca-certificates.crt") certificates)"
grep -q '^haechi:x:65532:65532:' "$mnt/etc/passwd" || fail "no haechi user (65532) in /etc/passwd"
ok "/etc/passwd has haechi (65532)"
owner="$(stat -c %u:%g "$mnt/data")"
# Rootless: the user namespace maps the image's 65532 to another number;
# check only where ids are the image's own.
if [ -z "${HAECHI_CHECK_IMAGE_UNSHARED:-}" ] && [ "$owner" != "65532:65532" ]; then
	fail "/data is owned by $owner, want 65532:65532"
fi
ok "/data owned by $owner"

# Run it from the image's root, chrooted as the image's user: the binary
# must run with only what the image holds (static, no libc). Only where
# chroot itself is refused (exit 125) is the mounted binary run directly.
how="chrooted into the image as 65532"
out="$(chroot --userspec=65532:65532 "$mnt" /usr/local/bin/haechi version 2>&1)" || {
	rc=$?
	[ "$rc" = 125 ] || fail "haechi version in the image's root exited $rc: $out (a dynamically linked binary?)"
	echo "check-image: (chroot refused: $out; running the mounted binary directly)"
	out="$("$bin" version)" || fail "haechi version exited $?: $out"
	how="from the mounted root"
}
[[ "$out" =~ ^haechi\ [^\ ]+\ \(revision\ [^\ ]+,\ date\ [^\ ]+ ]] || fail "haechi version printed '$out'"
ok "haechi version $how: $out"
echo "check-image: $tag is good"
