#!/usr/bin/env bash
# Checks deploy/haechi.service with systemd-analyze: `verify` (syntax, known
# keys, the ExecStart binary, the man page its Documentation= names) with
# any output a failure, and `security --offline` (the exposure score must
# stay at most 2.5 of 10). Skips, saying so, where systemd-analyze is absent.
#
#   scripts/check-unit.sh HAECHI_BINARY
set -euo pipefail
cd "$(dirname "$0")/.."

bin="${1:?usage: scripts/check-unit.sh HAECHI_BINARY}"
if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "check-unit: SKIPPED: no systemd-analyze on this machine (Debian: systemd)"
	exit 0
fi
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/haechi-unit.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
# The unit as shipped, but starting the binary just built, with its man
# page where man finds it.
sed "s#/usr/local/bin/haechi#$bin#g" deploy/haechi.service >"$tmp/haechi.service"
mkdir -p "$tmp/man/man1"
"$bin" man >"$tmp/man/man1/haechi.1"

out="$(MANPATH="$tmp/man" systemd-analyze verify "$tmp/haechi.service" 2>&1)" || {
	echo "check-unit: FAIL: systemd-analyze verify:" >&2
	echo "$out" >&2
	exit 1
}
if [ -n "$out" ]; then
	echo "check-unit: FAIL: systemd-analyze verify warned:" >&2
	echo "$out" >&2
	exit 1
fi
echo "check-unit: ok: systemd-analyze verify deploy/haechi.service"
if out="$(systemd-analyze security --offline=true --threshold=25 "$tmp/haechi.service" 2>&1)"; then
	echo "check-unit: ok: $(echo "$out" | grep 'Overall exposure' | sed 's/^→ *//')"
else
	echo "$out" | tail -n 30 >&2
	echo "check-unit: FAIL: exposure above 2.5 (systemd-analyze security)" >&2
	exit 1
fi
