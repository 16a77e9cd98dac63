#!/usr/bin/env bash
# deno task compile: dist/aegisbpf, one executable with everything embedded.
#
# deno compile needs a "denort" runtime of the same Deno version. First it is
# run as is (it downloads that runtime where the build machine can reach Deno's
# release server); when that fails the script says why and asks for
# DENORT_BIN=/path/to/denort (air-gapped build hosts; docs/build.md).
# The lockfile is frozen: deno.lock is never rewritten.
# Exit: 0 built, 3 no usable runtime (DENORT_BIN missing/bad), 1 other failure.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
deno=${DENO:-$root/.tools/bin/deno}
want=$(tr -d ' \n' < build/deno-version.txt)

[ -f dist/gen/embedded.ts ] || bash build/build.sh

if [ -n "${DENORT_BIN:-}" ] && [ ! -x "$DENORT_BIN" ]; then
  echo "compile: DENORT_BIN=$DENORT_BIN is not an executable file" >&2
  exit 3
fi

mapfile -t perms < <(grep -vE '^\s*(#|$)' build/permissions.flags)
mkdir -p dist
log=$(mktemp /tmp/aegis-compile.XXXXXX)
trap 'rm -f "$log"' EXIT
compile() {
  NO_COLOR=1 "$deno" compile --quiet --frozen --no-check=remote "${perms[@]}" \
    --output dist/aegisbpf src/main.ts >"$log" 2>&1
}

if [ -n "${DENORT_BIN:-}" ]; then
  if ! DENORT_BIN="$DENORT_BIN" compile; then
    cat "$log" >&2
    echo "compile: deno compile failed with DENORT_BIN=$DENORT_BIN" >&2
    exit 1
  fi
elif ! compile; then
  # Only a failed runtime download is "no denort"; anything else is a real error.
  if grep -qiE 'denort|dl\.deno\.land|error sending request|dns error|Setting up base binary' "$log"; then
    why=$(grep -iE 'error|Caused by|[0-9]: ' "$log" | grep -v '^\s*[0-9]*: <unknown>' | head -6)
    cat >&2 <<MSG
compile: deno compile could not get its denort runtime:
$why
Give it the denort of Deno $want from a connected machine:
  DENORT_BIN=/path/to/denort deno task compile
(the "denort-x86_64-unknown-linux-gnu.zip" release asset of Deno $want,
unzipped; the full "deno" binary does not work as a denort).
MSG
    exit 3
  fi
  cat "$log" >&2
  echo "compile: deno compile failed (see above)" >&2
  exit 1
fi
echo "compile: wrote dist/aegisbpf ($(stat -c %s dist/aegisbpf) bytes)"
