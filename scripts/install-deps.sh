#!/usr/bin/env bash
# Installs everything lestash-sync needs to build, test and run, from Debian's
# packages. Safe to run again; needs root or sudo.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  libsqlite3-dev sqlite3 libpq-dev libpqxx-dev nlohmann-json3-dev libspdlog-dev libasio-dev
  catch2 libtomlplusplus-dev libcli11-dev
  # lestash-endpoint: HTTP(S), JWTs and hashes, pairing QR codes.
  libcpp-httplib-dev libssl-dev libqrencode-dev
  postgresql-15 postgresql-client-15
  python3 procps systemd clang libclang-rt-14-dev
  # The linker the build prefers (CMakeLists.txt, LESTASH_LLD).
  lld
  # The man pages (help2man over the programs' --help; groff checks them) and
  # the Debian package (cpack's dpkg-shlibdeps needs file).
  help2man groff-base file
  # The lestash plugin (src/python), and pip-installing it offline in its tests.
  python3-typer python3-rich python3-pip python3-venv python3-setuptools python3-wheel
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm (with any Node.js) for the phone tests: it fetches the PowerSync service's
# and client's packages, which bring their own Node 24. A node from elsewhere
# (e.g. NodeSource, which bundles npm) will do; Debian's packages otherwise.
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
