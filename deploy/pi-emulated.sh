#!/usr/bin/env bash
# Run a project command in an emulated Raspberry Pi userland: Debian arm64 + the Pi's CPU, under
# qemu-user (no binfmt_misc, no chroot; root only to build the cache: debootstrap, apt).
#
#   bash deploy/pi-emulated.sh --board pi4|pi5 --os bookworm|trixie [--rebuild] -- COMMAND [ARGS...]
#   bash deploy/pi-emulated.sh --board pi4 --os bookworm --setup-only   # build the cache, run nothing
#   bash deploy/pi-emulated.sh --print-matrix                            # what runs where
#
# COMMAND is emotion-device, emotion-trainer or python (the userland's python3.11 / python3.13);
# its exit code is this script's. Example:
#   bash deploy/pi-emulated.sh --board pi4 --os trixie -- emotion-device classify --blendshapes-only F.jpg
#
# How: `debootstrap --foreign` (first stage only: it needs no emulation) makes a minimal Debian arm64
# tree, the packages it did not unpack are unpacked with dpkg-deb; the host's pip fetches aarch64
# wheels (--platform/--python-version, never pip inside the emulator); the userland's python runs as
#   qemu-aarch64-static -L <userland> -cpu <Pi CPU> <userland>/usr/bin/python3.X ...
# -L makes an absolute path that exists in the userland come from it and every other path from the
# host, so this checkout, /tmp, /dev, /sys, /proc and $HOME are the host's. Each board gets a small
# view of the userland (symlinks to its bin, etc, lib, sbin, usr) with its own /proc/cpuinfo,
# because qemu 7.2 (Debian 12) passes the host's x86 /proc/cpuinfo through, and onnxruntime's
# import segfaults on it. Its Features line is the emulated CPU's getauxval(AT_HWCAP).
#
# Boards: pi4 = Cortex-A72 (ARMv8.0: no LSE atomics, no dot product), pi5 = Cortex-A76 (LSE,
# dotprod). Note qemu's cortex-a72 has the crypto extension (aes pmull sha1 sha2), which a Pi 4's
# BCM2711 lacks. mediapipe per board x OS (same pins as deploy/dev.sh, installed --no-deps):
# pi4 + bookworm 0.10.18 (1.x aborts without LSE atomics), pi5 1.2.2, pi4 + trixie none (0.10.x
# has no cp313 wheel). Python packages: the project's `dependencies` + `device` extra at the versions of
# deploy/constraints.txt (a pin without a wheel for that Python/aarch64 gives way to the newest
# version that has one, and is said); for emotion-trainer also its `trainer` extra except torch
# (PyPI's aarch64 torch pulls ~5 GB of CUDA wheels), so the trainer's CNN commands do not run here.
# A program that starts sys.executable as a subprocess (bench-rounds, multiprocessing) needs
# binfmt_misc, which this script does not use: the host kernel cannot exec an aarch64 binary.
#
# Cache: ${EMOTION_EDGE_PI_CACHE:-${XDG_CACHE_HOME:-~/.cache}/emotion-edge/pi-emulated}/<os>/...;
# every part is rebuilt when its marker is missing or out of date (an interrupted build is redone).
# The environment passes through (EMOTION_EDGE_ASSET_MIRROR, EMOTION_EDGE_FER2013, OMP_NUM_THREADS,
# ...), except host-only variables such as LD_PRELOAD, LD_LIBRARY_PATH and PYTHONPATH.
# DEBIAN_MIRROR overrides the Debian mirror.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${EMOTION_EDGE_PI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/emotion-edge/pi-emulated}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
QEMU=qemu-aarch64-static
# Debian packages of the userland: python3 (+ stdlib), and what the wheels load from the system:
# libstdc++ (onnxruntime, opencv), libEGL + libGLESv2 (NEEDED by mediapipe 1.x's libmediapipe.so).
ROOTFS_PACKAGES=python3,libstdc++6,libegl1,libgles2
MEDIAPIPE_PI4=mediapipe==0.10.18  # deploy/dev.sh mediapipe_pin; it also needs attrs and protobuf 4.x
MEDIAPIPE_PI5=mediapipe==1.2.2
# Host variables that must not reach the emulated python (x86 libraries, the host's Python paths).
HOST_ONLY_VARS=(LD_PRELOAD LD_LIBRARY_PATH PYTHONPATH PYTHONHOME PYTHONSTARTUP PYTHONEXECUTABLE
  PYTHONUSERBASE VIRTUAL_ENV)

