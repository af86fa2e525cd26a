#!/usr/bin/env bash
# Install fetalplanes on this box as a systemd service, from a checkout of the repository.
#
#   sudo deploy/install.sh                 # Jetson detected by /etc/nv_tegra_release, else x86 CPU
#   sudo deploy/install.sh --jetson        # force: venv over JetPack's OpenCV/TensorRT (--system-site-packages)
#   sudo deploy/install.sh --cpu           # force: pip's OpenCV wheel
#   deploy/install.sh --dry-run [--jetson] # print what would be done, change nothing (no root needed)
#
# Layout: venv /opt/fetalplanes/venv, config /etc/fetalplanes/box.toml (kept if present),
# data and models /var/lib/fetalplanes (user 'fetalplanes'), unit /etc/systemd/system/fetalplanes.service.
# The service is enabled; it is started only when `fetalplanes doctor` passes on the config.
set -euo pipefail

PREFIX=/opt/fetalplanes
VENV=$PREFIX/venv
CONF_DIR=/etc/fetalplanes
DATA_DIR=/var/lib/fetalplanes
UNIT=/etc/systemd/system/fetalplanes.service
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3}

mode=auto
dry=0
for arg in "$@"; do
  case "$arg" in
    --jetson) mode=jetson ;;
    --cpu) mode=cpu ;;
    --dry-run) dry=1 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument '$arg' (see --help)" >&2; exit 2 ;;
  esac
done

run() {  # run a command, or only print it with --dry-run
  if [ "$dry" = 1 ]; then echo "+ $*"; else "$@"; fi
}
apt_updated=0
apt_install() {  # apt-get install, after one apt-get update
  if [ "$apt_updated" = 0 ]; then run apt-get update; apt_updated=1; fi
  run apt-get install -y --no-install-recommends "$@"
}

if [ "$dry" = 0 ] && [ "$(id -u)" -ne 0 ]; then
  echo "install.sh: run as root (sudo $0), or with --dry-run to see the steps" >&2
  exit 2
fi
if [ "$mode" = auto ]; then
  if [ -f /etc/nv_tegra_release ]; then mode=jetson; else mode=cpu; fi
fi
for f in pyproject.toml deploy/fetalplanes.service deploy/box.example.toml deploy/jetson-constraints.txt docs/deploy.md; do
  [ -f "$REPO/$f" ] || { echo "install.sh: $REPO/$f is missing: run this from a complete checkout" >&2; exit 2; }
done
echo "== fetalplanes install: $mode box, from $REPO"

# 1. service user (in group video: capture cards, and the GPU on Jetson)
if ! id fetalplanes >/dev/null 2>&1; then
  run useradd --system --home-dir "$DATA_DIR" --shell /usr/sbin/nologin --groups video fetalplanes
fi
run mkdir -p "$PREFIX/docs" "$CONF_DIR" "$DATA_DIR/models"

# 2. Python environment
pyminor=$("$PYTHON" -c 'import sys; print(sys.version_info[1])')
extra_pkgs=()
[ "$pyminor" -lt 11 ] && extra_pkgs+=("tomli")   # TOML config on Python < 3.11
if [ "$mode" = jetson ]; then
  # JetPack's OpenCV has GStreamer; pip's wheels do not and would hide it: never install the [opencv] extra here.
  if ! "$PYTHON" -c 'import cv2' >/dev/null 2>&1; then
    apt_install python3-opencv
  fi
  run "$PYTHON" -m venv --system-site-packages "$VENV"
  run "$VENV/bin/pip" install --upgrade pip
  run "$VENV/bin/pip" install -c "$REPO/deploy/jetson-constraints.txt" "$REPO" "${extra_pkgs[@]}"
  # TensorRT's Python bindings come from JetPack (python3-libnvinfer), seen through --system-site-packages.
  if ! "$PYTHON" -c 'import tensorrt' >/dev/null 2>&1; then
    apt_install python3-libnvinfer
  fi
  run "$VENV/bin/pip" install -c "$REPO/deploy/jetson-constraints.txt" pycuda \
    || echo "warning: pycuda did not build (needs /usr/local/cuda and python3-dev); TensorRT engines cannot run until it does"
else
  run "$PYTHON" -m venv "$VENV"
  run "$VENV/bin/pip" install --upgrade pip
  run "$VENV/bin/pip" install "$REPO[opencv]" "${extra_pkgs[@]}"
fi

# 3. config, docs, unit
if [ -f "$CONF_DIR/box.toml" ]; then
  echo "keeping the existing $CONF_DIR/box.toml"
else
  run install -m 0644 "$REPO/deploy/box.example.toml" "$CONF_DIR/box.toml"
fi
run install -m 0644 "$REPO/docs/deploy.md" "$PREFIX/docs/deploy.md"
run install -m 0644 "$REPO/deploy/fetalplanes.service" "$UNIT"
run chown -R fetalplanes:fetalplanes "$DATA_DIR"
run systemctl daemon-reload
run systemctl enable fetalplanes

# 4. check, then start
if run "$VENV/bin/fetalplanes" doctor --config "$CONF_DIR/box.toml"; then
  run systemctl restart fetalplanes
  echo "== started. Log: journalctl -u fetalplanes -f   Heartbeat: cat /run/fetalplanes/status.json"
else
  echo "== installed and enabled, NOT started: fix what doctor reports (edit $CONF_DIR/box.toml, copy the model"
  echo "   into $DATA_DIR/models), re-run: $VENV/bin/fetalplanes doctor --config $CONF_DIR/box.toml"
  echo "   then: sudo systemctl start fetalplanes"
fi
