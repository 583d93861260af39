#!/usr/bin/env bash
# Checks a lestash-syncd user unit with systemd's own parser, offline:
# `systemd-analyze --user verify` exits 0 even on unknown keys and bad
# values (it only warns), so any output at all is a failure.
# Usage: verify_unit.sh UNIT_FILE
set -euo pipefail
unit=$1
command -v systemd-analyze >/dev/null ||
  { echo "systemd-analyze is missing: run scripts/install-deps.sh (package systemd)"; exit 1; }
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir -m 0700 "$scratch/runtime"
# Verified under its own name, as systemd would load it.
cp "$unit" "$scratch/lestash-syncd.service"
export HOME=$scratch XDG_RUNTIME_DIR=$scratch/runtime
# --man=no: its Documentation= man page is not on the man path of a build or
# a scratch prefix; the package test checks it where it is installed.
out=$(systemd-analyze --user verify --man=no "$scratch/lestash-syncd.service" 2>&1) || status=$?
if [ -n "$out" ] || [ "${status:-0}" -ne 0 ]; then
  echo "systemd-analyze --user verify $unit complained:"
  echo "$out"
  exit 1
fi
# The hardening score, for the log (lower is better; not a pass/fail gate).
systemd-analyze --user security --offline=true "$scratch/lestash-syncd.service" 2>/dev/null |
  grep -i "overall exposure" || true
echo "ok: $unit"
