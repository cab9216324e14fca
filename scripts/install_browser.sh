#!/usr/bin/env bash
# The demo page tests drive a real headless browser: Debian's chromium and chromium-driver (browser
# builds that download themselves do not work offline). Installs them where missing and apt-get is
# allowed; otherwise says so and returns 0: those tests are then skipped with this reason.
set -u
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    exit 0
fi
if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "note: chromium/chromium-driver missing and apt-get needs root: the demo page tests will be skipped" >&2
    exit 0
fi
if command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 \
        || { $SUDO apt-get update -q >/dev/null 2>&1 && $SUDO apt-get install -y -q chromium chromium-driver >/dev/null 2>&1; } \
        || echo "note: could not install chromium/chromium-driver with apt-get: the demo page tests will be skipped" >&2
else
    echo "note: no apt-get here; install chromium and chromedriver to run the demo page tests" >&2
fi
exit 0
