#!/usr/bin/env bash
# Runs one Python test module of tests/python with a python3 that has what it
# needs: Debian's /usr/bin/python3 first (python3-typer and python3-rich are
# installed for it), then the python3 on PATH. Exits 77 (CTest's skip) with
# the reason when there is none.
# Usage: run.sh MODULE LESTASH_SYNCD VERSION   (MODULE: test_client, test_plugin, test_package)
set -euo pipefail
module=$1
export LESTASH_SYNCD=$2 LESTASH_VERSION=$3
here=$(cd "$(dirname "$0")" && pwd)

needs="import sys, tomllib"
[ "$module" = test_client ] || needs="$needs, typer, rich"
for python in /usr/bin/python3 "$(command -v python3 || true)"; do
  if [ -x "$python" ] && "$python" -c "$needs" 2>/dev/null; then
    # -B: no __pycache__ in the source tree.
    exec "$python" -B "$here/$module.py"
  fi
done
echo "skipped: no python3 (3.11 or later) that can '$needs' (apt-get install python3-typer python3-rich)"
exit 77
