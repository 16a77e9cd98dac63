/**
 * `aegisbpf policy validate|lint|apply|show`.
 *
 * apply: parse (every error reported, with file and line; nothing changes
 * on any error) → compile (paths resolved to inodes now; missing files
 * reported as unresolved) → write beside the live rules and switch with
 * one generation flip (src/policy/apply.ts) → keep snapshots
 * (policy.applied, policy.prev, policy.sha256) in the state directory.
 * Without a running agent's pins there is nothing to apply to: it says so.
 *
 * @module
 */
import type { Command } from "@commander-js/extra-typings";
import { openEmbeddedShim } from "../assets/mod.ts";
import { cgroup2MountFrom } from "../bpf/self_cgroup.ts";
import { resolveRulePath } from "../bpf/path_rule.ts";
import { PinnedMaps } from "../bpf/pins.ts";
import { AegisError } from "../errors.ts";
import { out, outJson, writeStderr } from "../log.ts";
import { applyCompiled, liveGeneration, RULE_MAPS } from "../policy/apply.ts";
import { writeCounter, writeFileAtomic } from "../policy/atomic.ts";
import { BUNDLE_MAGIC, signBundle, verifyBundleWithState } from "../policy/bundle.ts";
import { readSecretKeyFile } from "../policy/keys.ts";
import { keysDir } from "./keys.ts";
import { type CompileEnv, compilePolicy } from "../policy/compile.ts";
import { dedupePolicy, formatPolicy } from "../policy/lint.ts";
import type { Policy, PolicyIssue } from "../policy/model.ts";
import { parsePolicy } from "../policy/parse.ts";
import { sha256Hex } from "../util/bytes.ts";
import { pinRoot } from "./run.ts";

/** Policy files larger than this are refused before reading them whole. */
const MAX_POLICY_BYTES = 16 << 20;

/** State directory (AEGIS_STATE_DIR overrides, for tests). */
export function stateDir(): string {
  return Deno.env.get("AEGIS_STATE_DIR") ?? "/var/lib/aegisbpf";
}

function readPolicyFile(file: string): Uint8Array {
  let st: Deno.FileInfo;
  try {
    st = Deno.statSync(file);
  } catch (e) {
    throw new AegisError("USAGE", `Cannot read policy file "${file}": ${(e as Error).message}`);
  }
  if (!st.isFile) throw new AegisError("USAGE", `"${file}" is not a regular file`);
  if (st.size > MAX_POLICY_BYTES) {
    throw new AegisError(
      "POLICY_INVALID",
      `${file}: ${st.size} bytes; the limit is ${MAX_POLICY_BYTES} bytes`,
    );
  }
  return Deno.readFileSync(file);
}

function printIssues(kind: "error" | "warning", issues: PolicyIssue[]): void {
  for (const i of issues) writeStderr(`${i.file}:${i.line}: ${kind}: ${i.message}\n`);
}

/** Parse or throw POLICY_INVALID after printing every error. */
function parseOrFail(file: string, bytes: Uint8Array): { policy: Policy; warnings: PolicyIssue[] } {
  const r = parsePolicy(bytes, file);
  printIssues("warning", r.warnings);
  if (r.errors.length > 0 || !r.policy) {
    printIssues("error", r.errors);
    throw new AegisError(
      "POLICY_INVALID",
      `${file}: ${r.errors.length} error(s); the policy was rejected as a whole and nothing changed`,
    );
  }
  return { policy: r.policy, warnings: r.warnings };
}

function counterPath(): string {
  return `${stateDir()}/policy_version.json`;
}

function isBundle(bytes: Uint8Array): boolean {
  return new TextDecoder().decode(bytes.subarray(0, BUNDLE_MAGIC.length)) === BUNDLE_MAGIC;
}

/** A signed bundle: verified (format, expiry, hash, trusted key, signature, rollback). */
async function verifiedBody(
  file: string,
  bytes: Uint8Array,
): Promise<{ body: Uint8Array; policyVersion: number; signer: string }> {
  const { result, warnings } = await verifyBundleWithState(bytes, {
    keysDir: keysDir(),
    counterPath: counterPath(),
  });
  for (const w of warnings) writeStderr(`warning: ${w}\n`);
  if (!result.ok) {
    throw new AegisError(result.code, `${file}: ${result.message}; nothing changed`);
  }
  return { body: result.body, policyVersion: result.policyVersion, signer: result.signer };
}

