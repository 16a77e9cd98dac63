#!/usr/bin/env bash
# Build everything native into dist/native/:
#   libaegis_shim.so  the libbpf shim (libbpf + libelf linked in statically)
#   aegis.bpf.o       all BPF programs in one object
#   manifest.json     file names, sizes, SHA-256, build id, versions
# libbpf and libelf are built -fPIC from their pinned Debian source packages
# (build/native-sources.env) and cached under .cache/native/ by version.
#   bash build/native.sh
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

step="start"
say() { printf 'native: %s\n' "$*"; }
die() { printf 'native: ERROR in step "%s": %s\n' "$step" "$*" >&2; exit 1; }
trap 'rc=$?; [ $rc -eq 0 ] || printf "native: FAILED in step \"%s\" (exit %d)\n" "$step" "$rc" >&2' EXIT

# shellcheck source=build/native-sources.env
. build/native-sources.env
jobs=$(nproc 2>/dev/null || echo 2)
# AEGIS_NATIVE_CACHE: share the libbpf/libelf builds between checkouts (the
# reproducibility test builds two copies of the tree against one cache).
cache=${AEGIS_NATIVE_CACHE:-$root/.cache/native}
dist=$root/dist/native
# Reproducible outputs: no build path in any output. The checkout path and the
# cache path are mapped to fixed names in debug info, BTF line info and
# __FILE__, so two checkouts of one commit build byte-identical files
# (tests/artifacts/reproducible_test.ts).
prefix_maps=(-ffile-prefix-map="$root=." -ffile-prefix-map="$cache=.cache/native")
export SOURCE_DATE_EPOCH=0 LC_ALL=C
mkdir -p "$cache" "$dist"

# Bump when the way the archives are built changes (invalidates the cache).
recipe=r1
key() { printf '%s-%s' "$1" "$recipe" | tr ':~' '__'; }
libbpf_key=$(key "$LIBBPF_SRC_VERSION")
elfutils_key=$(key "$ELFUTILS_SRC_VERSION")
elf_out=$cache/out/elfutils-$elfutils_key
bpf_out=$cache/out/libbpf-$libbpf_key

# ---- a. sources ------------------------------------------------------------
# A private apt configuration: own deb-src list, own lists dir, no shared
# package cache written; the system's apt setup stays unchanged. apt checks
# the Release signature and every file's checksum against the signed index.
apt_dir=$cache/apt
apt_opts=()
setup_private_apt() {
	mkdir -p "$apt_dir/lists/partial"
	{
		printf 'deb-src %s %s main\n' "$NATIVE_APT_MIRROR" "$NATIVE_APT_SUITES"
		printf 'deb-src %s %s main\n' "$NATIVE_APT_SECURITY" "$NATIVE_APT_SECURITY_SUITE"
	} >"$apt_dir/sources.list"
	apt_opts=(
		-o "Dir::Etc::sourcelist=$apt_dir/sources.list"
		-o "Dir::Etc::sourceparts=-"
		-o "Dir::State::Lists=$apt_dir/lists"
		-o "Dir::Cache::pkgcache="
		-o "Dir::Cache::srcpkgcache="
		-o "APT::Sandbox::User=root"
	)
}

apt_updated=0
private_apt_update() {
	[ $apt_updated -eq 1 ] && return 0
	say "apt-get update (private deb-src list $apt_dir/sources.list)"
	apt-get "${apt_opts[@]}" update -qq >"$apt_dir/update.log" 2>&1 ||
		die "private apt-get update failed (see $apt_dir/update.log)"
	apt_updated=1
}

