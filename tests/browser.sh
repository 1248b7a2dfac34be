#!/usr/bin/env bash
# The playground's browser test: finds Chromium ($CHROME_PATH, /usr/bin/chromium, ...) or installs Debian's, then runs
# tests/Pare.BrowserTests. PARE_PLAYGROUND_SCREENSHOT=docs/playground.png keeps the screenshot.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${CHROME_PATH:-}" ] && ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null && ! command -v google-chrome >/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends chromium
fi
dotnet test tests/Pare.BrowserTests -c Release "$@"
