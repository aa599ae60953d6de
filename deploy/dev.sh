#!/usr/bin/env bash
# Set up this checkout (idempotent) and run the demo or every test:
#   bash deploy/dev.sh demo     # set up, then run the device on the sample face video
#   bash deploy/dev.sh test     # set up, then ruff, mypy and the whole pytest suite
# Needs Debian/Ubuntu with Python >= 3.11. Installs system packages with apt when it can.
set -euo pipefail
cd "$(dirname "$0")/.."
action=${1:-demo}
case "$action" in demo|test|setup) ;; *) echo "usage: bash deploy/dev.sh demo|test|setup" >&2; exit 2;; esac

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }

install_system_packages() {
  # libegl1/libgles2: mediapipe 1.x loads them; mosquitto: the real broker the tests start;
  # qemu-user-static + debootstrap: the emulated Pi of the `emulated` tests (deploy/pi-emulated.sh).
  local wanted="libegl1 libgles2" missing=""
  [ "$action" = test ] && wanted="$wanted mosquitto qemu-user-static debootstrap"
  "$PYTHON" -m venv --help >/dev/null 2>&1 || wanted="$wanted python3-venv"
  for p in $wanted; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
  [ -z "$missing" ] && return 0
  echo "installing system packages:$missing"
  as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends $missing >/dev/null \
    || { echo "could not install$missing; install them with apt and run again" >&2; exit 1; }
}

mediapipe_pin() {
  # mediapipe >= 1.0 aborts on CPUs without LSE atomics (Pi 4); 0.10.18 runs there (Python <= 3.12).
  if [ "$(uname -m)" = aarch64 ] && ! grep -qw atomics /proc/cpuinfo; then echo "mediapipe==0.10.18"
  else echo "mediapipe==1.2.2"; fi
}

setup_venv() {
  "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || { echo "Python >= 3.11 is needed (found $("$PYTHON" --version)); set PYTHON=" >&2; exit 1; }
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  local pip="$VENV/bin/python -m pip"
  $pip install -q --disable-pip-version-check --upgrade pip >/dev/null
  $pip install -q --disable-pip-version-check -c deploy/constraints.txt -e ".[device,thermal,trainer,dev]"
  # mediapipe without its dependencies: they would replace the headless OpenCV with the GUI build.
  $pip install -q --disable-pip-version-check --no-deps "$(mediapipe_pin)"
}

use_shared_folder() {
  # The development and CI machines keep third-party files and FER2013 in ../shared.
  if [ -z "${EMOTION_EDGE_ASSET_MIRROR:-}" ] && [ -d ../shared/assets ]; then
    export EMOTION_EDGE_ASSET_MIRROR="$(cd ../shared/assets && pwd)"
  fi
  if [ -z "${EMOTION_EDGE_FER2013:-}" ] && [ -f ../shared/data/fer2013/fer2013.npz ]; then
    export EMOTION_EDGE_FER2013="$(cd ../shared/data/fer2013 && pwd)/fer2013.npz"
  fi
}

install_system_packages
setup_venv
use_shared_folder
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # HGB OpenMP threads stall on shared cores
export MPLCONFIGDIR=${MPLCONFIGDIR:-$(mktemp -d)}

case "$action" in
  setup) echo "ready: $VENV/bin/emotion-device, $VENV/bin/emotion-trainer" ;;
  demo) exec "$VENV/bin/emotion-device" demo ;;
  test)
    "$VENV/bin/ruff" check .
    "$VENV/bin/ruff" format --check .
    "$VENV/bin/mypy"
    exec "$VENV/bin/python" -m pytest -q
    ;;
esac