# fetch_source <srcpkg> <version> <dest dir>: download + unpack (dpkg-source
# re-checks the .dsc checksums) into dest/src.
fetch_source() {
	local pkg=$1 ver=$2 dest=$3
	[ -f "$dest/.unpacked" ] && return 0
	setup_private_apt
	private_apt_update
	if ! apt-cache "${apt_opts[@]}" showsrc "$pkg" 2>/dev/null | grep -qx "Version: $ver"; then
		die "$pkg=$ver is not offered by the mirror; offered: $(apt-cache "${apt_opts[@]}" showsrc "$pkg" 2>/dev/null | sed -n 's/^Version: //p' | tr '\n' ' ')— update build/native-sources.env"
	fi
	rm -rf "$dest" && mkdir -p "$dest/dl"
	say "apt-get source --download-only $pkg=$ver"
	(cd "$dest/dl" && apt-get "${apt_opts[@]}" source --download-only -qq "$pkg=$ver") \
		>"$dest/fetch.log" 2>&1 || die "apt-get source $pkg=$ver failed (see $dest/fetch.log)"
	(cd "$dest/dl" && dpkg-source -x ./*.dsc ../src) >>"$dest/fetch.log" 2>&1 ||
		die "dpkg-source -x failed for $pkg=$ver (see $dest/fetch.log)"
	touch "$dest/.unpacked"
}

build_libelf() {
	[ -f "$elf_out/.done" ] && return 0
	step="a. elfutils $ELFUTILS_SRC_VERSION (libelf.a -fPIC)"
	local src=$cache/src/elfutils-$elfutils_key
	fetch_source "$ELFUTILS_SRC_PKG" "$ELFUTILS_SRC_VERSION" "$src"
	say "building libelf.a (-fPIC)"
	local log=$src/build.log
	(
		cd "$src/src"
		[ -f config.status ] || CFLAGS="-fPIC -O2" ./configure --disable-debuginfod \
			--disable-libdebuginfod --without-zstd --without-bzlib --without-lzma
		make -j"$jobs" -C lib
		make -j"$jobs" -C libelf libelf.a
	) >"$log" 2>&1 || die "elfutils build failed (see $log)"
	rm -rf "$elf_out" && mkdir -p "$elf_out/include"
	cp "$src/src/libelf/libelf.a" "$elf_out/"
	cp "$src/src/libelf/libelf.h" "$src/src/libelf/gelf.h" "$src/src/libelf/nlist.h" \
		"$elf_out/include/"
	touch "$elf_out/.done"
}

build_libbpf() {
	[ -f "$bpf_out/.done" ] && return 0
	step="a. libbpf $LIBBPF_SRC_VERSION (libbpf.a -fPIC)"
	local src=$cache/src/libbpf-$libbpf_key
	fetch_source "$LIBBPF_SRC_PKG" "$LIBBPF_SRC_VERSION" "$src"
	say "building libbpf.a (-fPIC)"
	local log=$src/build.log obj=$src/obj
	rm -rf "$bpf_out" "$obj" && mkdir -p "$bpf_out" "$obj"
	(
		make -j"$jobs" -C "$src/src/src" BUILD_STATIC_ONLY=y OBJDIR="$obj" \
			CFLAGS="-fPIC -O2 -I$elf_out/include"
		make -C "$src/src/src" install_headers BUILD_STATIC_ONLY=y OBJDIR="$obj" \
			DESTDIR="$bpf_out" PREFIX= INCLUDEDIR=/include
	) >"$log" 2>&1 || die "libbpf build failed (see $log)"
	cp "$obj/libbpf.a" "$bpf_out/"
	mkdir -p "$bpf_out/include/uapi"
	cp -r "$src/src/include/uapi/linux" "$bpf_out/include/uapi/"
	touch "$bpf_out/.done"
}

step="a. tools"
exec 9>"$cache/.lock"
flock 9 || die "cannot lock $cache/.lock"
for tool in flock apt-get dpkg-source make gcc clang llvm-strip readelf nm sha256sum; do
	command -v "$tool" >/dev/null || die "missing tool: $tool (see build/apt-packages.txt)"
done
build_libelf
build_libbpf
say "libelf.a  $(stat -c %s "$elf_out/libelf.a") bytes ($ELFUTILS_SRC_PKG $ELFUTILS_SRC_VERSION)"
say "libbpf.a  $(stat -c %s "$bpf_out/libbpf.a") bytes ($LIBBPF_SRC_PKG $LIBBPF_SRC_VERSION)"

# ---- b. shim ---------------------------------------------------------------
step="b. shim (libaegis_shim.so)"
shim=$dist/libaegis_shim.so
build_id=$(cat $(ls ffi/*.c ffi/*.h | LC_ALL=C sort) | sha256sum | cut -d' ' -f1)
mapfile -t shim_sources < <(ls ffi/*.c | LC_ALL=C sort)
say "compiling $shim (build id ${build_id:0:16}…)"
gcc -shared -fPIC -O2 -Wall -Wextra -Werror -fvisibility=hidden "${prefix_maps[@]}" \
	-DAEGIS_SHIM_BUILD_ID="\"$build_id\"" \
	-I ffi -I "$bpf_out/include" -I "$bpf_out/include/uapi" -I "$elf_out/include" \
	-o "$shim.tmp" "${shim_sources[@]}" \
	-Wl,--whole-archive "$bpf_out/libbpf.a" -Wl,--no-whole-archive "$elf_out/libelf.a" \
	-lz -Wl,--exclude-libs,ALL -Wl,-z,defs -Wl,--as-needed -s ||
	die "compiling the shim failed"
mv "$shim.tmp" "$shim"

step="b. shim checks (dependencies, exported symbols)"
needed=$(readelf -d "$shim" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | LC_ALL=C sort | tr '\n' ' ')
for lib in $needed; do
	# ld-linux is glibc's own loader (libelf's __thread error state needs its
	# __tls_get_addr); it is mapped into every dynamically linked process.
	case "$lib" in
	libc.so.* | libz.so.* | ld-linux-x86-64.so.*) ;;
	*) die "shim needs $lib; only glibc (libc, ld-linux) and libz are allowed (NEEDED: $needed)" ;;
	esac
done
if ldd "$shim" | grep -Eq 'libbpf|libelf|not found'; then
	die "ldd shows a libbpf/libelf/missing dependency: $(ldd "$shim" | tr '\n' ' ')"
fi
want_syms=$(grep -oE '\baegis_[a-z0-9_]+\(' ffi/aegis_shim.h | tr -d '(' | LC_ALL=C sort -u)
have_syms=$(nm -D --defined-only "$shim" | awk '{print $3}' | LC_ALL=C sort -u)
if [ "$want_syms" != "$have_syms" ]; then
	die "exported symbols differ from ffi/aegis_shim.h:
$(diff <(printf '%s\n' "$want_syms") <(printf '%s\n' "$have_syms") | sed -n 's/^[<>]/  &/p')
  (< only in the header, > only in the .so)"
fi
say "shim: $(stat -c %s "$shim") bytes, NEEDED: $needed, $(printf '%s\n' "$have_syms" | wc -l) aegis_* symbols"

# ---- c. BPF object ---------------------------------------------------------
step="c. BPF object (aegis.bpf.o)"
bpf_obj=$dist/aegis.bpf.o
[ -s bpf/vmlinux/vmlinux.h ] || die "bpf/vmlinux/vmlinux.h missing; run build/gen_vmlinux_h.sh"
say "compiling $bpf_obj"
clang -g -O2 -target bpf -Wall -Werror -D__TARGET_ARCH_x86 "${prefix_maps[@]}" \
	-I bpf/include -I bpf/vmlinux -I "$bpf_out/include" \
	-c bpf/aegis.bpf.c -o "$bpf_obj.full" || die "clang failed on bpf/aegis.bpf.c"
# DWARF out, BTF (.BTF, .BTF.ext: CO-RE relocations) kept.
llvm-strip -g "$bpf_obj.full" -o "$bpf_obj.tmp" || die "llvm-strip failed"
sections=$(readelf -S -W "$bpf_obj.tmp")
for sec in .BTF .BTF.ext .maps license; do
	grep -q " $sec " <<<"$sections" || die "section $sec missing from the stripped object"
done
mv "$bpf_obj.tmp" "$bpf_obj"
rm -f "$bpf_obj.full"
say "bpf: $(stat -c %s "$bpf_obj") bytes"

# ---- d. manifest -----------------------------------------------------------
step="d. manifest.json"
sha() { sha256sum "$1" | cut -d' ' -f1; }
abi_version=$(sed -n 's/^#define AEGIS_ABI_VERSION \([0-9]*\).*/\1/p' bpf/include/aegis_abi.h)
[ -n "$abi_version" ] || die "AEGIS_ABI_VERSION not found in bpf/include/aegis_abi.h"
cat >"$dist/manifest.json.tmp" <<JSON
{
  "shim": {
    "file": "libaegis_shim.so",
    "sha256": "$(sha "$shim")",
    "bytes": $(stat -c %s "$shim"),
    "build_id": "$build_id"
  },
  "bpf": {
    "file": "aegis.bpf.o",
    "sha256": "$(sha "$bpf_obj")",
    "bytes": $(stat -c %s "$bpf_obj")
  },
  "libbpf_version": "$LIBBPF_VERSION",
  "abi_version": $abi_version
}
JSON
mv "$dist/manifest.json.tmp" "$dist/manifest.json"
step="done"
say "wrote dist/native/{libaegis_shim.so,aegis.bpf.o,manifest.json}"
