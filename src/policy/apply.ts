/**
 * The whole `policy apply` pipeline both the CLI and the daemon's control
 * socket call (verify → parse → compile → carry live edits → switch →
 * snapshots), the restore at start that brings the maps to the stored
 * state, and `policy show`. The switch itself is generations.ts; the files
 * store.ts; map sizes sizing.ts.
 *
 * @module
 */
import type { ContentMatch, ContentScanResult } from "./content_scan.ts";
import type { BpfMap } from "../bpf/map.ts";
import { readCounter, writeCounter } from "./atomic.ts";
import { isBundle, verifyBundleWithState } from "./bundle.ts";
import { type CompiledPolicy, type CompileEnv, compilePolicy, type Unresolved } from "./compile.ts";
import type { Policy } from "./model.ts";
import {
  applyCompiled,
  type ApplyResult,
  countByMap,
  diffLive,
  generationCounts,
  type LiveDiff,
  liveGeneration,
  liveMatches,
  MapFullError,
} from "./generations.ts";
import type { LiveRule, LiveRules } from "./live.ts";
import { mergeLive } from "./live.ts";
import { formatIssue, parsePolicy, type ParseResult } from "./parse.ts";
import { recordMapSizeRequest } from "./sizing.ts";
import {
  type AppliedParse,
  type BundleSigner,
  counterPath,
  keepSnapshots,
  PolicyRejectedError,
  readAppliedPolicy,
  repairInterruptedApply,
} from "./store.ts";
import { sha256Hex } from "../util/bytes.ts";
import type { MapName } from "../bpf/abi_gen.ts";

/** What `policy apply` needs, injected (CLI: pinned maps; daemon: its engine). */
export interface PolicyApplyDeps {
  maps: (name: MapName) => BpfMap;
  /** /var/lib/aegisbpf: snapshots, counter, map_sizes.json */
  stateDir: string;
  /** trusted keys folder (/etc/aegisbpf/keys) */
  keysDir: string;
  /** owner the keys folder must have (default 0: root; tests use their own uid) */
  keysOwnerUid?: number;
  compileEnv: CompileEnv;
  /** the live edits, carried into the new generation (or dropped by reset) */
  live: LiveRules;
  /**
   * The content scan (policy/content_scan.ts), for a policy with
   * [deny_binary_hash]: its matches become inode deny rules. It answers
   * null where the kernel hashes executed files itself (exec identity
   * source "ima"): asked at each apply, the source is known only once the
   * programs are attached.
   */
  contentScan?: (policy: Policy) => Promise<ContentScanResult | null>;
}

/** A content scan as an apply or restore reports it. */
export interface ContentScanReport {
  dirs: string[];
  files_hashed: number;
  bytes: number;
  /** the files with a denied content (inode rules now) */
  matches: ContentMatch[];
  /** what was not scanned, and why */
  skipped: string[];
  duration_ms: number;
}

/** The scan of a parsed policy, when this apply needs one: null otherwise. */
async function scanFor(
  deps: PolicyApplyDeps,
  policy: Policy,
  warnings: string[],
): Promise<ContentScanReport | null> {
  if (!deps.contentScan || policy.denyBinaryHash.length === 0) return null;
  const r = await deps.contentScan(policy);
  if (r === null) return null;
  const shown = r.skipped.slice(0, 10);
  for (const s of shown) warnings.push(`content scan: not scanned: ${s}`);
  if (r.skipped.length > shown.length) {
    warnings.push(`content scan: ${r.skipped.length - shown.length} more not scanned`);
  }
  return {
    dirs: r.dirs,
    files_hashed: r.hashed,
    bytes: r.bytes,
    matches: r.matches,
    skipped: r.skipped,
    duration_ms: r.ms,
  };
}

export interface PolicyApplyRequest {
  /** name used in messages */
  file: string;
  bytes: Uint8Array;
  sha256?: string;
  requireSignature?: boolean;
  dryRun?: boolean;
  /** drop the live edits: the policy file alone defines the rules */
  reset?: boolean;
  /** keep a failed apply's partial generation for inspection */
  noRollback?: boolean;
}

export interface PolicyApplyReport {
  file: string;
  /** of the file as given (a bundle: the whole bundle) */
  sha256: string;
  /** of the policy body now applied (policy.sha256; = sha256 for a plain file) */
  body_sha256?: string;
  version: number;
  flags: number;
  entries: Record<string, number>;
  unresolved: Unresolved[];
  warnings: string[];
  dry_run: boolean;
  signed: BundleSigner | null;
  live: { carried: number; dropped: LiveRule[]; expired: LiveRule[] };
  generation?: { from: number; to: number };
  removed?: number;
  switch_us?: number;
  /** the content scan this apply ran (exec identity source "scan"); absent otherwise */
  content_scan?: ContentScanReport;
}

/**
 * Verify (bundles), parse, compile, carry the live edits, apply, keep
 * snapshots. Throws PolicyRejectedError (nothing changed) for a refused
 * file, MapFullError / POLICY_APPLY_FAILED (previous policy enforcing)
 * when the maps refuse it.
 */
