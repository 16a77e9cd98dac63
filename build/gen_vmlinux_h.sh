#!/usr/bin/env bash
# Generate bpf/vmlinux/vmlinux.h from the BTF of the pinned Debian 6.1 kernel
# (build/kernels.env: KERNEL_6_1_PKG, KERNEL_6_1_VERSION), the oldest kernel
# the agent supports, so CO-RE programs only use types it has.
# Never reads the build machine's running kernel (/sys/kernel/btf/vmlinux).
#   bash build/gen_vmlinux_h.sh
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

die() { printf 'gen_vmlinux_h: ERROR: %s\n' "$*" >&2; exit 1; }
say() { printf 'gen_vmlinux_h: %s\n' "$*"; }

# shellcheck source=build/kernels.env
. build/kernels.env
pkg=${KERNEL_6_1_PKG:?missing in build/kernels.env}
ver=${KERNEL_6_1_VERSION:?missing in build/kernels.env}
for tool in apt-get dpkg-deb bpftool readelf flock; do
	command -v "$tool" >/dev/null || die "missing tool: $tool"
done

cache=.cache/kernels
deb="$cache/${pkg}_${ver}_amd64.deb"
mkdir -p "$cache"

# The VM harness shares this cache (same lock, same file names): download to
# a temporary name and rename into place under the lock.
fetch_deb() {
	[ -s "$deb" ] && return 0
	say "downloading $pkg=$ver"
	local tmp
	tmp=$(mktemp -d "$cache/.dl.XXXXXX")
	if ! (cd "$tmp" && apt-get download -q "$pkg=$ver" >/dev/null); then
		rm -rf "$tmp"
		die "apt-get download $pkg=$ver failed; if the version is gone, update build/kernels.env (see its comment)"
	fi
	mv "$tmp"/*.deb "$deb"
	rm -rf "$tmp"
}
(
	flock 9
	fetch_deb
) 9>"$cache/.lock"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dpkg-deb -x "$deb" "$work/pkg"
vmlinuz=$(ls "$work"/pkg/boot/vmlinuz-* 2>/dev/null | head -n1)
[ -n "$vmlinuz" ] || die "no /boot/vmlinuz-* in $deb"

# Offsets (bytes) of a magic string in a file, one per line.
magic_offsets() { LC_ALL=C grep -obUaP "$2" "$1" 2>/dev/null | cut -d: -f1 || true; }

# Try to decompress from one offset; succeed only if the result is an ELF
# with a .BTF section.
try_extract() {
	local off=$1 cmd=$2 out=$work/vmlinux
	tail -c +$((off + 1)) "$vmlinuz" | $cmd >"$out" 2>/dev/null || true
	[ -s "$out" ] || return 1
	[ "$(head -c 4 "$out" | od -An -tx1 | tr -d ' \n')" = 7f454c46 ] || return 1
	# (no `| grep -q`: with pipefail, readelf's SIGPIPE would fail the test)
	[ "$(readelf -S "$out" 2>/dev/null | grep -c '\.BTF')" -gt 0 ] || return 1
}

extract_vmlinux() {
	local name magic cmd off
	while IFS='|' read -r name magic cmd; do
		command -v "${cmd%% *}" >/dev/null || continue
		for off in $(magic_offsets "$vmlinuz" "$magic"); do
			if try_extract "$off" "$cmd"; then
				say "vmlinux: $name stream at offset $off"
				return 0
			fi
		done
	done <<-'TABLE'
		xz|\xFD7zXZ\x00|xz -dc --single-stream
		zstd|\x28\xB5\x2F\xFD|zstd -dcq
		gzip|\x1F\x8B\x08|gzip -dc
	TABLE
	return 1
}
extract_vmlinux || die "could not find an xz/zstd/gzip vmlinux with .BTF in $(basename "$vmlinuz")"

out=bpf/vmlinux/vmlinux.h
tmp_h=$(mktemp "$out.XXXXXX")
{
	printf '/* Generated from the BTF of Debian %s=%s (%s).\n' "$pkg" "$ver" "$(basename "$vmlinuz")"
	printf ' * Do not edit. Regenerate with: bash build/gen_vmlinux_h.sh */\n'
	bpftool btf dump file "$work/vmlinux" format c
} >"$tmp_h" || { rm -f "$tmp_h"; die "bpftool btf dump failed"; }
mv "$tmp_h" "$out"
say "wrote $out ($(wc -c <"$out") bytes) from $pkg=$ver"