say() { echo "pi-emulated: $*" >&2; }
die() { echo "pi-emulated: $1" >&2; exit "${2:-1}"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }

usage() {
  sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
}

# --- the matrix ---------------------------------------------------------------------------------
os_python() { case $1 in bookworm) echo 3.11 ;; trixie) echo 3.13 ;; esac; }
os_glibc_minor() { case $1 in bookworm) echo 36 ;; trixie) echo 41 ;; esac; }
board_cpu() { case $1 in pi4) echo cortex-a72 ;; pi5) echo cortex-a76 ;; esac; }
board_midr() { # CPU variant, part, revision of the real SoC (Pi 4: A72 r0p3; Pi 5: A76 r4p1)
  case $1 in pi4) echo "0x0 0xd08 3" ;; pi5) echo "0x4 0xd0b 1" ;; esac
}
board_model() {
  case $1 in pi4) echo "Raspberry Pi 4 Model B Rev 1.5|d03115" ;; pi5) echo "Raspberry Pi 5 Model B Rev 1.0|d04170" ;; esac
}
mediapipe_for() { # board os -> pip requirement, or "" when no mediapipe runs there
  if [ "$1" = pi5 ]; then echo "$MEDIAPIPE_PI5"
  elif [ "$2" = bookworm ]; then echo "$MEDIAPIPE_PI4"
  else echo ""; fi
}
no_mediapipe_reason() {
  echo "no mediapipe for $1 + $2: 0.10.x has no cp313 aarch64 wheel and 1.x needs LSE atomics (a Pi 5)"
}

pick_cpu() { # the Pi's CPU model, or the nearest this qemu has (older qemu lacks cortex-a76)
  local want have
  want=$(board_cpu "$1")
  have=$("$QEMU" -cpu help 2>/dev/null | awk 'NR > 1 {print $1}')
  if grep -qx -- "$want" <<<"$have"; then echo "$want"; return; fi
  if [ "$1" = pi5 ] && grep -qx neoverse-n1 <<<"$have"; then
    say "this qemu has no cortex-a76; using neoverse-n1 (same ARMv8.2 core family: LSE, dotprod)"
    echo neoverse-n1; return
  fi
  die "$QEMU has no CPU model $want (it has: $(echo "$have" | tr '\n' ' '))"
}

print_matrix() {
  local ort
  ort=$(awk -F'==' '$1 == "onnxruntime" {print $2}' "$REPO/deploy/constraints.txt")
  printf '%-5s %-9s %-11s %-7s %-19s %-8s %s\n' board os qemu-cpu python onnxruntime cached mediapipe
  for board in pi4 pi5; do
    for os in bookworm trixie; do
      local mp cached=no
      mp=$(mediapipe_for "$board" "$os")
      mp=${mp#mediapipe==}
      [ -n "$mp" ] || mp="none ($(no_mediapipe_reason "$board" "$os" | sed 's/^[^:]*: //'))"
      [ -f "$CACHE/$os/rootfs.ready" ] && [ -f "$CACHE/$os/site.ready" ] \
        && [ -f "$CACHE/$os/$board/mediapipe.ready" ] && [ -f "$CACHE/$os/$board/view.ready" ] && cached=yes
      printf '%-5s %-9s %-11s %-7s %-19s %-8s %s\n' "$board" "$os" "$(board_cpu "$board")" \
        "$(os_python "$os")" "${ort:-?}" "$cached" "$mp"
    done
  done
}

# --- options ------------------------------------------------------------------------------------
BOARD="" OS="" REBUILD=0 SETUP_ONLY=0
while [ $# -gt 0 ]; do
  case $1 in
    --board) [ $# -ge 2 ] || die "--board needs a value: pi4 or pi5" 2; BOARD=$2; shift 2 ;;
    --board=*) BOARD=${1#*=}; shift ;;
    --os) [ $# -ge 2 ] || die "--os needs a value: bookworm or trixie" 2; OS=$2; shift 2 ;;
    --os=*) OS=${1#*=}; shift ;;
    --rebuild) REBUILD=1; shift ;;
    --setup-only) SETUP_ONLY=1; shift ;;
    --print-matrix) print_matrix; exit 0 ;;
    -h|--help) usage; exit 0 ;;
    --) shift; break ;;
    *) die "unknown option $1 (see --help); put the command after --" 2 ;;
  esac
