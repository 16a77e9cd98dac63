/**
 * The daemon's side of policy changes: the control socket's /rules and
 * /policy routes over the engine's own maps, the TTL sweep of live rules,
 * and the watcher that enforces unresolved policy paths when their files
 * appear. Created before the engine (the socket is bound first), bound to
 * the engine once it runs; until then every route answers 503 STARTING.
 *
 * @module
 */
import type { Hono } from "hono";
import type { Engine } from "../bpf/engine.ts";
import type { BpfMap } from "../bpf/map.ts";
import type { MapName } from "../bpf/abi_gen.ts";
import { callerSource, type ControlCaller, describeCaller, selfCaller } from "../control/caller.ts";
import { AegisError } from "../errors.ts";
import { literal, log } from "../log.ts";
import {
  applyPolicyBytes,
  type ContentScanReport,
  type PolicyApplyDeps,
  type PolicyApplyReport,
  restoreAppliedPolicy,
  type RestoreReport,
} from "../policy/apply.ts";
import { type AppliedParse, isAppliedPolicy } from "../policy/store.ts";
import type { Unresolved } from "../policy/compile.ts";
import { hostCompileEnv } from "../policy/host_env.ts";
import { keysDir } from "../policy/keys.ts";
import { describeRule, LiveRules } from "../policy/live.ts";
import { parsePolicy } from "../policy/parse.ts";
import type { FileRuleTarget, RuleVerification } from "../proof/verify.ts";
import { createPolicyRoutes } from "../control/policy_routes.ts";
import { createRuleRoutes } from "../control/rule_routes.ts";
import { createStatsRoutes } from "../control/stats_routes.ts";
import { createSurvivalRoutes } from "../control/survival_routes.ts";
import { CgroupPathResolver } from "../events/cgroup_path.ts";
import type { CgroupResolver } from "../events/json.ts";
import type { KernelRecord } from "../events/decode.ts";
import { BlockTally } from "../metrics/block_tally.ts";
import { totalMatches } from "../metrics/render.ts";
import type { CanaryResult } from "../policy/canary.ts";
import { pathRuleEnforcer, UnresolvedWatcher } from "../policy/watch.ts";
import { type ContentMatch, deniedContents, scanForPolicy } from "../policy/content_scan.ts";
import type { Policy } from "../policy/model.ts";
import type { ContentScanSummary } from "../posture/report.ts";
import { ContentWatcher } from "./content_watch.ts";
import type { EventBus } from "../contracts.ts";

/**
 * Reports list at most this many missing paths (the count is always
 * whole): a policy naming 100k missing files must not rebuild a 100k-entry
 * list for every capabilities rewrite, /state answer or metrics scrape.
 */
export const UNRESOLVED_LIST_LIMIT = 1000;

export interface DaemonPolicyOptions {
  stateDir: string;
  bus: EventBus;
  /** something the report shows changed (unresolved set, policy) */
  onChange: () => void;
  /** a policy was applied (control socket or --policy): the maps hold it now */
  onApplied?: (report: PolicyApplyReport) => void;
  /**
   * The set of enforced file rules changed (apply, live edit, restore, a
   * watched path appeared): verify them again (src/proof/verify.ts).
   */
  onRulesChanged?: () => void;
  /**
   * Prove the rules now (a verification round), for the reply to an apply
   * or `block add`; null when the agent does not verify now.
   */
  verifyNow?: () => Promise<RuleVerification | null>;
  /**
   * The enforcement proof's own denies so far (all hooks), taken out of
   * what `policy apply --canary` counts; absent: counted with the rest.
   */
  ownDenies?: () => number;
  /** cgroup id → path, shared with the event lines (a resolver of its own when absent) */
  cgroups?: CgroupResolver;
  /**
   * True when the exec identity source is "scan" (posture/exec_identity.ts):
   * applies and the restore then hash the scanned directories for
   * [deny_binary_hash] contents (policy/content_scan.ts).
   */
  contentScanOn?: () => boolean;
  /** a content scan ran with an apply or the restore (the report shows it) */
  onContentScan?: (summary: ContentScanSummary) => void;
}

