#!/usr/bin/env bash
# The dashboard's tests in a real browser: headless Chromium driven through WebDriver.
# Installs Debian's chromium and chromium-driver when they are missing (apt-get, as root or
# through sudo) and selenium (pinned) from PyPI into target/browser-venv, then runs
# tests/browser/test_dashboard.py against the debug binary. Screenshots go to target/dashboard/.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium > /dev/null || ! command -v chromedriver > /dev/null; then
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  APT="$SUDO env DEBIAN_FRONTEND=noninteractive apt-get"
  echo "installing Debian's chromium and chromium-driver"
  mkdir -p target
  $APT install -y chromium chromium-driver > target/apt-chromium.log 2>&1 ||
    { $APT update > /dev/null 2>&1 && $APT install -y chromium chromium-driver > target/apt-chromium.log 2>&1; } ||
    { echo "browser: could not install chromium (see target/apt-chromium.log)"; tail -5 target/apt-chromium.log; exit 1; }
fi
VENV=target/browser-venv
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check "selenium==4.51.0"
# The debug binary as the workspace's tests build it, so nothing is compiled again.
cargo test --workspace --locked --no-run --quiet 2> /dev/null || cargo test --workspace --locked --no-run
"$VENV/bin/python" tests/browser/test_dashboard.py target/debug/quiver