done
case $BOARD in pi4|pi5) ;; "") die "give --board pi4 or --board pi5" 2 ;; *) die "unknown board $BOARD: use pi4 or pi5" 2 ;; esac
case $OS in bookworm|trixie) ;; "") die "give --os bookworm or --os trixie" 2 ;; *) die "unknown OS $OS: use bookworm or trixie" 2 ;; esac
if [ "$SETUP_ONLY" = 0 ] && [ $# -eq 0 ]; then
  die "give a command after --: emotion-device, emotion-trainer or python" 2
fi
if [ $# -gt 0 ]; then
  case $1 in
    emotion-device|emotion-trainer|python|python3) ;;
    *) die "unknown command $1: use emotion-device, emotion-trainer or python" 2 ;;
  esac
fi

PY=$(os_python "$OS")
OSDIR=$CACHE/$OS
BOARDDIR=$OSDIR/$BOARD
ROOTFS=$OSDIR/rootfs
SITE=$OSDIR/site
MPSITE=$BOARDDIR/mediapipe
TRAINER_SITE=$OSDIR/site-trainer
VIEW=$BOARDDIR/root
MEDIAPIPE=$(mediapipe_for "$BOARD" "$OS")

# --- host tools ---------------------------------------------------------------------------------
apt_install() { # command package...
  command -v "$1" >/dev/null && return 0
  shift
  say "installing $* with apt"
  if ! { as_root apt-get update -qq >/dev/null && as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null; }; then
    die "could not install $*; install it with apt and run again"
  fi
}

host_python() { # a host Python >= 3.11 with pip: this checkout's venv, else python3
  local py
  for py in "$REPO/.venv/bin/python" python3; do
    if command -v "$py" >/dev/null && "$py" -c 'import sys, tomllib' 2>/dev/null \
      && "$py" -m pip --version >/dev/null 2>&1; then echo "$py"; return; fi
  done
  die "no host Python >= 3.11 with pip; run bash deploy/dev.sh setup first"
}

