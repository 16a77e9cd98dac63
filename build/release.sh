#!/usr/bin/env bash
# deno task release -> dist/release/ (docs/build.md "Release"):
#   aegisbpf          the single binary (when deno compile can run; see compile.sh)
#   sbom.cdx.json     CycloneDX 1.5 SBOM (deno.lock, Deno, libbpf, elfutils)
#   SHA256SUMS        sha256sum format, every file above
#   SHA256SUMS.sig    Ed25519 signature of SHA256SUMS, only with
#                     AEGIS_RELEASE_KEY=/path/PREFIX.key (aegisbpf keys generate)
# AEGIS_RELEASE_NO_BINARY=1 skips the compile step (SBOM and sums only).
# Without a denort runtime the release has no binary and the script exits 3
# after writing the rest, so a release is never silently incomplete.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
deno=${DENO:-$root/.tools/bin/deno}
out=dist/release
rm -rf "$out" && mkdir -p "$out"
rel() { "$deno" run --quiet --frozen --allow-read="$root${AEGIS_RELEASE_KEY:+,$AEGIS_RELEASE_KEY}" --allow-write="$root/dist" \
  build/release.ts "$@"; }

binary=1
if [ "${AEGIS_RELEASE_NO_BINARY:-}" = 1 ]; then
  binary=0
  echo "release: no binary (AEGIS_RELEASE_NO_BINARY=1)"
else
  rc=0
  bash build/compile.sh || rc=$?
  case $rc in
    0) cp dist/aegisbpf "$out/aegisbpf" ;;
    3) binary=0; echo "release: no binary: deno compile has no denort runtime (see above)" >&2 ;;
    *) exit "$rc" ;;
  esac
fi
rel sbom "$out/sbom.cdx.json"
rel sums "$out"
if [ -n "${AEGIS_RELEASE_KEY:-}" ]; then
  rel sign "$out" "$AEGIS_RELEASE_KEY"
fi
echo "release: $out:"
(cd "$out" && ls -l)
if [ $binary -eq 0 ] && [ "${AEGIS_RELEASE_NO_BINARY:-}" != 1 ]; then exit 3; fi
