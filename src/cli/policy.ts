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
 * While the daemon runs (its control socket answers), apply, rollback and
 * show go through it (POST /policy/apply, GET /policy/show) so it learns
 * the new unresolved paths; otherwise the CLI does the same work
 * (applyPolicyBytes) on the pinned maps itself.
 *
 * @module
 */
import { aegisPaths } from "../contracts.ts";
import { hostCompileEnv } from "../policy/host_env.ts";
import { type Command, Option } from "@commander-js/extra-typings";
import { openEmbeddedShim } from "../assets/mod.ts";
import { PinnedMaps } from "../bpf/pins.ts";
import { AegisError, UsageError } from "../errors.ts";
import { out, outJson, writeStderr } from "../log.ts";
import {
  applyPolicyBytes,
  type PolicyApplyDeps,
  type PolicyApplyReport,
  type PolicyApplyRequest,
  type PolicyShow,
  policyShow,
} from "../policy/apply.ts";
import { PolicyRejectedError } from "../policy/store.ts";
import { writeFileAtomic } from "../policy/atomic.ts";
import {
  MAX_BUNDLE_BYTES,
  MAX_POLICY_VERSION,
  MAX_VALIDITY_SECONDS,
  signBundle,
  verifyBundleWithState,
} from "../policy/bundle.ts";
import { describeRule, type LiveRule, LiveRules } from "../policy/live.ts";
import { daemonOrLocal } from "./daemon_or_local.ts";
import { encodeBase64 } from "../util/bytes.ts";
import { parseDuration } from "../util/duration.ts";
import { keysDir, readSecretKeyFile } from "../policy/keys.ts";
import { dedupePolicy, formatPolicy } from "../policy/lint.ts";
import type { Policy, PolicyIssue } from "../policy/model.ts";
import { MAX_FILE_BYTES, parsePolicy } from "../policy/parse.ts";
import { FileReadError, readFileCapped, readTextFileCapped } from "../util/read_file.ts";
import { adoptBtrfsIdentity, btrfsBtfPresent, pinRoot } from "../bpf/engine.ts";
import { setBtrfsIdentity } from "../bpf/path_rule.ts";
import type { RuleVerification } from "../proof/verify.ts";
import { WATCHED_SECTIONS } from "../policy/watch.ts";
import { scanForPolicy } from "../policy/content_scan.ts";
import type { MapName } from "../bpf/abi_gen.ts";

/**
 * A `--sha256-file` is read up to this size (a `sha256sum` line is 64 hex, two
 * spaces and a file name; only the hash at its start is used).
 */
const MAX_SHA256_FILE_BYTES = 64 << 10;

/** State directory (AEGIS_STATE_DIR overrides, for tests). */
export function stateDir(): string {
  return aegisPaths().stateDir;
}

/**
 * A policy file (or, for apply/verify, a signed bundle: up to a policy plus
 * its header): a regular file, never read past its cap (util/read_file.ts).
 */
function readPolicyFile(file: string, kind: "policy" | "bundle" = "policy"): Uint8Array {
  return readFileCapped(file, {
    maxBytes: kind === "policy" ? MAX_FILE_BYTES : MAX_BUNDLE_BYTES,
    what: kind === "policy" ? "policy file" : "policy file or bundle",
    code: "USAGE",
    tooLargeCode: "POLICY_INVALID",
  });
}