export class DaemonPolicy {
  #o: DaemonPolicyOptions;
  #engine: Engine | null = null;
  #watcher: UnresolvedWatcher | null = null;
  /** deny_path lines of policy.applied, parsed again only when the file changes */
  #denyPaths: { stamp: string; rules: FileRuleTarget[] } | null = null;
  readonly live: LiveRules;
  /** blocks by rule and cgroup, from the records handed to observeBlock() (GET /stats/blocks) */
  readonly tally = new BlockTally();
  #cgroupPaths: CgroupResolver | null = null;
  /** the files the last content scan (and its watch) found: inode deny rules */
  #contentMatches: ContentMatch[] = [];
  #contentWatch: ContentWatcher | null = null;

  constructor(o: DaemonPolicyOptions) {
    this.#o = o;
    const env = hostCompileEnv();
    this.live = new LiveRules({
      maps: (name) => this.#maps(name),
      storePath: `${o.stateDir}/live_rules.json`,
      resolveCgroup: env.resolveCgroup,
      ownerUid: Deno.uid() ?? 0,
    });
  }

  #maps(name: MapName): BpfMap {
    if (!this.#engine) throw new AegisError("STARTING", "the agent is still starting");
    return this.#engine.obj.map(name);
  }

  /**
   * Count a user-visible kernel record in the block tally (the drain hands
   * every record that is not the proof's own).
   */
  observeBlock(r: KernelRecord): void {
    this.tally.observe(r);
  }