/** The real resolvers: paths through the file system, cgroups under the v2 mount. */
export function hostCompileEnv(): CompileEnv {
  const mount = cgroup2MountFrom(Deno.readTextFileSync("/proc/self/mountinfo"));
  return {
    resolvePath: resolveRulePath,
    resolveCgroup: (path) => {
      if (!mount) return null;
      try {
        return BigInt(Deno.statSync(`${mount}${path.startsWith("/") ? "" : "/"}${path}`).ino!);
      } catch {
        return null;
      }
    },
  };
}

function countByMap(entries: { map: string }[]): Record<string, number> {
  const c: Record<string, number> = {};
  for (const e of entries) c[e.map] = (c[e.map] ?? 0) + 1;
  return c;
}

export function addPolicyCommand(program: Command): void {
  const policy = program.command("policy").description("check, apply and show rule policies");

  policy.command("validate")
    .description("parse a policy file and report every error (exit 1 on any)")
    .argument("<file>")
    .option("--verbose", "also print what the policy contains")
    .action((file, opts) => {
      const { policy: p } = parseOrFail(file, readPolicyFile(file));
      out(`${file}: valid (version ${p.version})`);
      if (opts.verbose) out(formatPolicy(p));
    });

  policy.command("lint")
    .description("report errors and advisories; --fix writes the canonical form")
    .argument("<file>")
    .option("--fix", "write the canonical form (to --out, or back to the file)")
    .option("--out <path>", "where --fix writes")
    .action(async (file, opts) => {
      const { policy: p, warnings } = parseOrFail(file, readPolicyFile(file));
      if (opts.fix) {
        const target = opts.out ?? file;
        const text = formatPolicy(dedupePolicy(p));
        await writeFileAtomic(target, new TextEncoder().encode(text), 0o644);
        out(`wrote ${target}`);
      }
      out(`${file}: ${warnings.length} warning(s)`);
    });

  policy.command("apply")
    .description("apply a policy atomically to the running agent's rules")
    .argument("<file>")
    .option("--sha256 <hex>", "refuse unless the file has this SHA-256")
    .option("--require-signature", "refuse anything but a signed bundle from a trusted key")
    .option("--dry-run", "parse and compile, print what would be written, change nothing")
    .option("--json", "machine-readable output")
    .action(async (file, opts) => {
      await applyFile(file, readPolicyFile(file), opts);
    });

  policy.command("rollback")
    .description("apply the previously applied policy again (policy.prev)")
    .option("--json", "machine-readable output")
    .action(async (opts) => {
      const prev = `${stateDir()}/policy.prev`;
      let bytes: Uint8Array;
      try {
        bytes = Deno.readFileSync(prev);
      } catch {
        throw new AegisError("NO_PREVIOUS_POLICY", `No previous policy (${prev}); nothing changed`);
      }
      // a local, explicit operator action: the bundle counter does not apply
      await applyFile(prev, bytes, { json: opts.json });
    });

  policy.command("export")
    .description("print the applied policy in canonical form")
    .action(() => {
      const file = `${stateDir()}/policy.applied`;
      let bytes: Uint8Array;
      try {
        bytes = Deno.readFileSync(file);
      } catch {
        throw new AegisError("NO_POLICY", `No policy applied through this host's CLI (${file})`);
      }
      out(formatPolicy(parseOrFail(file, bytes).policy).trimEnd());
    });

  policy.command("verify")
    .description("verify a signed bundle (format, expiry, hash, key, signature, rollback)")
    .argument("<file>")
    .action(async (file) => {
      const v = await verifiedBody(file, readPolicyFile(file));
      const { policy: p } = parseOrFail(file, v.body);
      out(
        `${file}: signature OK (signer ${v.signer}), policy_version ${v.policyVersion}, ` +
          `policy version ${p.version}`,
      );
    });

  policy.command("sign")
    .description("wrap a policy file into a signed bundle")
    .argument("<file>")
    .requiredOption("--key <path>", "secret key file (keys keygen)")
    .requiredOption("--output <path>", "where the bundle is written")
    .option("--policy-version <n>", "anti-rollback version (default: now, in unix seconds)")
    .option("--expires-in <seconds>", "validity (default 30 days)", "2592000")
    .action(async (file, opts) => {
      const body = readPolicyFile(file);
      parseOrFail(file, body); // never sign an invalid policy
      const now = Math.floor(Date.now() / 1000);
      const policyVersion = opts.policyVersion === undefined ? now : Number(opts.policyVersion);
      const ttl = Number(opts.expiresIn);
      if (!Number.isSafeInteger(policyVersion) || policyVersion < 1) {
        throw new AegisError(
          "USAGE",
          `--policy-version "${opts.policyVersion}": a positive integer`,
        );
      }
      if (!Number.isSafeInteger(ttl) || ttl < 1) {
        throw new AegisError("USAGE", `--expires-in "${opts.expiresIn}": positive seconds`);
      }
      const bundle = await signBundle(body, {
        secretKey: await readSecretKeyFile(opts.key),
        policyVersion,
        timestamp: now,
        expires: now + ttl,
      });
      await writeFileAtomic(opts.output, bundle, 0o644);
      out(`wrote ${opts.output} (policy_version ${policyVersion}, expires in ${ttl} s)`);
    });

  policy.command("show")
    .description("show the applied policy and the live rule counts")
    .option("--json", "machine-readable output")
    .action(async (opts) => {
      using shim = await openEmbeddedShim();
      using pins = new PinnedMaps(shim, pinRoot());
      const counts: Record<string, number> = {};
      for (const m of Object.keys(RULE_MAPS)) counts[m] = pins.map(m).keys().length;
      let applied = "";
      try {
        applied = Deno.readTextFileSync(`${stateDir()}/policy.applied`);
      } catch { /* none applied yet */ }
      const gen = liveGeneration((n) => pins.map(n));
      if (opts.json) return outJson({ generation: gen, rule_entries: counts, policy: applied });
      out(`live generation ${gen}`);
      for (const [m, n] of Object.entries(counts)) if (n > 0) out(`  ${m}: ${n}`);
      out(applied ? `applied policy:\n${applied}` : "no policy applied through this host's CLI");
    });
}

