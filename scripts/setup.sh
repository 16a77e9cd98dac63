#!/usr/bin/env bash
# Set up a Debian 12 machine (as root) to build and test aegisbpf.
# Idempotent: a second run checks, installs nothing new and says so.
#   - apt packages pinned in build/apt-packages.txt (name=version)
#   - Deno from the npm package `deno` (version in build/deno-version.txt)
#     into .tools/ (project-local; nothing global)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

say() { printf 'setup: %s\n' "$*"; }

# ---- apt packages -------------------------------------------------------
mapfile -t wanted < <(grep -vE '^\s*(#|$)' build/apt-packages.txt)
missing=()
for spec in "${wanted[@]}"; do
  name=${spec%%=*}
  have=$(dpkg-query -W -f='${Status} ${Version}\n' "$name" 2>/dev/null || true)
  case "$have" in
    "install ok installed "*) ;;
    *) missing+=("$name") ;;
  esac
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    say "missing apt packages: ${missing[*]} (run as root to install them)" >&2
    exit 1
  fi
  say "installing apt packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # prometheus is here for promtool only; the package enables and starts its server, which a
  # build machine does not want (only when this run installed it: an operator's stays as it is)
  if [[ " ${missing[*]} " == *" prometheus "* ]]; then
    systemctl disable --now prometheus.service >/dev/null 2>&1 ||
      systemctl disable prometheus.service >/dev/null 2>&1 || true
  fi
else
  say "apt packages: all ${#wanted[@]} present"
fi
for spec in "${wanted[@]}"; do
  name=${spec%%=*}
  printf '  %-22s %s\n' "$name" "$(dpkg-query -W -f='${Version}' "$name")"
done

# ---- Deno ------------------------------------------------------------------
deno_version=$(tr -d ' \n' < build/deno-version.txt)
deno_bin=.tools/bin/deno
current=""
[ -x "$deno_bin" ] && current=$("$deno_bin" --version 2>/dev/null | awk 'NR==1{print $2}')
if [ "$current" != "$deno_version" ]; then
  say "installing deno $deno_version from the npm registry into .tools/"
  mkdir -p .tools
  npm install --prefix .tools --no-audit --no-fund --save-exact --loglevel=error "deno@$deno_version" >/dev/null
  real=$(find .tools/node_modules/@deno -maxdepth 2 -type f -name deno | head -n1)
  [ -n "$real" ] || { say "npm installed no deno binary (looked in .tools/node_modules/@deno)" >&2; exit 1; }
  mkdir -p .tools/bin
  ln -sf "../${real#.tools/}" "$deno_bin"
else
  say "deno $deno_version already in .tools/"
fi
"$deno_bin" --version | sed 's/^/  /'

# ---- filesystems the tests need (the agent itself never mounts) ---------------
# Only reported here; tests/host/setup_mounts.sh mounts them for the test run.
say "done"