export async function applyPolicyBytes(
  deps: PolicyApplyDeps,
  req: PolicyApplyRequest,
): Promise<PolicyApplyReport> {
  const { file, bytes } = req;
  const repaired = await repairInterruptedApply(deps.stateDir);
  const sha = await sha256Hex(new Uint8Array(bytes));
  if (req.sha256 && req.sha256.toLowerCase() !== sha) {
    throw new PolicyRejectedError(
      "POLICY_HASH_MISMATCH",
      `${file} has SHA-256 ${sha}, not ${req.sha256}; nothing changed`,
    );
  }
  const warnings: string[] = repaired ? [repaired] : [];
  let body: Uint8Array = bytes;
  let signed: BundleSigner | null = null;
  if (isBundle(bytes)) {
    const { result, warnings: w } = await verifyBundleWithState(bytes, {
      keysDir: deps.keysDir,
      counterPath: counterPath(deps.stateDir),
      ownerUid: deps.keysOwnerUid ?? 0,
    });
    warnings.push(...w);
    if (!result.ok) {
      throw new PolicyRejectedError(result.code, `${file}: ${result.message}; nothing changed`);
    }
    body = result.body;
    signed = { policy_version: result.policyVersion, signer: result.signer };
  } else if (req.requireSignature) {
    throw new PolicyRejectedError(
      "BUNDLE_REQUIRED",
      `${file} is not a signed bundle and --require-signature was given; nothing changed`,
    );
  }
  const parsed = parsePolicy(body, file);
  warnings.push(...parsed.warnings.map((i) => formatIssue(i)));
  if (parsed.errors.length > 0 || !parsed.policy) {
    throw new PolicyRejectedError(
      "POLICY_INVALID",
      `${file}: ${parsed.errors.length} error(s); the policy was rejected as a whole and ` +
        `nothing changed`,
      parsed.errors.map((i) => formatIssue({ ...i, message: `error: ${i.message}` })),
    );
  }
  const scan = await scanFor(deps, parsed.policy, warnings);
  const { compiled, unresolved } = compilePolicy(parsed.policy, deps.compileEnv, scan?.matches);
  const expired = req.dryRun ? [] : deps.live.sweep();
  const carried = req.reset ? [] : deps.live.rules();
  const merged = mergeLive(compiled, carried);
  const report: PolicyApplyReport = {
    file,
    sha256: sha,
    version: parsed.policy.version,
    flags: merged.policy.flags,
    entries: countByMap(compiled.entries),
    unresolved,
    warnings,
    dry_run: !!req.dryRun,
    signed,
    live: { carried: carried.length, dropped: req.reset ? deps.live.rules() : [], expired },
    ...(scan ? { content_scan: scan } : {}),
  };
  if (req.dryRun) return report;
  // from here to the snapshots nothing awaits: two applies (the control
  // socket, a SIGHUP) cannot interleave between the switch and the files
  const bodySha = body === bytes ? sha : await sha256Hex(new Uint8Array(body));
  if (signed) {
    const counter = readCounter(counterPath(deps.stateDir));
    if (signed.policy_version <= counter) {
      throw new PolicyRejectedError(
        "BUNDLE_ROLLBACK",
        `${file}: policy_version ${signed.policy_version} is not newer than ${counter}, applied ` +
          `while this one was being verified; nothing changed`,
      );
    }
  }
  let result: ApplyResult;
  try {
    result = applyCompiled(deps.maps, merged.policy, { keepFailed: req.noRollback });
  } catch (e) {
    if (e instanceof MapFullError) recordMapSizeRequest(deps.stateDir, e.map, e.needs);
    throw e;
  }
  if (req.reset) deps.live.clear();
  else deps.live.setShadows(merged.shadows);
  keepSnapshots(deps.stateDir, body, bodySha, signed ? bytes : null);
  if (signed && signed.policy_version > readCounter(counterPath(deps.stateDir))) {
    writeCounter(counterPath(deps.stateDir), signed.policy_version);
  }
  report.body_sha256 = bodySha;
  report.generation = { from: result.from, to: result.to };
  report.removed = result.removed;
  report.switch_us = result.switchMicros;
  return report;
}

/** What a restore at start did. */
export interface RestoreReport {
  /** policy.applied, or null when only live rules were stored */
  file: string | null;
  sha256: string | null;
  entries: Record<string, number>;
  /** live rules carried (their TTLs still running) */
  live: number;
  /** live rules whose TTL ran out while the agent was down (removed) */
  expired: LiveRule[];
  /** live file/cgroup rules whose path now names another inode or cgroup (rekeyed) */
  rekeyed: LiveRule[];
  /** live file/cgroup rules whose path or cgroup is gone (dropped from the store) */
  dropped: LiveRule[];
  unresolved: Unresolved[];
  /** the switch made; null when re-adopted maps held the stored state already */
  generation: { from: number; to: number } | null;
  /** re-adopted maps only: how they differed from the stored state before the repair */
  diff: LiveDiff | null;
  /** the bundle it was applied from, verified again; null for a plain policy file */
  signed: BundleSigner | null;
  /** skipped key files, an expired bundle kept enforcing */
  warnings: string[];
  /** the content scan the restore ran (exec identity source "scan"); absent otherwise */
  content_scan?: ContentScanReport;
}

