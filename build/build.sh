#!/usr/bin/env bash
# deno task build: native artifacts, ABI codecs check, embedded-asset module.
#   1. build/native.sh        -> dist/native/{libaegis_shim.so,aegis.bpf.o,manifest.json}
#   2. build/gen_abi.ts --check (src/bpf/abi_gen.ts must match the header)
#   3. build/gen_assets.ts    -> dist/gen/embedded.ts (both artifacts, base64 + SHA-256)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
deno=${DENO:-$root/.tools/bin/deno}
[ -x "$deno" ] || { echo "build: no deno at $deno; run scripts/setup.sh first" >&2; exit 1; }

bash build/native.sh
"$deno" run --quiet --allow-read --allow-write --allow-run --allow-env \
  build/gen_abi.ts --check
"$deno" run --quiet --allow-read="$root" --allow-write="$root/dist" build/gen_assets.ts
# npm dependencies into Deno's cache, exactly as deno.lock pins them.
"$deno" cache --quiet --frozen src/main.ts
