#!/usr/bin/env bash
# Set up (if needed) and run the whole system on this machine, on simulated hardware.
# Pass --headless to run without windows (tickets and announcements go to files).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/qms demo "$@"
