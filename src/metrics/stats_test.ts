/**
 * `stats` and `network stats` sum what renderMetrics writes: rendered from
 * fake kernel maps here, so a renamed metric breaks this test, not the CLI.
 */
import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import {
  ABI_LAYOUT,
  AEGIS_CNT_EVENTS,
  AEGIS_CNT_RINGBUF_DROPS,
  AEGIS_CNT_SURVIVAL_ALLOW,
  AEGIS_HOOK_FILE_OPEN,
  AEGIS_HOOK_SOCKET_CONNECT,
  AEGIS_RT_IP,
} from "../bpf/abi_gen.ts";
import type { MapName } from "../bpf/abi_gen.ts";
import { BlockTally } from "./block_tally.ts";
import { kernelOnlySources, type MetricsMap, NetBlockCounter, renderMetrics } from "./render.ts";
import { kernelStats, readSamples } from "./stats.ts";
import type { KernelRecord } from "../events/decode.ts";

const CPUS = 2;

/** A per-CPU array: index → per-CPU u64 fields. */
function perCpuArray(valueSize: number, vals: Record<number, bigint[][]>): MetricsMap {
  const stride = (valueSize + 7) & ~7;
  return {
    maxEntries: 16,
    valueSize,
    slots: CPUS,
    lookup(key) {
      const v = vals[new DataView(key.buffer).getUint32(0, true)];
      if (!v) return null;
      const out = new Uint8Array(CPUS * stride);
      const dv = new DataView(out.buffer);
      v.forEach((fields, cpu) =>
        fields.forEach((f, j) => dv.setBigUint64(cpu * stride + j * 8, f, true))
      );
      return out;
    },
    keys: () => [],
    sumU64(i) {
      return (vals[i] ?? []).reduce((n, f) => n + (f[0] ?? 0n), 0n);
    },
  };
}

const HOOKS = perCpuArray(ABI_LAYOUT.structs.aegis_hook_stat.size, {
  // invocations, blocks, audits, latency per CPU
  [AEGIS_HOOK_FILE_OPEN]: [[100n, 3n, 1n, 0n], [50n, 2n, 0n, 0n]],
  [AEGIS_HOOK_SOCKET_CONNECT]: [[10n, 0n, 4n, 0n], [5n, 1n, 0n, 0n]],
});
const COUNTERS = perCpuArray(8, {
  [AEGIS_CNT_RINGBUF_DROPS]: [[7n], [1n]],
  [AEGIS_CNT_EVENTS]: [[40n], [2n]],
  [AEGIS_CNT_SURVIVAL_ALLOW]: [[0n], [3n]],
});
const maps = (n: MapName) =>
  n === "aegis_hook_stats" ? HOOKS : n === "aegis_counters" ? COUNTERS : null;

Deno.test("stats: per hook, totals, drops (per CPU) and survival allows from the rendered metrics", async () => {
  const text = await renderMetrics(kernelOnlySources(maps, "/nonexistent"), { detailed: true });
  const k = kernelStats(text);
  deepStrictEqual([k.blocks, k.audits, k.ringbuf_drops, k.events], [6, 5, 8, 42]);
  deepStrictEqual(k.hooks.find((h) => h.hook === "file_open"), {
    hook: "file_open",
    invocations: 150,
    blocks: 5,
    audits: 1,
  });
  deepStrictEqual(k.hooks.find((h) => h.hook === "socket_connect"), {
    hook: "socket_connect",
    invocations: 15,
    blocks: 1,
    audits: 4,
  });
  deepStrictEqual(k.ringbuf_drops_per_cpu, [7, 1]);
  strictEqual(k.survival_allows, 3);
  strictEqual(k.net_by_type, null, "no daemon: the by-type counts are unknown, not zero");
});

Deno.test("stats: the proof's own denies are not blocks; the daemon's by-type counts are read", async () => {
  const net = new NetBlockCounter();
  net.observe({ kind: "net_block", action: 1, ruleType: AEGIS_RT_IP } as KernelRecord);
  const text = await renderMetrics({
    ...kernelOnlySources(maps, "/nonexistent"),
    netBlocks: net.counts,
    selfTest: { byHook: { file_open: 2 }, liveCanaryEntries: 0 },
  }, { detailed: true });
  const k = kernelStats(text);
  strictEqual(k.hooks.find((h) => h.hook === "file_open")?.blocks, 3);
  strictEqual(k.blocks, 4);
  strictEqual(k.net_by_type?.block.ip, 1);
  strictEqual(k.net_by_type?.audit.cidr, 0);
});

Deno.test("readSamples: labels with escapes; a line that is not a sample is an error", () => {
  deepStrictEqual(readSamples('# HELP x y\nx{a="q\\"\\n\\\\",b="2"} 3\n\n'), [
    { name: "x", labels: { a: 'q"\n\\', b: "2" }, value: 3 },
  ]);
  throws(() => readSamples("x y z\n"), /not a metrics sample/);
});

Deno.test("block tally: by rule and by cgroup, block vs audit, bounded with an overflow row", () => {
  const t = new BlockTally(1_700_000_000_123, 2);
  const rec = (ruleId: number, cgid: number | bigint, action: number) =>
    ({ kind: "file_block", ruleId, cgid, action }) as KernelRecord;
  t.observe(rec(3, 10, 1));
  t.observe(rec(3, 10, 0));
  t.observe(rec(3, 11, 1));
  t.observe(rec(0x8000_0000, 2n ** 60n, 1));
  t.observe(rec(9, 12, 1)); // a third rule and a third cgroup: beyond the bound of 2
  t.observe({ kind: "exec" } as KernelRecord); // not a block record
  const s = t.snapshot((id) => (id === 3 ? "line 3: /etc/shadow" : null), () => null);
  strictEqual(s.since_unix, 1_700_000_000);
  strictEqual(s.records, 5);
  deepStrictEqual(s.by_rule, [
    { rule_id: 3, rule: "line 3: /etc/shadow", blocks: 2, audits: 1 },
    { rule_id: 0x8000_0000, rule: null, blocks: 1, audits: 0 },
  ]);
  deepStrictEqual(s.by_cgroup.map((c) => [c.cgid, c.blocks, c.audits]), [
    ["10", 1, 1],
    ["11", 1, 0],
  ]);
  deepStrictEqual(s.other, {
    rules: { blocks: 1, audits: 0 },
    cgroups: { blocks: 2, audits: 0 },
  });
});
