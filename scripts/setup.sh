#!/usr/bin/env bash
# Idempotent set-up of everything x0tta6bl4 needs on Debian 12.
# Fast when all is in place: each step checks before it acts.
# As a non-root user it installs what it can (the venv) and lists what it could not.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
PY=${PYTHON:-python3}
TORCH_VERSION=2.13.0
APT_PACKAGES=(python3-bpfcc bpfcc-tools libbpfcc linux-headers-amd64 iproute2 iputils-ping
              nftables bpftool babeld bird2 iperf3 prometheus prometheus-alertmanager)
STAMP="$VENV/.x0-installed"
missing=()

# pip -q still warns about every index location it skips; keep real errors only.
quiet_pip() { "$VENV/bin/pip" "$@" 2>&1 | { grep -v "^WARNING: Location '" || true; }; }
say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
is_root() { [ "$(id -u)" -eq 0 ]; }

apt_missing() {
  local pkg status
  for pkg in "${APT_PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [[ "$status" == "install ok installed" ]] || echo "$pkg"
  done
}

install_apt() {
  local need
  mapfile -t need < <(apt_missing)
  [ "${#need[@]}" -eq 0 ] && return 0
  if ! is_root; then
    missing+=("apt packages (run as root): ${need[*]}")
    return 0
  fi
  say "installing ${need[*]}"
  if [ ! -f /var/lib/apt/periodic/x0-updated ] || ! apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1; then
    apt-get update -qq
    mkdir -p /var/lib/apt/periodic && touch /var/lib/apt/periodic/x0-updated
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
  # Debian's prometheus packages start daemons; tests start their own.
  for svc in prometheus prometheus-alertmanager prometheus-node-exporter; do
    systemctl disable --now "$svc" >/dev/null 2>&1 || true
  done
}

link_kernel_headers() {
  local mod="/lib/modules/$(uname -r)" hdr common
  [ -e "$mod/build" ] && [ -e "$mod/source" ] && return 0
  hdr=$(ls -d /usr/src/linux-headers-*-amd64 2>/dev/null | sort -V | tail -n1 || true)
  common=$(ls -d /usr/src/linux-headers-*-common 2>/dev/null | sort -V | tail -n1 || true)
  if [ -z "$hdr" ]; then missing+=("kernel headers (linux-headers-amd64)"); return 0; fi
  if ! is_root; then missing+=("links $mod/{build,source} (run as root)"); return 0; fi
  say "linking $mod/build -> $hdr"
  mkdir -p "$mod"
  [ -e "$mod/build" ] || ln -sfn "$hdr" "$mod/build"
  [ -e "$mod/source" ] || ln -sfn "${common:-$hdr}" "$mod/source"
}

mount_fs() {
  local type=$1 dir=$2
  grep -q " $dir $type " /proc/mounts && return 0
  if ! is_root; then missing+=("$type at $dir (run as root)"); return 0; fi
  say "mounting $type at $dir"
  mkdir -p "$dir"
  mount -t "$type" "$type" "$dir" || missing+=("$type at $dir (mount failed)")
}

make_venv() {
  if [ -f "$STAMP" ] && [ "$STAMP" -nt pyproject.toml ]; then return 0; fi
  [ -x "$VENV/bin/python" ] || { say "creating $VENV"; "$PY" -m venv "$VENV"; }
  # torch first, from the CPU build on local disk, so nothing pulls a CUDA build.
  "$VENV/bin/python" -c "import torch" 2>/dev/null || {
    say "installing torch==$TORCH_VERSION"; quiet_pip install -q "torch==$TORCH_VERSION"; }
  say "installing x0tta6bl4 (editable) and test tools"
  quiet_pip install -q -e '.[dev]'
  touch "$STAMP"
}

expose_bcc() {
  local site
  site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  if [ -d /usr/lib/python3/dist-packages/bcc ]; then
    [ -e "$site/bcc" ] || ln -sfn /usr/lib/python3/dist-packages/bcc "$site/bcc"
  else
    missing+=("bcc python module (python3-bpfcc)")
  fi
}

install_apt
link_kernel_headers
mount_fs bpf /sys/fs/bpf
mount_fs tracefs /sys/kernel/tracing
make_venv
expose_bcc

if [ "${#missing[@]}" -gt 0 ]; then
  say "could not set up (features that need them stay off; see \`x0tta6bl4 doctor\`):"
  for m in "${missing[@]}"; do printf '   - %s\n' "$m"; done
fi
exit 0