/**
 * Bring the rule maps to the stored desired state: the applied policy
 * (readAppliedPolicy: hash and, for a bundle, signature and counter checked
 * again; parsed — or the start's parse `opts.parsed` taken, when it was made
 * from the very bytes checked (storedParse) — and compiled again so paths
 * resolve to this boot's devices and inodes) plus the stored live rules
 * whose TTL has not run out.
 *
 * - Fresh (empty) maps, a first start or pins gone with a reboot: written
 *   as one new generation.
 * - Re-adopted maps (`readopted`): compared key by key with that state
 *   (diffLive), and repaired through one new generation only when they
 *   differ (an edit behind the agent's back, a file replaced since).
 *
 * Writes no state file: what is restored is what was applied. Null when
 * neither a policy nor a live rule was ever stored. A stored policy that
 * cannot be restored throws PolicyRejectedError POLICY_RESTORE_FAILED (or
 * MapFullError); the maps are then left as they were.
 */
export async function restoreAppliedPolicy(
  deps: PolicyApplyDeps,
  opts: { requireSignature?: boolean; readopted?: boolean; parsed?: AppliedParse | null } = {},
): Promise<RestoreReport | null> {
  const stored = await readAppliedPolicy(
    deps.stateDir,
    { dir: deps.keysDir, ownerUid: deps.keysOwnerUid },
    !!opts.requireSignature,
  );
  let compiled: CompiledPolicy = { flags: 0, entries: [] };
  let unresolved: Unresolved[] = [];
  let scan: ContentScanReport | null = null;
  const warnings = [...(stored?.warnings ?? [])];
  if (stored) {
    const parsed = storedParse(opts.parsed, stored) ?? parsePolicy(stored.body, stored.file);
    if (parsed.errors.length > 0 || !parsed.policy) {
      throw new PolicyRejectedError(
        "POLICY_RESTORE_FAILED",
        `${stored.file} no longer parses (${parsed.errors.length} error(s)); apply a good ` +
          `policy again`,
        parsed.errors.map((i) => formatIssue({ ...i, message: `error: ${i.message}` })),
      );
    }
    scan = await scanFor(deps, parsed.policy, warnings);
    ({ compiled, unresolved } = compilePolicy(parsed.policy, deps.compileEnv, scan?.matches));
  }
  const expired = deps.live.sweep();
  // device and inode numbers are new after a reboot; files may have been replaced
  const { changed: rekeyed, dropped } = deps.live.refreshIdentities();
  const carried = deps.live.rules();
  if (!stored && carried.length === 0 && !opts.readopted) return null;
  const merged = mergeLive(compiled, carried);
  let diff: LiveDiff | null = null;
  let generation: RestoreReport["generation"] = null;
  if (opts.readopted) diff = diffLive(deps.maps, merged.policy);
  if (!diff || !liveMatches(diff)) {
    const result = applyCompiled(deps.maps, merged.policy, {});
    generation = { from: result.from, to: result.to };
  }
  deps.live.setShadows(merged.shadows);
  return {
    file: stored?.file ?? null,
    sha256: stored?.sha ?? null,
    entries: countByMap(compiled.entries),
    live: carried.length,
    expired,
    rekeyed,
    dropped,
    unresolved,
    generation,
    diff,
    signed: stored?.signed ?? null,
    warnings,
    ...(scan ? { content_scan: scan } : {}),
  };
}

/**
 * The start's parse of policy.applied (parseAppliedPolicy) when it was made
 * from the very bytes the restore checked: the same file and the SHA-256
 * readAppliedPolicy computed of the body it hash-checked (and verified
 * against the bundle). Null when the file changed in between: parse again.
 */
function storedParse(
  pre: AppliedParse | null | undefined,
  stored: { file: string; sha: string },
): ParseResult | null {
  return pre && pre.file === stored.file && pre.sha === stored.sha ? pre.result : null;
}

/** `policy show`: live generation, entries per map and generation, applied file, live edits. */
export interface PolicyShow {
  generation: number;
  rule_entries: Record<string, number>;
  /** entries of the inactive generation (left by a failed --no-rollback apply) */
  inactive_entries: Record<string, number>;
  policy: string;
  live_rules: number;
}

export function policyShow(
  maps: (name: MapName) => BpfMap,
  stateDir: string,
  live: LiveRules,
): PolicyShow {
  const gen = liveGeneration(maps);
  const counts = generationCounts(maps);
  const active: Record<string, number> = {};
  const inactive: Record<string, number> = {};
  for (const [m, c] of Object.entries(counts)) {
    active[m] = c[gen];
    if (c[1 - gen] > 0) inactive[m] = c[1 - gen];
  }
  let policy = "";
  try {
    policy = Deno.readTextFileSync(`${stateDir}/policy.applied`);
  } catch { /* none applied yet */ }
  return {
    generation: gen,
    rule_entries: active,
    inactive_entries: inactive,
    policy,
    live_rules: live.rules().length,
  };
}