  /** A cgroup id's path (for GET /stats/blocks), null when unknown. */
  #cgroupPath(cgid: string): string | null {
    const id = BigInt(cgid);
    if (id > BigInt(Number.MAX_SAFE_INTEGER)) return null;
    this.#cgroupPaths ??= this.#o.cgroups ?? new CgroupPathResolver();
    return this.#cgroupPaths.resolve(Number(id));
  }

  /** The control socket's sub-apps: /rules, /policy, /survival and /stats. */
  mounts(): Record<string, Hono> {
    const lg = log("policy");
    const onError = (what: string, e: unknown) =>
      lg.error(literal(`${what}: ${e instanceof Error ? e.message : e}`));
    const policyText = () => {
      try {
        return Deno.readTextFileSync(`${this.#o.stateDir}/policy.applied`);
      } catch {
        return "";
      }
    };
    return {
      "/rules": createRuleRoutes({
        live: this.live,
        policyText,
        onChange: ({ action, rule, caller }) => {
          lg.info(
            literal(`live rule ${action} ${rule.id} by ${describeCaller(caller)}`),
            {
              action,
              rule,
              caller,
            },
          );
          this.#o.bus.emit({
            type: "control_change",
            event_version: 1,
            control: "live_rule",
            action,
            rule: ruleForEvent(rule),
            uid: caller.uid,
            pid: caller.pid,
            caller_source: callerSource(caller),
            changed_at_unix: Math.floor(Date.now() / 1000),
          });
          this.#o.onRulesChanged?.();
        },
        onExpired: (rules) => this.#expired(rules),
        onError,
        verify: this.#o.verifyNow,
      }),
      "/policy": createPolicyRoutes({
        apply: this.#applyDeps(),
        onApplied: (report, caller) => this.#announceApplied(report, caller),
        onRefused: (e, caller) =>
          lg.warn(
            literal(`policy apply refused (${describeCaller(caller)}): ${e.message}`),
            {
              code: e.code,
            },
          ),
        onError,
        verify: this.#o.verifyNow,
        canaryCount: () =>
          Number(totalMatches(this.#maps("aegis_hook_stats"))) - (this.#o.ownDenies?.() ?? 0),
        onCanary: (result, report, caller) => this.#announceCanary(result, report, caller),
      }),
      "/survival": createSurvivalRoutes({
        map: () => this.#maps("aegis_survival_inode"),
        onError,
      }),
      "/stats": createStatsRoutes({
        tally: this.tally,
        ruleName: (id) => this.live.ruleName(id, policyText()),
        cgroupPath: (cgid) => this.#cgroupPath(cgid),
        onError,
      }),
    };
  }

  /** What an apply or a restore works on: the engine's maps and the state directory. */
  #applyDeps(): PolicyApplyDeps {
    return {
      maps: (name) => this.#maps(name),
      stateDir: this.#o.stateDir,
      keysDir: keysDir(),
      compileEnv: hostCompileEnv(),
      live: this.live,
      // asked at each apply: these deps are built before the programs attach
      contentScan: (p: Policy) =>
        this.#o.contentScanOn?.() ? scanForPolicy(p) : Promise.resolve(null),
    };
  }

  /**
   * At start, after attach() and before any claim of enforcement: bring the
   * maps to the stored policy and live rules (restoreAppliedPolicy) — into
   * fresh maps, or compared with re-adopted ones and repaired when they
   * differ — log and announce it, and watch the paths that do not exist yet.
   * Throws when the stored state cannot be restored (the maps unchanged).
   * `parsed`: policy.applied as parsed at start (parseAppliedPolicy), taken
   * only when the body the restore checks is those bytes.
   */
  async restore(
    requireSignature: boolean,
    readopted: boolean,
    parsed: AppliedParse | null = null,
  ): Promise<RestoreReport | null> {
    const r = await restoreAppliedPolicy(this.#applyDeps(), {
      requireSignature,
      readopted,
      parsed,
    });
    if (!r) return null;
    const lg = log("run");
    for (const w of r.warnings) lg.warn(literal(w));
    this.watch(r.unresolved);
    this.#contentScanned(r.content_scan);
    if (r.expired.length > 0) this.#expired(r.expired);
    for (const x of r.rekeyed) {
      lg.info(
        literal(`live rule ${x.id} (${describeRule(x.spec)}): its path or cgroup is resolved anew`),
        { rule: x },
      );
    }
    for (const x of r.dropped) {
      lg.warn(
        literal(
          `live rule ${x.id} (${
            describeRule(x.spec)
          }) dropped: its file or cgroup does not exist ` +
            `now (its old identity could name something else on this boot); add it again when ` +
            `it is back`,
        ),
        { rule: x },
      );
      this.#announceLiveRule(x, "drop");
    }
    const n = Object.values(r.entries).reduce((a, b) => a + b, 0);
    const what =
      `${
        r.sha256
          ? `the applied policy (sha256 ${r.sha256}${
            r.signed ? `, bundle policy_version ${r.signed.policy_version}` : ""
          })`
          : "no policy file"
      }: ${n} map entries, ${r.live} live rule(s), ${r.unresolved.length} path(s) not present ` +
      `yet, ${r.expired.length} live rule(s) expired while stopped`;
    if (!r.generation) {
      lg.info(
        literal(
          `the re-adopted rule maps hold the stored state (${r.diff?.expected} entries): ${what}`,
        ),
      );
      return r;
    }
    if (r.diff) {
      const d = r.diff;
      lg.warn(
        literal(
          `the re-adopted rule maps differed from the stored state (${d.missing} missing, ` +
            `${d.extra} extra, ${d.changed} changed${
              d.flagsMissing ? `, policy flags 0x${d.flagsMissing.toString(16)} off` : ""
            }): repaired through generation ${r.generation.from} -> ${r.generation.to}; ${what}`,
        ),
        { diff: d },
      );
    } else {
      lg.info(literal(`restored ${what}`), { entries: r.entries, generation: r.generation });
    }
    this.#o.bus.emit({
      type: "policy_restored",
      sha256: r.sha256,
      entries: r.entries,
      live_rules: r.live,
      expired_live_rules: r.expired.length,
      unresolved: r.unresolved.length,
      generation: r.generation.to,
      ...(r.diff ? { repaired: r.diff } : {}),
      at_unix: Math.floor(Date.now() / 1000),
    });
    this.#o.onRulesChanged?.();
    return r;
  }

  /** Log and emit the `policy_canary` event (docs/telemetry.md) when a canary watch ended. */
  #announceCanary(c: CanaryResult, report: PolicyApplyReport, caller: ControlCaller): void {
    const what = `policy canary ${c.outcome}: ${report.file} (sha256 ${report.sha256}), ` +
      `${c.denies} denies in ${c.elapsed_ms} ms = ${c.rate_per_s}/s, threshold ` +
      `${c.threshold_per_s}/s` + (c.rollback ? `; back to ${c.rollback.file}` : "") +
      (c.error ? `; the rollback was refused: ${c.error}` : "");
    const lg = log("policy");
    if (c.outcome === "kept") lg.info(literal(what), { canary: c });
    else lg.warn(literal(what), { canary: c });
    this.#o.bus.emit({
      type: "policy_canary",
      event_version: 1,
      outcome: c.outcome,
      file: report.file,
      sha256: report.sha256,
      window_s: c.window_s,
      threshold_per_s: c.threshold_per_s,
      denies: c.denies,
      elapsed_ms: c.elapsed_ms,
      rate_per_s: c.rate_per_s,
      rollback: c.rollback,
      ...(c.error ? { error: c.error } : {}),
      uid: caller.uid,
      pid: caller.pid,
      caller_source: callerSource(caller),
      at_unix: Math.floor(Date.now() / 1000),
    });
  }

  /** Log, emit, watch and re-verify after a successful apply. */
  #announceApplied(report: PolicyApplyReport, caller: ControlCaller): void {
    log("policy").info(
      literal(
        `policy applied by ${describeCaller(caller)}: ${report.file} ` +
          `(sha256 ${report.sha256}, ${report.unresolved.length} unresolved)`,
      ),
      { sha256: report.sha256, caller },
    );
    this.#o.bus.emit({
      type: "control_change",
      event_version: 1,
      control: "policy",
      action: "apply",
      sha256: report.sha256,
      version: report.version,
      unresolved: report.unresolved.length,
      uid: caller.uid,
      pid: caller.pid,
      caller_source: callerSource(caller),
      changed_at_unix: Math.floor(Date.now() / 1000),
    });
    this.watch(report.unresolved);
    this.#contentScanned(report.content_scan);
    this.#o.onApplied?.(report);
    this.#o.onChange();
    this.#o.onRulesChanged?.();
  }

  /**
   * `run --policy PATH` (at start, and again on SIGHUP): apply the file (a
   * policy or a signed bundle) when it is not what is applied now (or
   * always, with `force`: after a failed restore); the
   * agent itself is the caller. Returns the report, or null when the file is
   * the applied policy already. Throws what applyPolicyBytes throws (the
   * previous policy then keeps enforcing) and AegisError POLICY_READ_FAILED.
   */
  async applyFile(
    path: string,
    requireSignature: boolean,
    force = false,
  ): Promise<PolicyApplyReport | null> {
    let bytes: Uint8Array;
    try {
      bytes = Deno.readFileSync(path);
    } catch (e) {
      throw new AegisError(
        "POLICY_READ_FAILED",
        `cannot read the policy ${path}: ${e instanceof Error ? e.message : e}`,
      );
    }
    if (!force && await isAppliedPolicy(this.#o.stateDir, bytes, requireSignature)) return null;
    const report = await applyPolicyBytes(this.#applyDeps(), {
      file: path,
      bytes,
      requireSignature,
    });
    this.#announceApplied(report, selfCaller());
    return report;
  }

  /** Bind to the running engine (restore() then watches the policy's missing paths). */
  attach(engine: Engine): void {
    this.#engine = engine;
    // finish a live edit a killed process left half done, now rather than at the first sweep
    try {
      const n = this.live.recover();
      if (n > 0) log("policy").warn(literal(`finished ${n} interrupted live rule edit(s)`));
    } catch (e) {
      log("policy").error(
        literal(`cannot finish interrupted live rule edits: ${e instanceof Error ? e.message : e}`),
      );
    }
  }

  /**
   * The content scan an apply or the restore ran (undefined: none, the
   * policy has no [deny_binary_hash] or the kernel hashes): keep its
   * matches, report it, and watch its directories for files written later.
   */
  #contentScanned(scan: ContentScanReport | undefined): void {
    this.#contentWatch?.stop();
    this.#contentWatch = null;
    this.#contentMatches = scan?.matches ?? [];
    if (!scan || !this.#engine) return;
    const lg = log("policy");
    lg.info(
      literal(
        `content scan: ${scan.files_hashed} files hashed in ${scan.dirs.join(", ")} ` +
          `(${scan.duration_ms} ms): ${scan.matches.length} with a [deny_binary_hash] content ` +
          `denied by inode${scan.matches.length > 0 ? ": " : ""}${
            scan.matches.slice(0, 20).map((m) => `${m.path} (line ${m.line})`).join(", ")
          }`,
      ),
      { files_hashed: scan.files_hashed, matches: scan.matches.length },
    );
    this.#o.onContentScan?.({
      at: Math.floor(Date.now() / 1000),
      dirs: scan.dirs,
      files_hashed: scan.files_hashed,
      bytes: scan.bytes,
      matches: scan.matches.length,
      skipped: scan.skipped.length,
      duration_ms: scan.duration_ms,
    });
    let denied: Map<string, number>;
    try {
      const file = `${this.#o.stateDir}/policy.applied`;
      denied = deniedContents(
        parsePolicy(Deno.readFileSync(file), file).policy?.denyBinaryHash ?? [],
      );
    } catch (e) {
      lg.warn(
        literal(`content scan: cannot watch for new files: ${e instanceof Error ? e.message : e}`),
      );
      return;
    }
    const enforce = pathRuleEnforcer((name) => this.#maps(name));
    const w = new ContentWatcher({
      dirs: scan.dirs,
      denied,
      onMatch: (m) => {
        const r = hostCompileEnv().resolvePath(m.path);
        if (r.status !== "resolved") return; // gone again
        enforce({ section: "deny_binary_hash", line: m.line, what: m.path, reason: "" }, r);
        this.#contentMatches.push(m);
        lg.warn(
          literal(
            `content scan: ${m.path} appeared with a denied content (sha256 ${m.sha256}, ` +
              `[deny_binary_hash] line ${m.line}): denied by inode`,
          ),
          { path: m.path, sha256: m.sha256, line: m.line, dev: r.dev, ino: r.ino },
        );
        this.#o.onChange();
        this.#o.onRulesChanged?.();
      },
      onError: (what, e) => lg.warn(literal(`${what}: ${e instanceof Error ? e.message : e}`)),
    });
    this.#contentWatch = w;
    w.start();
  }

  /** Files a content scan denied (rule id = their hash line), for block events' paths. */
  contentTargets(): { ruleId: number; path: string; sha256: string }[] {
    return this.#contentMatches.map((m) => ({ ruleId: m.line, path: m.path, sha256: m.sha256 }));
  }

  /** Replace the watcher with one for `unresolved`. */
  watch(unresolved: readonly Unresolved[]): void {
    this.#watcher?.stop();
    const lg = log("policy");
    if (!this.#engine) return;
    const w = new UnresolvedWatcher(unresolved, {
      enforce: pathRuleEnforcer((name) => this.#maps(name)),
      onResolved: (r) => {
        lg.info(
          literal(
            `${r.entry.what} appeared (${r.via}, ${Math.round(r.pendingMs)} ms after watching ` +
              `began): ${r.entry.section} line ${r.entry.line} is enforced`,
          ),
          { path: r.entry.what, ino: r.ino, dev: r.dev },
        );
        this.#o.bus.emit({
          type: "policy_path_resolved",
          path: r.entry.what,
          section: r.entry.section,
          line: r.entry.line,
          ino: r.ino,
          dev: r.dev,
          pending_ms: Math.round(r.pendingMs),
          via: r.via,
        });
        this.#o.onChange();
        this.#o.onRulesChanged?.();
      },
      onError: (what, e) => lg.warn(literal(`${what}: ${e instanceof Error ? e.message : e}`)),
    });
    this.#watcher = w;
    w.start();
  }

  /** Paths of the applied policy still missing, at most `limit` of them. */
  unresolved(limit = UNRESOLVED_LIST_LIMIT): string[] {
    return this.#watcher?.pending(limit).map((p) => p.what) ?? [];
  }

  /** How many paths of the applied policy are still missing (no list built). */
  unresolvedCount(): number {
    return this.#watcher?.pendingCount ?? 0;
  }

  /**
   * The global file deny rules to verify: the `deny_path` lines of the
   * applied policy (rule id = line) and the `block add` live rules. Paths as
   * given; one that does not exist now is skipped by the verifier.
   */
  fileRuleTargets(): FileRuleTarget[] {
    const file = `${this.#o.stateDir}/policy.applied`;
    let policyRules: FileRuleTarget[] = [];
    try {
      const st = Deno.statSync(file);
      const stamp = `${st.ino}:${st.size}:${st.mtime?.getTime()}`;
      if (this.#denyPaths?.stamp !== stamp) {
        const parsed = parsePolicy(Deno.readFileSync(file), file);
        this.#denyPaths = {
          stamp,
          rules: (parsed.policy?.denyPath ?? []).map((e) => ({ ruleId: e.line, path: e.path })),
        };
      }
      policyRules = this.#denyPaths.rules;
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
      this.#denyPaths = null;
    }
    const live: FileRuleTarget[] = [];
    for (const r of this.live.rules()) {
      if (r.spec.kind === "path" && r.state === undefined) {
        live.push({ ruleId: r.id, path: r.spec.path });
      }
    }
    return [...policyRules, ...live];
  }

  /** Once a second: remove expired live rules. */
  tick(): void {
    if (!this.#engine) return;
    const expired = this.live.sweep();
    if (expired.length > 0) this.#expired(expired);
  }

  #expired(rules: readonly { id: number }[]): void {
    const lg = log("policy");
    for (const r of rules) {
      lg.info(literal(`live rule ${r.id} expired (TTL) and was removed`), { rule: r });
      this.#announceLiveRule(r, "expire");
    }
  }

  /**
   * The control_change event for a live rule the agent itself removed (no
   * caller): `drop` at start (its file or cgroup is gone), `expire` (TTL).
   */
  #announceLiveRule(rule: { id: number }, action: "drop" | "expire"): void {
    this.#o.bus.emit({
      type: "control_change",
      event_version: 1,
      control: "live_rule",
      action,
      rule,
      changed_at_unix: Math.floor(Date.now() / 1000),
    });
  }

  close(): void {
    this.#watcher?.stop();
    this.#watcher = null;
    this.#contentWatch?.stop();
    this.#contentWatch = null;
  }
}

/**
 * A live rule as a control_change event carries it: its u64s (`spec.ino`,
 * `spec.cgid`: decimal strings in the store) as exact JSON integers, like
 * every u64 of an event (docs/telemetry.md).
 */
export function ruleForEvent<T>(rule: T): T {
  if (typeof rule !== "object" || rule === null) return rule;
  const spec = (rule as { spec?: unknown }).spec;
  if (typeof spec !== "object" || spec === null) return rule;
  const out: Record<string, unknown> = Object.fromEntries(Object.entries(spec));
  for (const k of ["ino", "cgid"]) {
    const v = out[k];
    if (typeof v === "string" && /^\d{1,20}$/.test(v)) {
      const b = BigInt(v);
      if (b < 2n ** 64n) out[k] = b <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b;
    }
  }
  return { ...rule, spec: out };
}
