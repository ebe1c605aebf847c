#!/usr/bin/env bash
# Installs sipguard on Debian 12 (run as root): the system packages it needs (only the missing
# ones), a virtualenv in ./.venv with sipguard in it (sensor and notifications included), and the
# example configuration in /etc/sipguard (never overwriting one that is there).
# Then: .venv/bin/sipguard run
#   ./install.sh --service   also installs the systemd units (sipguard, sipguard-sensor) with
#                            ExecStart pointing at this checkout's .venv
set -euo pipefail
cd "$(dirname "$0")"

service=0
case "${1:-}" in
  "") ;;
  --service) service=1 ;;
  *) echo "install.sh: unknown option ${1} (only --service)" >&2; exit 2 ;;
esac

if [ "$(id -u)" -ne 0 ]; then
  echo "install.sh: run as root (it installs packages and writes /etc/sipguard)" >&2
  exit 1
fi

# gcc, headers: the C normalizer; libnetfilter-queue: `sipguard sensor` (NFQUEUE)
pkgs=(nftables conntrack libnftables1 python3-venv gcc python3-dev libnetfilter-queue1
  libnetfilter-queue-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

py=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
# every command the README names works after this: the sensor (NFQUEUE) and notifications too
.venv/bin/python -m pip install -q '.[sensor,notify,geo]'

# SIPGUARD_ETC: another directory than /etc/sipguard (the install test uses a temporary one)
etc=${SIPGUARD_ETC:-/etc/sipguard}
install -d -m 0755 "$etc" "$etc/conf.d"
if [ ! -e "$etc/sipguard.toml" ]; then
  install -m 0640 etc/sipguard.toml "$etc/sipguard.toml"
  echo "install.sh: example configuration in $etc/sipguard.toml"
fi
.venv/bin/sipguard config check --config "$etc" >/dev/null

if [ "$service" = 1 ]; then
  case "$PWD" in
    /root/*|/home/*|/run/user/*)
      echo "install.sh: $PWD is hidden from the units (ProtectHome=yes): move the checkout" \
        "(e.g. to /opt/sipguard) or install the Debian package (packaging/build-deb)" >&2
      exit 1 ;;
  esac
  units=${SIPGUARD_UNIT_DIR:-/etc/systemd/system}  # the install test writes them elsewhere
  for unit in sipguard.service sipguard-sensor.service; do
    # the packaged units run /usr/bin/sipguard; here it is this checkout's venv
    sed "s|^ExecStart=/usr/bin/sipguard |ExecStart=$PWD/.venv/bin/sipguard |" \
      "packaging/$unit" > "$units/$unit"
  done
  systemctl daemon-reload 2>/dev/null || true
  echo "install.sh: units in $units: systemctl enable --now sipguard"
fi

echo "install.sh: ready. Start with: $PWD/.venv/bin/sipguard run"
[ "$service" = 1 ] || echo "install.sh: as a service: ./install.sh --service"