/** policy.applied (now), policy.prev (before), policy.sha256. */
async function keepSnapshots(bytes: Uint8Array, sha: string): Promise<void> {
  const dir = stateDir();
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  try {
    const prev = await Deno.readFile(`${dir}/policy.applied`);
    await writeFileAtomic(`${dir}/policy.prev`, prev, 0o600);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  await writeFileAtomic(`${dir}/policy.applied`, bytes, 0o600);
  await writeFileAtomic(`${dir}/policy.sha256`, new TextEncoder().encode(`${sha}\n`), 0o600);
}

interface ApplyOptions {
  sha256?: string;
  requireSignature?: true;
  dryRun?: true;
  json?: true;
}

/** Verify (bundles), parse, compile, apply, keep snapshots. */
async function applyFile(file: string, bytes: Uint8Array, opts: ApplyOptions): Promise<void> {
  const sha = await sha256Hex(new Uint8Array(bytes));
  if (opts.sha256 && opts.sha256.toLowerCase() !== sha) {
    throw new AegisError(
      "POLICY_HASH_MISMATCH",
      `${file} has SHA-256 ${sha}, not ${opts.sha256}; nothing changed`,
    );
  }
  let body = bytes;
  let signed: { policyVersion: number; signer: string } | null = null;
  if (isBundle(bytes)) {
    const v = await verifiedBody(file, bytes);
    body = new Uint8Array(v.body);
    signed = v;
  } else if (opts.requireSignature) {
    throw new AegisError(
      "BUNDLE_REQUIRED",
      `${file} is not a signed bundle and --require-signature was given; nothing changed`,
    );
  }
  const { policy: p } = parseOrFail(file, body);
  const { compiled, unresolved } = compilePolicy(p, hostCompileEnv());
  const summary = {
    file,
    sha256: sha,
    version: p.version,
    flags: compiled.flags,
    entries: countByMap(compiled.entries),
    unresolved,
  };
  if (opts.dryRun) {
    if (opts.json) return outJson({ ...summary, dry_run: true });
    out(`${file}: would write ${compiled.entries.length} rule entries (dry run)`);
    for (const [m, n] of Object.entries(summary.entries)) out(`  ${m}: ${n}`);
    for (const u of unresolved) {
      out(`  unresolved ${u.section} line ${u.line}: ${u.what}: ${u.reason}`);
    }
    return;
  }
  using shim = await openEmbeddedShim();
  using pins = new PinnedMaps(shim, pinRoot());
  const result = applyCompiled((name) => pins.map(name), compiled);
  await keepSnapshots(body, await sha256Hex(new Uint8Array(body)));
  if (signed) writeCounter(counterPath(), signed.policyVersion);
  if (opts.json) return outJson({ ...summary, generation: result.to, removed: result.removed });
  out(
    `${file}: applied (generation ${result.from} -> ${result.to}, ${compiled.entries.length} entries)`,
  );
  for (const u of unresolved) {
    out(`  unresolved ${u.section} line ${u.line}: ${u.what}: ${u.reason} (not enforced)`);
  }
}
