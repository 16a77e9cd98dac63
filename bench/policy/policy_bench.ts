/**
 * bench/policy: `policy apply` of 65,536 path/inode rules and 16,384 CIDR
 * rules (issue 5 target: < 1 s end to end on this machine), and the time
 * of the generation switch itself.
 *
 * BPF LSM programs cannot load on the development host, but maps can: the
 * agent's BPF object is loaded with every program switched off, so the
 * real kernel rule maps exist (sized by mapSizesFor, as the agent will size
 * them), and the real pipeline (applyPolicyBytes: sha256, parse, compile
 * with path resolution, carry live rules, write the new generation, switch,
 * delete the old one, snapshots) runs against them. The policy:
 * 32,768 deny_path (real files in a temp dir, each resolved to its inode),
 * 32,768 deny_inode, 8,192 deny_cidr IPv4 + 8,192 deny_cidr IPv6.
 *
 * Three applies: into empty maps, the same policy again (full old
 * generation beside it, then deleted), and a different policy. Prints the
 * time of each phase. A benchmark: it prints, it never fails on timing.
 * Needs root (bpf()).
 *
 * @module
 */
import { writeStdout } from "../../src/log.ts";
import { bpfObjectBytes, openEmbeddedShim } from "../../src/assets/mod.ts";
import { BpfObject } from "../../src/bpf/object.ts";
import { resolveRulePath } from "../../src/bpf/path_rule.ts";
import { applyCompiled, RULE_MAP_NAMES } from "../../src/policy/generations.ts";
import { applyPolicyBytes, type PolicyApplyDeps } from "../../src/policy/apply.ts";
import { mapSizesFor } from "../../src/policy/sizing.ts";
import { compilePolicy } from "../../src/policy/compile.ts";
import { LiveRules } from "../../src/policy/live.ts";
import { parsePolicy } from "../../src/policy/parse.ts";
import type { MapName } from "../../src/bpf/abi_gen.ts";

const PATHS = 32768, INODES = 32768, CIDR4 = 8192, CIDR6 = 8192;

function policyText(dir: string, salt: number): string {
  const l = ["version=2", "[deny_path]"];
  for (let i = 0; i < PATHS; i++) l.push(`${dir}/f${i}`);
  l.push("[deny_inode]");
  for (let i = 0; i < INODES; i++) l.push(`${2049 + salt}:${1_000_000 + i}`);
  l.push("[deny_cidr]");
  for (let i = 0; i < CIDR4; i++) l.push(`10.${salt}.${i >> 8 & 255}.${(i & 255)}/32`);
  for (let i = 0; i < CIDR6; i++) l.push(`2001:db8:${salt.toString(16)}:${i.toString(16)}::/64`);
  return l.join("\n") + "\n";
}

const ms = (t: number) => `${t.toFixed(1)} ms`;

const dir = Deno.makeTempDirSync({ prefix: "aegis-policy-bench-" });
const state = `${dir}/state`;
Deno.mkdirSync(`${dir}/files`);
for (let i = 0; i < PATHS; i++) Deno.writeFileSync(`${dir}/files/f${i}`, new Uint8Array());
const texts = [0, 0, 1].map((s) => new TextEncoder().encode(policyText(`${dir}/files`, s)));

using shim = await openEmbeddedShim();
const obj = BpfObject.open(shim, await bpfObjectBytes());
try {
  obj.selectPrograms(() => false); // maps only: no program loads on this host
  const probe = parsePolicy(texts[0], "bench");
  const env = { resolvePath: resolveRulePath, resolveCgroup: () => null };
  const sizes = mapSizesFor(compilePolicy(probe.policy!, env).compiled, []);
  for (const [m, n] of Object.entries(sizes)) obj.setMaxEntries(m, n);
  obj.load();
  const maps = (n: MapName) => obj.map(n);
  const live = new LiveRules({
    maps,
    storePath: `${state}/live_rules.json`,
    resolveCgroup: () => null,
  });
  const deps: PolicyApplyDeps = {
    maps,
    stateDir: state,
    keysDir: `${dir}/keys`,
    compileEnv: env,
    live,
  };
  writeStdout(
    `policy: ${PATHS} deny_path + ${INODES} deny_inode + ${CIDR4} deny_cidr v4 + ${CIDR6} v6 ` +
      `(${
        (texts[0].length / 1e6).toFixed(1)
      } MB); map sizes: deny_inode ${sizes.aegis_deny_inode}, ` +
      `cidr4 ${sizes.aegis_deny_cidr4}, cidr6 ${sizes.aegis_deny_cidr6}` + "\n",
  );
  for (
    const [i, label] of ["into empty maps", "same policy again", "a different policy"].entries()
  ) {
    // phase timing (same steps as applyPolicyBytes, measured one by one)
    let t = performance.now();
    const parsed = parsePolicy(texts[i], "bench");
    const tParse = performance.now() - t;
    t = performance.now();
    const { compiled } = compilePolicy(parsed.policy!, env);
    const tCompile = performance.now() - t;
    // end to end through the real pipeline
    t = performance.now();
    const rep = await applyPolicyBytes(deps, { file: "bench.pol", bytes: texts[i] });
    const tAll = performance.now() - t;
    writeStdout(
      `apply ${i + 1} (${label}): end to end ${ms(tAll)} — of which parse ~${ms(tParse)}, ` +
        `compile+resolve ~${ms(tCompile)}; switch ${rep.switch_us} µs; ` +
        `${compiled.entries.length} entries written, ${rep.removed} old removed` + "\n",
    );
  }
  // the map writes + switch alone (compiled policy in memory)
  const { compiled } = compilePolicy(parsePolicy(texts[2], "b").policy!, env);
  const t = performance.now();
  const r = applyCompiled(maps, compiled);
  writeStdout(
    `applyCompiled alone (${compiled.entries.length} entries, clear + write + switch + delete old): ` +
      `${ms(performance.now() - t)}; switch ${r.switchMicros} µs` + "\n",
  );
  let total = 0;
  for (const m of RULE_MAP_NAMES) total += obj.map(m).keys().length;
  writeStdout(
    `entries in the maps after the last apply: ${total}` + "\n",
  );
} finally {
  obj.close();
  Deno.removeSync(dir, { recursive: true });
}