# --- cache parts: each is built in a temporary folder and marked complete at the end --------------
is_ready() { [ "$REBUILD" = 0 ] && [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }

build_rootfs() {
  local key="debian $OS arm64 minbase $ROOTFS_PACKAGES" tmp=$OSDIR/rootfs.partial log=$OSDIR/debootstrap.log
  is_ready "$OSDIR/rootfs.ready" "$key" && [ -x "$ROOTFS/usr/bin/python$PY" ] && return 0
  [ "$(id -u)" = 0 ] || die "building the $OS userland needs root (debootstrap): run once as root with --setup-only and the same EMOTION_EDGE_PI_CACHE"
  apt_install debootstrap debootstrap
  command -v dpkg-deb >/dev/null || die "dpkg-deb is missing (a Debian or Ubuntu host is needed)"
  say "building the Debian $OS arm64 userland from $DEBIAN_MIRROR (about a minute; log: $log)"
  rm -rf "$tmp" "$OSDIR/rootfs.ready"
  mkdir -p "$OSDIR"
  debootstrap --foreign --arch=arm64 --variant=minbase --include="$ROOTFS_PACKAGES" \
    "$OS" "$tmp" "$DEBIAN_MIRROR" >"$log" 2>&1 \
    || die "debootstrap could not fetch Debian $OS arm64 from $DEBIAN_MIRROR (see $log)"
  # The first stage unpacked only the 'required' packages; unpack the rest (python3, the libraries)
  # without running maintainer scripts. --keep-directory-symlink keeps /lib -> usr/lib (merged /usr).
  local -A unpacked=()
  local pkg deb
  local -a required
  mapfile -t required <"$tmp/debootstrap/required"
  for pkg in "${required[@]}"; do [ -z "$pkg" ] || unpacked[$pkg]=1; done
  while read -r pkg deb; do
    [ -n "${unpacked[$pkg]:-}" ] && continue
    dpkg-deb --fsys-tarfile "$tmp$deb" | tar -x --keep-directory-symlink -C "$tmp" \
      || die "could not unpack $deb into the $OS userland"
  done <"$tmp/debootstrap/debpaths"
  rm -f "$tmp"/var/cache/apt/archives/*.deb
  # debootstrap made /proc a symlink to the host's /proc; the board views bring their own cpuinfo.
  rm -rf "$tmp/proc" && mkdir -p "$tmp/proc" "$tmp/usr/local/bin" "$tmp/usr/local/lib"
  [ -x "$tmp/usr/bin/python$PY" ] || die "the $OS userland has no python$PY (see $log)"
  # The userland's own ld.so.cache (-C: else the guest's ldconfig would write the host's).
  "$QEMU" -L "$tmp" "$tmp/sbin/ldconfig" -X -C "$tmp/etc/ld.so.cache" \
    || die "ldconfig failed in the $OS userland"
  rm -rf "$ROOTFS"
  mv "$tmp" "$ROOTFS"
  echo "$key" >"$OSDIR/rootfs.ready"
}

pip_platforms() { # every manylinux tag the OS's glibc accepts: pip does not expand them itself
  local v
  echo --platform manylinux2014_aarch64
  for v in $(seq 17 "$(os_glibc_minor "$OS")"); do echo --platform "manylinux_2_${v}_aarch64"; done
}

pip_target() { # target-folder log what... : host pip fetches aarch64 wheels for the OS's Python
  # at the versions of constraints.txt; a pin without a wheel for this Python/aarch64 is dropped
  # (pip then takes the newest version that fits), and said.
  local target=$1 log=$2 what=$3
  shift 3
  local -a platforms
  mapfile -t platforms < <(pip_platforms | tr ' ' '\n')
  local constraints=$target.constraints attempt unpinned
  grep -v '^#' "$REPO/deploy/constraints.txt" >"$constraints"
  for attempt in 1 2 3 4; do
    rm -rf "$target.partial"
    if "$HOST_PY" -m pip install --disable-pip-version-check --no-warn-conflicts --no-input \
      --target "$target.partial" --implementation cp --python-version "$PY" --only-binary=:all: \
      "${platforms[@]}" -c "$constraints" "$@" >"$log" 2>&1; then
      rm -rf "$target" "$constraints"
      mv "$target.partial" "$target"
      return 0
    fi
    # pip lists them under "... have no matching distributions available for your environment:"
    unpinned=$(sed -n '/no matching distributions available/,/^$/{s/^ \{4\}\([A-Za-z0-9_.-]*\)$/\1/p}' "$log")
    if [ -z "$unpinned" ] || [ "$attempt" = 4 ]; then break; fi
    say "no $OS/aarch64 wheel of the pinned $(echo "$unpinned" | paste -sd' ' -) for Python $PY: taking the newest that fits"
    grep -viE "^($(echo "$unpinned" | paste -sd'|' -))==" "$constraints" >"$constraints.new" || true
    mv "$constraints.new" "$constraints"
  done
  die "pip could not fetch the aarch64 wheels of $what for Python $PY (see $log)"
}

requirements() { # extra: the project's dependencies + that extra, from pyproject.toml (no torch)
  "$HOST_PY" - "$REPO/pyproject.toml" "$1" <<'EOF'
import re, sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
wanted = project["optional-dependencies"][sys.argv[2]]
if sys.argv[2] == "device":
    wanted = project["dependencies"] + wanted
print("\n".join(r for r in wanted if re.split(r"[<>=!~ ;\[]", r)[0] != "torch"))
EOF
}

off_constraints() { # site: the installed versions that are not the ones in constraints.txt
  "$HOST_PY" - "$1" "$REPO/deploy/constraints.txt" <<'EOF'
import re, sys
from pathlib import Path
norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()
pins = {}
for line in Path(sys.argv[2]).read_text().splitlines():
    if "==" in line and not line.startswith("#"):
        name, version = line.split("==", 1)
        pins[norm(name)] = version.strip()
for info in Path(sys.argv[1]).glob("*.dist-info"):
    name, version = info.name[: -len(".dist-info")].rsplit("-", 1)
    if norm(name) in pins and pins[norm(name)] != version:
        print(f"{name} {version} (constraints: {pins[norm(name)]})")
EOF
}

dependency_key() { # extra: changes when pyproject's dependency lists or constraints.txt change
  { sed -n "/^dependencies = \\[/,/^\\]/p; /^$1 = \\[/,/^\\]/p" "$REPO/pyproject.toml"
    cat "$REPO/deploy/constraints.txt"; } | sha256sum | cut -c1-16
}

build_site() { # EXTRA DIR WHAT: the aarch64 wheels of one pyproject extra into DIR
  local extra=$1 dir=$2 what=$3 key
  key="python$PY $(dependency_key "$extra")"
  is_ready "$dir.ready" "$key" && [ -d "$dir" ] && return 0
  rm -f "$dir.ready"
  HOST_PY=${HOST_PY:-$(host_python)}
  local -a reqs
  mapfile -t reqs < <(requirements "$extra")
  say "fetching the $extra's aarch64 wheels for Python $PY ($what)"
  pip_target "$dir" "$dir.log" "the $extra's packages" "${reqs[@]}"
  local off
  off=$(off_constraints "$dir")
  [ -z "$off" ] || say "not the versions of deploy/constraints.txt: $(echo "$off" | paste -sd, - | sed "s/,/, /g")"
  echo "$key" >"$dir.ready"
}

build_mediapipe() {
  local key="python$PY ${MEDIAPIPE:-none}"
  is_ready "$BOARDDIR/mediapipe.ready" "$key" && [ -d "$MPSITE" ] && return 0
  rm -f "$BOARDDIR/mediapipe.ready"
  mkdir -p "$BOARDDIR"
  if [ -z "$MEDIAPIPE" ]; then
    rm -rf "$MPSITE" && mkdir -p "$MPSITE"
  else
    # --no-deps: its dependencies would pull opencv-contrib-python (GUI build) over the headless cv2.
    # 0.10.18 imports attrs and protobuf 4.x too; 1.x's other dependencies are in the device's set
    # (sounddevice is for the audio tasks only and is left out).
    local -a extra=()
    [ "$MEDIAPIPE" = "$MEDIAPIPE_PI4" ] && extra=(attrs "protobuf>=4.25.3,<5")
    say "fetching $MEDIAPIPE for $BOARD on $OS"
    HOST_PY=${HOST_PY:-$(host_python)}
    pip_target "$MPSITE" "$BOARDDIR/pip-mediapipe.log" "$MEDIAPIPE" --no-deps "$MEDIAPIPE" "${extra[@]}"
  fi
  echo "$key" >"$BOARDDIR/mediapipe.ready"
}

hwcap_features() { # the emulated CPU's AT_HWCAP/AT_HWCAP2 as /proc/cpuinfo feature names
  "$QEMU" -L "$ROOTFS" -cpu "$CPU" "$ROOTFS/usr/bin/python$PY" -I -S - <<'EOF'
import ctypes
libc = ctypes.CDLL(None)
libc.getauxval.restype = ctypes.c_ulong
hwcap = ("fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt fcma "
         "lrcpc dcpop sha3 sm3 sm4 asimddp sha512 sve asimdfhm dit uscat ilrcpc flagm ssbs sb paca "
         "pacg").split()
hwcap2 = ("dcpodp sve2 sveaes svepmull svebitperm svesha3 svesm4 flagm2 frint svei8mm svef32mm "
          "svef64mm svebf16 i8mm bf16 dgh rng bti mte").split()
names = [n for i, n in enumerate(hwcap) if libc.getauxval(16) >> i & 1]
names += [n for i, n in enumerate(hwcap2) if libc.getauxval(26) >> i & 1]
print(" ".join(names))
EOF
}

build_view() {
  local key="$CPU"
  is_ready "$BOARDDIR/view.ready" "$key" && [ -s "$BOARDDIR/features" ] && return 0
  rm -f "$BOARDDIR/view.ready"
  rm -rf "$VIEW" && mkdir -p "$VIEW/proc/device-tree"
  local entry
  for entry in bin etc lib lib64 sbin usr; do
    if [ -e "$ROOTFS/$entry" ]; then ln -s "../../rootfs/$entry" "$VIEW/$entry"; fi
  done
  hwcap_features >"$BOARDDIR/features" || die "the $OS userland's python does not start under $QEMU"
  printf '%s\0' "$(board_model "$BOARD" | cut -d'|' -f1)" >"$VIEW/proc/device-tree/model"
  echo "$key" >"$BOARDDIR/view.ready"
}

write_cpuinfo() { # the board's /proc/cpuinfo, one entry per host CPU (what sysconf and /sys show)
  local variant part revision model revcode n features out=$VIEW/proc/cpuinfo
  read -r variant part revision <<<"$(board_midr "$BOARD")"
  model=$(board_model "$BOARD" | cut -d'|' -f1)
  revcode=$(board_model "$BOARD" | cut -d'|' -f2)
  features=$(cat "$BOARDDIR/features")
  {
    for ((n = 0; n < $(nproc); n++)); do
      printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: %s\n' "$n" "$features"
      printf 'CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: %s\n' "$variant"
      printf 'CPU part\t: %s\nCPU revision\t: %s\n\n' "$part" "$revision"
    done
    printf 'Revision\t: %s\nSerial\t\t: 10000000e0e0e0e0\nModel\t\t: %s\n' "$revcode" "$model"
  } >"$out.$$"
  mv -f "$out.$$" "$out"
}

# --- main ---------------------------------------------------------------------------------------
apt_install "$QEMU" qemu-user-static
CPU=$(pick_cpu "$BOARD")
mkdir -p "$OSDIR"
exec 9>"$OSDIR/.lock"
flock 9  # one build per OS at a time; runs share the finished cache
build_rootfs
build_site device "$SITE" "numpy, onnxruntime, opencv, ..."
build_mediapipe
build_view
PYPATH=$REPO:$MPSITE:$SITE
if [ "${1:-}" = emotion-trainer ]; then
  # the trainer extra without torch (PyPI's aarch64 torch pulls ~5 GB of CUDA wheels), so the
  # trainer's CNN commands are not available here
  build_site trainer "$TRAINER_SITE" "scikit-learn, onnx, ...; no torch"
  PYPATH=$PYPATH:$TRAINER_SITE
fi
write_cpuinfo
exec 9>&-

mp_version=${MEDIAPIPE#mediapipe==}
say "$BOARD = qemu $CPU, Debian $OS arm64, Python $PY, mediapipe ${mp_version:-none} (cache: $OSDIR)"
if [ "$SETUP_ONLY" = 1 ]; then
  exit 0
fi

cmd=$1
shift
case $cmd in
  emotion-device) set -- -c 'import sys; sys.argv[0] = "emotion-device"; from device.cli import main; sys.exit(main())' "$@" ;;
  emotion-trainer) set -- -c 'import sys; sys.argv[0] = "emotion-trainer"; from trainer.cli import main; sys.exit(main())' "$@" ;;
esac
[ -n "$MEDIAPIPE" ] || say "note: $(no_mediapipe_reason "$BOARD" "$OS"); commands that need the face landmarker fail"

unset_host=()
for v in "${HOST_ONLY_VARS[@]}"; do unset_host+=(-u "$v"); done
exec env "${unset_host[@]}" PYTHONPATH="$PYPATH" PYTHONNOUSERSITE=1 \
  "$QEMU" -L "$VIEW" -cpu "$CPU" "$VIEW/usr/bin/python$PY" "$@"
