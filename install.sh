#!/usr/bin/env bash
# Installs sipguard on Debian 12 (run as root): the system packages it needs (only the missing
# ones), a virtualenv in ./.venv with sipguard in it, and the example configuration in
# /etc/sipguard (never overwriting one that is there). Then: .venv/bin/sipguard run
set -euo pipefail
cd "$(dirname "$0")"

if [ "$(id -u)" -ne 0 ]; then
  echo "install.sh: run as root (it installs packages and writes /etc/sipguard)" >&2
  exit 1
fi

pkgs=(nftables conntrack libnftables1 python3-venv gcc python3-dev)  # gcc, headers: the C normalizer
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
.venv/bin/python -m pip install -q .

install -d -m 0755 /etc/sipguard /etc/sipguard/conf.d
if [ ! -e /etc/sipguard/sipguard.toml ]; then
  install -m 0640 etc/sipguard.toml /etc/sipguard/sipguard.toml
  echo "install.sh: example configuration in /etc/sipguard/sipguard.toml"
fi
.venv/bin/sipguard config check >/dev/null

echo "install.sh: ready. Start with: $(pwd)/.venv/bin/sipguard run"
echo "install.sh: as a service: see packaging/sipguard.service"