/** A state-directory snapshot, or null when it does not exist. */
function readSnapshot(file: string): Uint8Array | null {
  try {
    return readFileCapped(file, { maxBytes: MAX_FILE_BYTES, what: "policy snapshot" });
  } catch (e) {
    if (e instanceof FileReadError && e.cause instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

function printIssues(kind: "error" | "warning", issues: PolicyIssue[]): void {
  for (const i of issues) writeStderr(`${i.file}:${i.line}: ${kind}: ${i.message}\n`);
}

/** A policy with errors; `details` (every issue) goes into the `--json` failure object. */
export class PolicyInvalidError extends AegisError {
  readonly details: { errors: PolicyIssue[]; warnings: PolicyIssue[] };
  constructor(file: string, errors: PolicyIssue[], warnings: PolicyIssue[]) {
    super(
      "POLICY_INVALID",
      `${file}: ${errors.length} error(s); the policy was rejected as a whole and nothing changed`,
    );
    this.details = { errors, warnings };
  }
}

/**
 * Parse or throw POLICY_INVALID. The issues are printed on stderr, except
 * with `--json` (`json`), where they are fields of the output.
 */
function parseOrFail(
  file: string,
  bytes: Uint8Array,
  json = false,
): { policy: Policy; warnings: PolicyIssue[] } {
  const r = parsePolicy(bytes, file);
  if (!json) printIssues("warning", r.warnings);
  if (r.errors.length > 0 || !r.policy) {
    if (!json) printIssues("error", r.errors);
    throw new PolicyInvalidError(file, r.errors, r.warnings);
  }
  return { policy: r.policy, warnings: r.warnings };
}

function counterPath(): string {
  return `${stateDir()}/policy_version.json`;
}

/** A signed bundle: verified (format, expiry, hash, trusted key, signature, rollback). */
async function verifiedBody(
  file: string,
  bytes: Uint8Array,
  json = false,
): Promise<{ body: Uint8Array; policyVersion: number; signer: string; warnings: string[] }> {
  const { result, warnings } = await verifyBundleWithState(bytes, {
    keysDir: keysDir(),
    counterPath: counterPath(),
  });
  if (!json) { for (const w of warnings) writeStderr(`warning: ${w}\n`); }
  if (!result.ok) {
    throw new AegisError(result.code, `${file}: ${result.message}; nothing changed`);
  }
  return {
    body: result.body,
    policyVersion: result.policyVersion,
    signer: result.signer,
    warnings: [...warnings],
  };
}

/** A header line `name: value` of a bundle this process just signed. */
function bundleHeader(bundle: Uint8Array, name: string): string {
  const head = new TextDecoder().decode(bundle.subarray(0, 4096));
  const m = new RegExp(`^${name}: (\\S+)$`, "m").exec(head);
  if (!m) throw new AegisError("INTERNAL", `the signed bundle has no ${name} line`);
  return m[1];
}

const JSON_HELP = "print one JSON object (errors too: {ok:false, error:{code, message}})";

export function addPolicyCommand(program: Command): void {
  const policy = program.command("policy").description("check, apply and show rule policies");

  policy.command("validate")
    .description("parse a policy file and report every error (exit 1 on any)")
    .argument("<file>")
    .option("--verbose", "also print what the policy contains")
    .option("--json", JSON_HELP)
    .action((file, opts) => {
      const json = opts.json === true;
      const { policy: p, warnings } = parseOrFail(file, readPolicyFile(file), json);
      if (json) {
        return outJson({
          ok: true,
          file,
          version: p.version,
          warnings,
          ...(opts.verbose ? { canonical: formatPolicy(p) } : {}),
        });
      }
      out(`${file}: valid (version ${p.version})`);
      if (opts.verbose) out(formatPolicy(p));
    });

  policy.command("lint")
    .description("report errors and advisories; --fix writes the canonical form")
    .argument("<file>")
    .option("--fix", "write the canonical form (to --out, or back to the file)")
    .option("--out <path>", "where --fix writes")
    .option("--json", JSON_HELP)
    .action(async (file, opts) => {
      const json = opts.json === true;
      if (opts.out !== undefined && !opts.fix) {
        throw new UsageError("policy lint: --out is where --fix writes; give --fix too");
      }
      const { policy: p, warnings } = parseOrFail(file, readPolicyFile(file), json);
      let wrote: string | null = null;
      if (opts.fix) {
        wrote = opts.out ?? file;
        const text = formatPolicy(dedupePolicy(p));
        await writeFileAtomic(wrote, new TextEncoder().encode(text), 0o644);
      }
      if (json) return outJson({ ok: true, file, version: p.version, warnings, wrote });
      if (wrote !== null) out(`wrote ${wrote}`);
      out(`${file}: ${warnings.length} warning(s)`);
    });

  policy.command("apply")
    .description("apply a policy atomically to the running agent's rules")
    .argument("<file>")
    .option("--sha256 <hex>", "refuse unless the file has this SHA-256")
    .option("--sha256-file <path>", "refuse unless the file has the SHA-256 written in this file")
    .option("--require-signature", "refuse anything but a signed bundle from a trusted key")
    .option("--dry-run", "parse and compile, print what would be written, change nothing")
    .option(
      "--reset",
      "drop the live rules (block/allow/network deny add): the file alone defines the rules",
    )
    .option(
      "--no-rollback",
      "if the apply fails, keep its partial (never enforced) generation for inspection",
    )
    .option(
      "--canary <duration>",
      "watch the deny rate this long after the apply (30s, 5m; at most 1h) and roll back " +
        "above --canary-threshold",
    )
    .option(
      "--canary-threshold <denies_per_s>",
      "with --canary: denies (and audits) per second that roll the apply back (default 1)",
    )
    .option("--json", "machine-readable output")
    .action(async (file, opts) => {
      let sha = opts.sha256;
      if (opts.sha256File) {
        const text = readTextFileCapped(opts.sha256File, {
          maxBytes: MAX_SHA256_FILE_BYTES,
          what: "--sha256-file",
        });
        const m = /^\s*([0-9a-fA-F]{64})(?![0-9a-zA-Z])/.exec(text);
        if (!m) {
          throw new UsageError(
            `--sha256-file "${opts.sha256File}": no SHA-256 (64 hex characters) at its start`,
          );
        }
        sha = m[1];
      }
      const canary = opts.canary === undefined && opts.canaryThreshold === undefined
        ? null
        : (await import("./policy_canary.ts")).canaryOptions(opts.canary, opts.canaryThreshold);
      const req: PolicyApplyRequest = {
        file,
        bytes: readPolicyFile(file, "bundle"),
        sha256: sha,
        requireSignature: opts.requireSignature,
        dryRun: opts.dryRun,
        reset: opts.reset,
        noRollback: opts.rollback === false,
      };
      if (canary) {
        return (await import("./policy_canary.ts")).applyFileWithCanary(req, canary, opts.json);
      }
      await applyFile(req, opts.json);
    });

  policy.command("rollback")
    .description("apply the previously applied policy again (policy.prev)")
    .option("--json", "machine-readable output")
    .action(async (opts) => {
      const prev = `${stateDir()}/policy.prev`;
      const bytes = readSnapshot(prev);
      if (bytes === null) {
        throw new AegisError("NO_PREVIOUS_POLICY", `No previous policy (${prev}); nothing changed`);
      }
      // a local, explicit operator action: the bundle counter does not apply
      await applyFile({ file: prev, bytes }, opts.json);
    });

  policy.command("export")
    .description("print the applied policy in canonical form")
    .option("--json", JSON_HELP)
    .action((opts) => {
      const file = `${stateDir()}/policy.applied`;
      const bytes = readSnapshot(file);
      if (bytes === null) {
        throw new AegisError("NO_POLICY", `No policy applied through this host's CLI (${file})`);
      }
      const { policy: p } = parseOrFail(file, bytes, opts.json === true);
      if (opts.json) {
        return outJson({ ok: true, file, version: p.version, policy: formatPolicy(p) });
      }
      out(formatPolicy(p).trimEnd());
    });

  policy.command("verify")
    .description("verify a signed bundle (format, expiry, hash, key, signature, rollback)")
    .argument("<file>")
    .option("--json", JSON_HELP)
    .action(async (file, opts) => {
      const json = opts.json === true;
      const v = await verifiedBody(file, readPolicyFile(file, "bundle"), json);
      const { policy: p, warnings } = parseOrFail(file, v.body, json);
      if (json) {
        return outJson({
          ok: true,
          file,
          signer: v.signer,
          policy_version: v.policyVersion,
          version: p.version,
          bundle_warnings: v.warnings,
          warnings,
        });
      }
      out(
        `${file}: signature OK (signer ${v.signer}), policy_version ${v.policyVersion}, ` +
          `policy version ${p.version}`,
      );
    });

  policy.command("sign")
    .description("wrap a policy file into a signed bundle")
    .argument("<file>")
    .requiredOption("--key <path>", "secret key file (keys keygen)")
    .option("--out <path>", "where the bundle is written (required)")
    // the name before --out was the one flag name for "where to write"
    .addOption(new Option("--output <path>").hideHelp())
    .option("--policy-version <n>", "anti-rollback version (default: now, in unix seconds)")
    .option(
      "--expires-in <duration>",
      `validity: 30s, 10m, 2h, 30d or seconds (default 30d, at most ` +
        `${MAX_VALIDITY_SECONDS / 86400} days)`,
      "30d",
    )
    .option("--json", JSON_HELP)
    .action(async (file, opts) => {
      const json = opts.json === true;
      const output = opts.out ?? opts.output;
      if (output === undefined) throw new UsageError("policy sign: --out <path> is required");
      const body = readPolicyFile(file);
      parseOrFail(file, body, json); // never sign an invalid policy
      const now = Math.floor(Date.now() / 1000);
      const policyVersion = opts.policyVersion === undefined
        ? now
        : integerOption("--policy-version", opts.policyVersion, 1, MAX_POLICY_VERSION);
      const ttl = parseDuration(opts.expiresIn, MAX_VALIDITY_SECONDS, "--expires-in");
      const bundle = await signBundle(body, {
        secretKey: await readSecretKeyFile(opts.key),
        policyVersion,
        timestamp: now,
        expires: now + ttl,
      });
      await writeFileAtomic(output, bundle, 0o644);
      if (json) {
        return outJson({
          ok: true,
          file,
          out: output,
          policy_version: policyVersion,
          timestamp: now,
          expires: now + ttl,
          expires_in_s: ttl,
          signer_key: bundleHeader(bundle, "signer_key"),
          policy_sha256: bundleHeader(bundle, "policy_sha256"),
        });
      }
      out(`wrote ${output} (policy_version ${policyVersion}, expires in ${ttl} s)`);
    });

  policy.command("show")
    .description("show the applied policy and the live rule counts")
    .option("--json", "machine-readable output")
    .action(async (opts) => {
      const { value: show } = await daemonOrLocal<PolicyShow>(
        "GET",
        "/policy/show",
        undefined,
        async () => {
          using local = await openLocal();
          return policyShow(local.maps, stateDir(), local.live);
        },
      );
      if (opts.json) return outJson(show);
      out(`live generation ${show.generation}`);
      for (const [m, n] of Object.entries(show.rule_entries)) if (n > 0) out(`  ${m}: ${n}`);
      for (const [m, n] of Object.entries(show.inactive_entries)) {
        out(`  ${m}: ${n} in the inactive generation (a failed apply kept with --no-rollback)`);
      }
      out(`live rules (block/allow/network deny add): ${show.live_rules}`);
      out(
        show.policy
          ? `applied policy:\n${show.policy}`
          : "no policy applied through this host's CLI",
      );
    });
}

/** A decimal integer option in min..max, or a USAGE error naming the option and range. */
function integerOption(name: string, value: string, min: number, max: number): number {
  const n = /^[0-9]{1,16}$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(
      `${name} "${value.length > 40 ? value.slice(0, 40) + "…" : value}": ` +
        `expected a decimal integer in ${min}..${max}`,
    );
  }
  return n;
}

/** The pinned maps and the live rules, for work done without the daemon. */
export interface LocalContext extends Disposable {
  maps: (name: MapName) => import("../bpf/map.ts").BpfMap;
  live: LiveRules;
  applyDeps: PolicyApplyDeps;
}

/** Open the running agent's pins (NOT_RUNNING when there are none). */
export async function openLocal(): Promise<LocalContext> {
  const shim = await openEmbeddedShim();
  let pins: PinnedMaps;
  try {
    pins = new PinnedMaps(shim, pinRoot());
  } catch (e) {
    shim[Symbol.dispose]();
    throw e;
  }
  // resolve btrfs paths as the pinned programs key them
  adoptBtrfsIdentity(pins.map("aegis_config"));
  const env = hostCompileEnv();
  const maps = (n: MapName) => pins.map(n);
  const live = new LiveRules({
    maps,
    storePath: `${stateDir()}/live_rules.json`,
    resolveCgroup: env.resolveCgroup,
  });
  // the programs the pins hold say where the content of executed files comes
  // from: no exec-hash program, but inode rules on exec: the content scan
  const contentScan = pinnedScanSource(pinRoot())
    ? { contentScan: (p: Policy) => scanForPolicy(p) }
    : {};
  return {
    maps,
    live,
    applyDeps: {
      maps,
      stateDir: stateDir(),
      keysDir: keysDir(),
      compileEnv: env,
      live,
      ...contentScan,
    },
    [Symbol.dispose]() {
      pins.close();
      shim[Symbol.dispose]();
    },
  };
}

/** Print TTL rules a sweep removed. */
export function printExpired(rules: readonly LiveRule[]): void {
  for (const r of rules) {
    out(`expired: live rule ${r.id} ${describeRule(r.spec)} (TTL over, removed)`);
  }
}

/**
 * Exit status of an apply or `block add` that took effect but whose rule
 * verification found rules the kernel does not deny (docs/policy.md).
 */
export const EXIT_UNENFORCED = 4;

/**
 * Print what the rule verification after a change found (the daemon's
 * reply): a count, each unenforced rule on stderr (exit EXIT_UNENFORCED),
 * or why nothing was verified. `undefined`: the change was made without a
 * running agent.
 */
export function printVerification(v: RuleVerification | null | undefined): void {
  if (v === undefined) {
    out("  not verified: no agent is running to prove the rules (see aegisbpf health)");
    return;
  }
  if (v === null) {
    out("  not verified: the agent is not enforcing now (aegisbpf health --require-enforce)");
    return;
  }
  if (v.error) writeStderr(`warning: rule verification could not run: ${v.error}\n`);
  const r = v.round;
  if (r && r.tried > 0) {
    out(
      `  verified: ${r.denied} of ${r.tried} file rule(s) tried were denied by the kernel to a ` +
        `process outside the agent's cgroup` +
        (r.rules > r.tried ? ` (${r.rules} in all; the rest are tried in the next rounds)` : "") +
        (r.skipped ? `; ${r.skipped} skipped (missing, or not a regular file or directory)` : "") +
        (r.inconclusive ? `; ${r.inconclusive} inconclusive` : ""),
    );
  }
  for (const u of v.unenforced) {
    writeStderr(`NOT ENFORCED: rule ${u.rule_id} ${JSON.stringify(u.target)}: ${u.reason}\n`);
  }
  if (v.unenforced.length > 0) Deno.exitCode = EXIT_UNENFORCED;
}

/** The body of POST /policy/apply for a request. */
export function applyBody(req: PolicyApplyRequest): Record<string, unknown> {
  return {
    file: req.file,
    policy_b64: encodeBase64(req.bytes),
    sha256: req.sha256,
    require_signature: req.requireSignature,
    dry_run: req.dryRun,
    reset: req.reset,
    no_rollback: req.noRollback,
  };
}

/** Apply through the daemon when it runs, else on the pins; print the report. */
async function applyFile(req: PolicyApplyRequest, json?: true): Promise<void> {
  const { value: report } = await daemonOrLocal<
    PolicyApplyReport & { verification?: RuleVerification | null }
  >(
    "POST",
    "/policy/apply",
    applyBody(req),
    async () => {
      try {
        if (req.dryRun) return await applyPolicyBytes(dryRunDeps(), req); // compile only
        using local = await openLocal();
        return await applyPolicyBytes(local.applyDeps, req);
      } catch (e) {
        if (e instanceof PolicyRejectedError) { for (const i of e.issues) writeStderr(`${i}\n`); }
        throw e;
      }
    },
  );
  for (const w of report.warnings) writeStderr(`warning: ${w}\n`);
  if (json) {
    if ((report.verification?.unenforced.length ?? 0) > 0) Deno.exitCode = EXIT_UNENFORCED;
    return outJson(report);
  }
  printApplyReport(req, report);
}

/** An apply's report as text (the verification included). */
/**
 * The pinned links (what the kernel runs, with no daemon to ask): no
 * exec-hash program, but exec and open inode rules — the identity source is
 * the content scan (posture/exec_identity.ts).
 */
export function pinnedScanSource(root: string): boolean {
  const has = (program: string) => {
    try {
      Deno.lstatSync(`${root}/links/${program}`);
      return true;
    } catch {
      return false;
    }
  };
  return !has("aegis_bprm_hash") && has("aegis_bprm_check") &&
    (has("aegis_file_open") || has("aegis_inode_permission"));
}

/** Scan matches printed by `policy apply` (all of them with --json). */
const SHOWN_MATCHES = 20;

export function printApplyReport(
  req: PolicyApplyRequest,
  report: PolicyApplyReport & { verification?: RuleVerification | null },
): void {
  printExpired(report.live.expired);
  const n = Object.values(report.entries).reduce((a, b) => a + b, 0);
  if (report.dry_run) {
    out(`${req.file}: would write ${n} rule entries (dry run)`);
    for (const [m, c] of Object.entries(report.entries)) out(`  ${m}: ${c}`);
  } else {
    const g = report.generation!;
    out(`${req.file}: applied (generation ${g.from} -> ${g.to}, ${n} entries)`);
  }
  if (req.reset) {
    out(`  --reset: ${report.live.dropped.length} live rule(s) dropped`);
  } else if (report.live.carried > 0) {
    out(`  ${report.live.carried} live rule(s) carried over (policy apply --reset drops them)`);
  }
  for (const u of report.unresolved) {
    const watched = !report.dry_run && WATCHED_SECTIONS.includes(u.section);
    out(
      `  unresolved ${u.section} line ${u.line}: ${u.what}: ${u.reason} ` +
        `(not enforced${watched ? "; enforced when it appears while the agent runs" : ""})`,
    );
  }
  const scan = report.content_scan;
  if (scan) {
    out(
      `  content scan (the kernel does not hash executed files): ${scan.files_hashed} files ` +
        `hashed in ${scan.dirs.length} directories (${scan.duration_ms} ms), ` +
        `${scan.matches.length} with a [deny_binary_hash] content, denied by inode`,
    );
    for (const m of scan.matches.slice(0, SHOWN_MATCHES)) out(`    ${m.path} (line ${m.line})`);
    if (scan.matches.length > SHOWN_MATCHES) {
      out(`    and ${scan.matches.length - SHOWN_MATCHES} more (--json lists them all)`);
    }
  }
  if (!report.dry_run) printVerification(report.verification);
}

/** For --dry-run without an agent: nothing is written, so no maps are needed. */
function dryRunDeps(): PolicyApplyDeps {
  // no programs to ask: as an agent starting now would load them
  setBtrfsIdentity(btrfsBtfPresent());
  const noMaps = (): never => {
    throw new AegisError("NOT_RUNNING", "a dry run does not touch the maps");
  };
  const live = new LiveRules({
    maps: noMaps,
    storePath: `${stateDir()}/live_rules.json`,
    resolveCgroup: () => null,
  });
  return {
    maps: noMaps,
    stateDir: stateDir(),
    keysDir: keysDir(),
    compileEnv: hostCompileEnv(),
    live,
  };
}
