#!/usr/bin/env bash
# Download and unpack the pinned Debian kernels (build/kernels.env) for the VM
# test tier.
#   .cache/kernels/<pkg>_<version>_amd64.deb   (shared with other scripts; flock'd)
#   .cache/vm/<pkg>_<version>/                 (dpkg-deb -x tree: boot/vmlinuz-*, lib/modules/*)
# Usage: scripts/vm/fetch_kernels.sh [6.1|6.12 ...]   (default: all pinned kernels)
# Prints, per kernel: "<series> <unpacked dir>".
# Exit 2 when a pinned version is no longer offered (with what to change).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
# shellcheck source=/dev/null
# AEGIS_KERNELS_ENV: alternative pin file (tests of the "version gone" message only)
. "${AEGIS_KERNELS_ENV:-build/kernels.env}"

series_list=("$@")
[ ${#series_list[@]} -gt 0 ] || series_list=(6.1 6.12)

say() { printf 'fetch_kernels: %s\n' "$*" >&2; }

mkdir -p .cache/kernels .cache/vm

explain_missing() { # series pkgvar vervar pkg version
  local series=$1 pkgvar=$2 vervar=$3 pkg=$4 ver=$5 pattern
  say "pinned kernel $pkg=$ver is not offered by apt any more."
  say "update build/kernels.env: set $pkgvar and $vervar (both) to one of the offers below (newest last)."
  if [ "$series" = 6.1 ]; then
    pattern='^linux-image-6\.1\.0-[0-9]+-amd64$'
  else
    pattern='^linux-image-6\.12\.[0-9]+\+deb12-amd64$'
  fi
  local offers
  offers=$(apt-cache search --names-only "$pattern" 2>/dev/null | awk '{print $1}' | sort -V || true)
  if [ -z "$offers" ]; then
    say "apt offers no package matching $pattern (run 'apt-get update' first?)"
    return
  fi
  local p v
  while read -r p; do
    v=$(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/ {print $2}')
    say "  offered: $pkgvar=$p $vervar=$v"
  done <<<"$offers"
}

fetch_one() { # series
  local series=$1 pkgvar vervar pkg ver deb tmp dir
  case "$series" in
    6.1)  pkgvar=KERNEL_6_1_PKG;  vervar=KERNEL_6_1_VERSION ;;
    6.12) pkgvar=KERNEL_6_12_PKG; vervar=KERNEL_6_12_VERSION ;;
    *) say "unknown kernel series '$series' (want 6.1 or 6.12)"; return 1 ;;
  esac
  pkg=${!pkgvar}; ver=${!vervar}
  deb=.cache/kernels/${pkg}_${ver}_amd64.deb
  dir=.cache/vm/${pkg}_${ver}
  (
    flock 9
    if [ ! -s "$deb" ]; then
      say "downloading $pkg=$ver"
      tmp=$(mktemp -d .cache/kernels/.dl.XXXXXX)
      if ! (cd "$tmp" && apt-get download -q "$pkg=$ver" >/dev/null 2>"$root/$tmp/err"); then
        cat "$tmp/err" >&2 || true
        rm -rf "$tmp"
        explain_missing "$series" "$pkgvar" "$vervar" "$pkg" "$ver"
        exit 2
      fi
      local got
      got=$(ls "$tmp"/*.deb)
      mv "$got" "$deb"
      rm -rf "$tmp"
    fi
  ) 9>.cache/kernels/.lock || return $?
  (
    flock 9
    if [ ! -e "$dir/.unpacked" ]; then
      say "unpacking $deb"
      rm -rf "$dir" "$dir.tmp"
      mkdir -p "$dir.tmp"
      dpkg-deb -x "$deb" "$dir.tmp"
      touch "$dir.tmp/.unpacked"
      mv "$dir.tmp" "$dir"
    fi
  ) 9>.cache/vm/.lock || return $?
  printf '%s %s\n' "$series" "$root/$dir"
}

rc=0
for s in "${series_list[@]}"; do
  fetch_one "$s" || rc=$?
done
exit $rc
