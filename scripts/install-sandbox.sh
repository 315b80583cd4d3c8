#!/usr/bin/env bash
# The function server runs each worker inside a bubblewrap (bwrap) sandbox that shows it only its
# environment and bundle (README, "Worker isolation"); without bwrap it falls back to a weaker mode.
# Root (CI, containers) installs it with apt and fails if that fails; a user who cannot install
# packages is told how and keeps working in the fallback mode.
set -euo pipefail
if command -v bwrap >/dev/null; then
  exit 0
fi
if [ "$(uname -s)" != Linux ]; then
  echo "bubblewrap is Linux-only: the function server's workers run in the fallback mode here." >&2
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
  sudo=""
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  sudo="sudo -n"
else
  echo "bubblewrap is missing and this user cannot install it: run 'apt-get install bubblewrap' as root" \
       "(until then the function server's workers run in the fallback mode)." >&2
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "bubblewrap is missing: install it with this system's package manager" \
       "(until then the function server's workers run in the fallback mode)." >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q bubblewrap
