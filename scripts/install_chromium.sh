#!/usr/bin/env bash
# Installs Debian's `chromium` (used headless by tests/report/test_browser.py) with apt-get.
# Does nothing and exits 0 when chromium is already there (/usr/bin/chromium or on PATH).
# Quiet: apt's output is shown only if it fails. Needs root, or sudo without a password.
set -euo pipefail
if [ -x /usr/bin/chromium ] || command -v chromium >/dev/null 2>&1; then
  exit 0
fi
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || {
    echo "install_chromium.sh: need root or sudo to apt-get install chromium" >&2; exit 1; }
  SUDO=(sudo -n)
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
export DEBIAN_FRONTEND=noninteractive
if ! { "${SUDO[@]}" apt-get update -qq \
       && "${SUDO[@]}" apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core; \
     } >"$log" 2>&1; then
  cat "$log" >&2
  echo "install_chromium.sh: apt-get install chromium failed" >&2
  exit 1
fi
if ! { [ -x /usr/bin/chromium ] || command -v chromium >/dev/null 2>&1; }; then
  echo "install_chromium.sh: chromium still missing after apt-get install" >&2
  exit 1
fi
