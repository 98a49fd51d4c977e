#!/usr/bin/env bash
# Peers the integration tests talk to: dcmtk (storescu, echoscu) and Orthanc (a real PACS).
# Idempotent and quiet: installs with apt-get only what is missing (apt-get update only then).
# Orthanc's own system service is kept stopped: tests start private instances on loopback ports.
set -euo pipefail

have_dcmtk() {  # a venv's pynetdicom installs its own `storescu`: check every one on PATH
  local b
  for b in $(type -ap storescu) /usr/bin/storescu; do
    [ -x "$b" ] && "$b" --version 2>/dev/null | grep -qi dcmtk && return 0
  done
  return 1
}
have_orthanc() { command -v Orthanc >/dev/null 2>&1 || [ -x /usr/sbin/Orthanc ]; }

pkgs=()
have_dcmtk || pkgs+=(dcmtk)
have_orthanc || pkgs+=(orthanc)
[ ${#pkgs[@]} -eq 0 ] && exit 0

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
  else
    echo "install-peers: ${pkgs[*]} missing and no root; the tests that need them will be skipped" >&2
    exit 0
  fi
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq >/dev/null
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
if [[ " ${pkgs[*]} " == *" orthanc "* ]]; then
  # the package enables a service on 4242/8042; tests bring their own configuration and ports
  if command -v systemctl >/dev/null 2>&1; then
    "${SUDO[@]}" systemctl disable --now orthanc >/dev/null 2>&1 || true
  fi
  "${SUDO[@]}" service orthanc stop >/dev/null 2>&1 || true
fi
