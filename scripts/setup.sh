#!/usr/bin/env bash
# Set up this checkout on a fresh Debian / Raspberry Pi OS machine:
# Debian packages (when missing), a Python venv in .venv with the project, node tools.
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

DEB_PACKAGES=(
  mosquitto mosquitto-clients        # the broker (the demo and the tests start their own)
  espeak-ng libespeak-ng1            # Vietnamese speech (the espeak-ng command)
  sox                                # audio checks in tests
  fonts-dejavu-core fonts-noto-core  # fonts with every Vietnamese glyph
  python3-venv python3-dev
  socat                              # virtual serial ports for printer tests
  libusb-1.0-0                       # USB ticket printers (pyusb)
  chromium chromium-driver           # headless browser tests of the citizen page
  postgresql                         # the city's central tier (tests start their own cluster)
  bubblewrap                         # installed units started in their sandbox (test_unit_sandbox)
)

missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node runs real MicroPython (WebAssembly) for the firmware tests; any Node >= 18 with npm
# will do (a NodeSource build bundles npm and conflicts with Debian's npm package)
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  missing+=(nodejs npm)
fi
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "setup: please install as root: apt-get install ${missing[*]}" >&2; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
echo "setup: installing Python packages into .venv"
.venv/bin/python -m pip install -q -e '.[test]' 2>&1 | grep -v -E "^WARNING: Location|^$" || true
.venv/bin/python -m pip install -q -e '.[city]' 2>&1 | grep -v -E "^WARNING: Location|^$" || true

if [ -f firmware_py/node/package.json ] && [ ! -d firmware_py/node/node_modules ]; then
  echo "setup: installing MicroPython (WebAssembly) for firmware tests"
  (cd firmware_py/node && npm install --no-audit --no-fund --loglevel=error)
fi
echo "setup: done"
