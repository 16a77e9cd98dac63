#!/usr/bin/env bash
# deno task compile: dist/aegisbpf, one executable with everything embedded.
#
# deno compile needs a "denort" runtime that it normally downloads; on an
# air-gapped build host give it one with DENORT_BIN=/path/to/denort (the
# denort of the same Deno version as build/deno-version.txt).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
deno=${DENO:-$root/.tools/bin/deno}
want=$(tr -d ' \n' < build/deno-version.txt)

[ -f dist/gen/embedded.ts ] || bash build/build.sh

if [ -z "${DENORT_BIN:-}" ]; then
  cat >&2 <<MSG
compile: no denort runtime. deno compile downloads one from the internet,
which this build host cannot reach. Provide the denort of Deno $want:
  DENORT_BIN=/path/to/denort deno task compile
(it is the "denort-x86_64-unknown-linux-gnu.zip" release asset of Deno $want;
copy it in from a connected machine). The full "deno" binary does not work
as a denort.
MSG
  exit 3
fi
[ -x "$DENORT_BIN" ] || { echo "compile: DENORT_BIN=$DENORT_BIN is not an executable file" >&2; exit 3; }

mapfile -t perms < <(grep -vE '^\s*(#|$)' build/permissions.flags)
mkdir -p dist
DENORT_BIN="$DENORT_BIN" "$deno" compile --quiet --no-check=remote "${perms[@]}" \
  --output dist/aegisbpf src/main.ts
echo "compile: wrote dist/aegisbpf ($(stat -c %s dist/aegisbpf) bytes)"
