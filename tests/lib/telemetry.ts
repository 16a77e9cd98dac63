/**
 * Helpers of the host tests on the telemetry path (tests/host/telemetry_test.ts,
 * tests/host/promtool_test.ts): a fallback object on the real kernel with a
 * denied file, and samples read out of exposition text.
 *
 * @module
 */
import { bpfObjectBytes, openEmbeddedShim } from "../../src/assets/mod.ts";
import { AEGIS_POL_FILE_RULES, AEGIS_RT_INODE, AEGIS_RULE_DENY } from "../../src/bpf/abi_gen.ts";
import { FallbackSet } from "../../src/bpf/fallback.ts";
import { inodeKey, kernelDev, policyValue, ruleValue, u32Key } from "../../src/bpf/rule_codec.ts";
import type { MetricsMap } from "../../src/metrics/render.ts";
import type { MapName } from "../../src/bpf/abi_gen.ts";

export type Ring = ReturnType<Awaited<ReturnType<typeof openEmbeddedShim>>["openRing"]>;

/**
 * A fallback set (audit: no signal) with a deny rule on a fresh file, so
 * every open of it is an AUDIT record and an audit in the hook stats. The
 * shim is extracted into `shimDir`; `pinRoot` pins the maps there.
 */
export async function withDeniedFile(
  shimDir: string,
  ringBytes: number,
  fn: (fb: FallbackSet, ring: Ring, file: string) => Promise<void>,
  pinRoot: string | null = null,
): Promise<void> {
  using shim = await openEmbeddedShim(shimDir);
  using fb = FallbackSet.load(shim, await bpfObjectBytes(), { signal: 0, pinRoot, ringBytes });
  using ring = shim.openRing(fb.eventsFd());
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "aegis-tel-" });
  try {
    const file = `${dir}/denied`;
    await Deno.writeTextFile(file, "x\n");
    const st = Deno.statSync(file);
    fb.map("aegis_deny_inode").update(
      inodeKey(kernelDev(st.dev), st.ino!, 0),
      ruleValue(9001, AEGIS_RULE_DENY, AEGIS_RT_INODE),
    );
    fb.map("aegis_policy").update(u32Key(0), policyValue(AEGIS_POL_FILE_RULES));
    await fn(fb, ring, file);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The fallback's maps by name for MetricsSources.map, null for a map it does not have. */
export function mapsOf(fb: FallbackSet): (name: MapName) => MetricsMap | null {
  return (name) => {
    try {
      return fb.map(name);
    } catch {
      return null;
    }
  };
}

/** Open and close `file` `n` times. */
export function openMany(file: string, n: number): void {
  for (let i = 0; i < n; i++) Deno.openSync(file).close();
}

/** Value of a sample in exposition text; `labels` as rendered, e.g. `{action="audit"}`. */
export function sample(text: string, name: string, labels = ""): number | undefined {
  const esc = labels.replace(/[{}"\\]/g, (c) => `\\${c}`);
  const m = new RegExp(`^${name}${esc} (\\S+)$`, "m").exec(text);
  return m ? Number(m[1]) : undefined;
}
