/**
 * Live rule edits (`block|allow|network deny add|del|list`): rules added
 * to the LIVE generation's maps without a policy file, each with an
 * optional time-to-live, and recorded in a store so that
 *
 * - a later `policy apply` carries them into the new generation (unless
 *   `--reset`), and
 * - an agent restart, a CLI run without the daemon, and `list` know them.
 *
 * Store: `<stateDir>/live_rules.json` (0600, written atomically, checked
 * to be ours and not group/other writable before use), guarded by an
 * flock on `live_rules.json.lock` so two CLI runs without a daemon do not
 * lose each other's edits.
 *
 * Crash safety (kill -9 at any point; docs/control.md, "Live rule edits and kill -9"): the
 * store is written first and says what is in progress. `add` records the
 * new rule with `state: "adding"`, writes the map, then clears the state;
 * `del` marks the rule `state: "deleting"`, restores/deletes its map
 * entry, then drops it from the store. A rule left with a state by a killed
 * process is finished (roll forward) by the next {@link LiveRules.recover},
 * which every edit and every sweep runs first under the lock — the daemon
 * sweeps once a second, each CLI rule command sweeps — so the maps and the
 * store agree again at the next start. A sweep killed between its map
 * writes and its store write is simply redone (restoring/deleting is
 * idempotent). The store itself is replaced atomically (it always parses);
 * temp files a killed writer left are removed under the lock.
 *
 * Rule ids: a live rule's id (the `rule_id` block events carry) starts at
 * LIVE_RULE_ID_BASE = 2^31; policy rules use their line number (below
 * 2^24, as a policy file is at most 16 MiB). So a block event says which
 * one denied.
 *
 * A live rule on a key the policy already holds (the same inode, address
 * …) replaces the policy's value while it lives (its flags are kept) and
 * the policy's value comes back when the live rule is deleted or expires
 * (`shadows`).
 *
 * @module
 */
import { z } from "zod";
import {
  AEGIS_POL_CGROUP_RULES,
  AEGIS_POL_FILE_RULES,
  AEGIS_POL_NET_RULES,
  AEGIS_RT_CG_INODE,
  AEGIS_RT_CG_IP,
  AEGIS_RT_CG_PORT,
  AEGIS_RT_CIDR,
  AEGIS_RT_INODE,
  AEGIS_RT_IP,
  AEGIS_RT_IP_PORT,
  AEGIS_RT_PORT,
  AEGIS_RULE_DENY,
  MAP_NAMES,
  type MapName,
} from "../bpf/abi_gen.ts";
import type { BpfMap } from "../bpf/map.ts";
import {
  cidrKey,
  DIR_BY_NAME,
  dirName,
  ipKey,
  ipPortKey,
  netTableFlag,
  parseCidr,
  parseIp,
  parseIpPort,
  parsePort,
  portKey,
  PROTO_BY_NAME,
  protoName,
} from "../bpf/net_codec.ts";
import { type ResolvedPath, resolveRulePath } from "../bpf/path_rule.ts";
import {
  cgInodeKey,
  cgIpKey,
  cgPortKey,
  cgroupKey,
  inodeKey,
  policyValue,
  ruleValue,
  u32Key,
} from "../bpf/rule_codec.ts";
import { AegisError, NativeCallError, UsageError } from "../errors.ts";
import { fromHex, toHex } from "../util/bytes.ts";
import { writeFileAtomic } from "./atomic.ts";
import type { CompiledEntry, CompiledPolicy } from "./compile.ts";
import { BUILTIN_RULE_IDS, keyGeneration, liveGeneration } from "./generations.ts";
import { formatIp, parseCgroupRef, parseInode } from "./parse.ts";

/** Rule ids of live edits start here (policy rules use their line number). */
export const LIVE_RULE_ID_BASE = 0x8000_0000;
/** Longest accepted time-to-live: 366 days. */
export const MAX_TTL_SECONDS = 366 * 86400;

/**
 * What an add did to the rule's expiry: `new` (a new rule), `unchanged`
 * (renewed, no TTL before or now), `set` (no TTL before, one now), `removed`
 * (a TTL before, none now: the rule stays until deleted), `extended` or
 * `shortened` (a TTL before and now; equal counts as extended).
 */
export type ExpiryChange = "new" | "unchanged" | "set" | "removed" | "extended" | "shortened";

/** The result of {@link LiveRules.add} (and of POST /rules, with `expired`). */
export interface LiveAddResult {
  rule: LiveRule;
  /** the same rule was live already: its expiry was replaced */
  renewed: boolean;
  /** the rule's expiry before this add (ms since the epoch; null: none, or a new rule) */
  previous_expires: number | null;
  expiry: ExpiryChange;
}

/** How an expiry changed from `before` to `after` on a renewal (null: no TTL). */
export function expiryChange(before: number | null, after: number | null): ExpiryChange {
  if (before === null) return after === null ? "unchanged" : "set";
  if (after === null) return "removed";
  return after >= before ? "extended" : "shortened";
}

/** A protocol or direction name the request schema already validated, to its number. */
function netNumber<T>(table: ReadonlyMap<string, T>, name: string): T {
  const v = table.get(name);
  if (v === undefined) throw new UsageError(`unknown protocol or direction "${name}"`);
  return v;
}

/** What an operator asks to add or delete (CLI options, control-socket body). */
export const LiveRuleRequest = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("path"), path: z.string().min(1) }),
  z.object({ kind: z.literal("cgroup"), cgroup: z.string().min(1) }),
  z.object({ kind: z.literal("ip"), ip: z.string().min(1) }),
  z.object({ kind: z.literal("cidr"), cidr: z.string().min(1) }),
  z.object({
    kind: z.literal("port"),
    port: z.number().int(),
    protocol: z.enum(["tcp", "udp", "any"]).default("any"),
    direction: z.enum(["egress", "bind", "both"]).default("egress"),
  }),
  z.object({
    kind: z.literal("ip_port"),
    ip_port: z.string().min(1),
    protocol: z.enum(["tcp", "udp", "any"]).optional(),
  }),
  // cgroup-scoped denies (the policy's cgroup_deny_* sections, docs/policy.md)
  z.object({ kind: z.literal("cg_inode"), cgroup: z.string().min(1), inode: z.string().min(1) }),
  z.object({ kind: z.literal("cg_ip"), cgroup: z.string().min(1), ip: z.string().min(1) }),
  z.object({
    kind: z.literal("cg_port"),
    cgroup: z.string().min(1),
    port: z.number().int(),
    protocol: z.enum(["tcp", "udp", "any"]).default("any"),
    direction: z.enum(["egress", "bind", "both"]).default("egress"),
  }),
]);
export type LiveRuleRequest = z.input<typeof LiveRuleRequest>;

/** A rule in canonical, resolved form (what the store keeps). */
export const LiveRuleSpec = z.discriminatedUnion("kind", [
  z.object({
    kind: z.literal("path"),
    path: z.string(),
    dev: z.number().int().nonnegative(),
    ino: z.string().regex(/^\d+$/),
  }),
  z.object({ kind: z.literal("cgroup"), cgroup: z.string(), cgid: z.string().regex(/^\d+$/) }),
  z.object({ kind: z.literal("ip"), ip: z.string() }),
  z.object({ kind: z.literal("cidr"), cidr: z.string() }),
  z.object({
    kind: z.literal("port"),
    port: z.number().int().min(1).max(65535),
    protocol: z.enum(["tcp", "udp", "any"]),
    direction: z.enum(["egress", "bind", "both"]),
  }),
  z.object({
    kind: z.literal("ip_port"),
    ip: z.string(),
    port: z.number().int().min(1).max(65535),
    protocol: z.enum(["tcp", "udp", "any"]),
  }),
  z.object({
    kind: z.literal("cg_inode"),
    cgroup: z.string(),
    cgid: z.string().regex(/^\d+$/),
    dev: z.number().int().nonnegative(),
    ino: z.string().regex(/^\d+$/),
  }),
  z.object({
    kind: z.literal("cg_ip"),
    cgroup: z.string(),
    cgid: z.string().regex(/^\d+$/),
    ip: z.string(),
  }),
  z.object({
    kind: z.literal("cg_port"),
    cgroup: z.string(),
    cgid: z.string().regex(/^\d+$/),
    port: z.number().int().min(1).max(65535),
    protocol: z.enum(["tcp", "udp", "any"]),
    direction: z.enum(["egress", "bind", "both"]),
  }),
]);
export type LiveRuleSpec = z.infer<typeof LiveRuleSpec>;

export const LiveRule = z.object({
  id: z.number().int().min(LIVE_RULE_ID_BASE).max(0xffff_ffff),
  map: z.enum(MAP_NAMES),
  spec: LiveRuleSpec,
  /** unix ms */
  added: z.number(),
  /** unix ms, or null: until deleted */
  expires: z.number().nullable(),
  /** hex of the policy value this rule replaced, restored when it goes */
  shadows: z.string().regex(/^[0-9a-f]*$/).nullable(),
  /** an edit in progress (absent when none): finished by recover() */
  state: z.enum(["adding", "deleting"]).optional(),
});
export type LiveRule = z.infer<typeof LiveRule>;

const Store = z.object({
  version: z.literal(1),
  next_id: z.number().int().min(LIVE_RULE_ID_BASE).max(0xffff_ffff),
  rules: z.array(LiveRule),
});
type Store = z.infer<typeof Store>;

/** Which rules a command family lists. */
export type RuleGroup = "block" | "allow" | "network" | "cgroup_deny";
export const RULE_GROUPS: readonly RuleGroup[] = ["block", "allow", "network", "cgroup_deny"];
export const GROUP_KINDS: Record<RuleGroup, readonly LiveRuleSpec["kind"][]> = {
  block: ["path"],
  allow: ["cgroup"],
  network: ["ip", "cidr", "port", "ip_port"],
  cgroup_deny: ["cg_inode", "cg_ip", "cg_port"],
};
export const GROUP_MAPS: Record<RuleGroup, readonly MapName[]> = {
  block: ["aegis_deny_inode"],
  allow: ["aegis_allow_cgroup"],
  network: [
    "aegis_deny_ip4",
    "aegis_deny_ip6",
    "aegis_deny_cidr4",
    "aegis_deny_cidr6",
    "aegis_deny_port",
    "aegis_deny_ip4_port",
    "aegis_deny_ip6_port",
  ],
  cgroup_deny: ["aegis_cg_deny_inode", "aegis_cg_deny_ip", "aegis_cg_deny_port"],
};

/** The key and value-shape of a rule spec. */
function keyOf(spec: LiveRuleSpec, gen: number): { map: MapName; key: Uint8Array<ArrayBuffer> } {
  switch (spec.kind) {
    case "path":
      return { map: "aegis_deny_inode", key: inodeKey(spec.dev, BigInt(spec.ino), gen) };
    case "cgroup":
      return { map: "aegis_allow_cgroup", key: cgroupKey(BigInt(spec.cgid), gen) };
    case "ip":
      return ipKey(parseIp(spec.ip), gen);
    case "cidr":
      return cidrKey(parseCidr(spec.cidr), gen);
    case "port":
      return portKey({
        port: spec.port,
        proto: netNumber(PROTO_BY_NAME, spec.protocol),
        dir: netNumber(DIR_BY_NAME, spec.direction),
      }, gen);
    case "ip_port":
      return ipPortKey(
        { ip: parseIp(spec.ip), port: spec.port, proto: netNumber(PROTO_BY_NAME, spec.protocol) },
        gen,
      );
    case "cg_inode":
      return {
        map: "aegis_cg_deny_inode",
        key: cgInodeKey(BigInt(spec.cgid), spec.dev, BigInt(spec.ino), gen),
      };
    case "cg_ip":
      return {
        map: "aegis_cg_deny_ip",
        key: cgIpKey(BigInt(spec.cgid), parseIp(spec.ip).bytes, gen),
      };
    case "cg_port":
      return {
        map: "aegis_cg_deny_port",
        key: cgPortKey(
          BigInt(spec.cgid),
          spec.port,
          netNumber(PROTO_BY_NAME, spec.protocol),
          netNumber(DIR_BY_NAME, spec.direction),
          gen,
        ),
      };
  }
}

const RULE_TYPE: Record<LiveRuleSpec["kind"], number> = {
  path: AEGIS_RT_INODE,
  cgroup: 0,
  ip: AEGIS_RT_IP,
  cidr: AEGIS_RT_CIDR,
  port: AEGIS_RT_PORT,
  ip_port: AEGIS_RT_IP_PORT,
  cg_inode: AEGIS_RT_CG_INODE,
  cg_ip: AEGIS_RT_CG_IP,
  cg_port: AEGIS_RT_CG_PORT,
};

/** aegis_policy switch a rule needs so its hook looks it up. */
function policyFlagOf(kind: LiveRuleSpec["kind"]): number {
  if (kind === "path") return AEGIS_POL_FILE_RULES;
  if (kind === "cgroup") return 0;
  // as the compiler sets them for cgroup_deny_* (the cgroup tables have no table bit)
  if (kind === "cg_inode") return AEGIS_POL_CGROUP_RULES | AEGIS_POL_FILE_RULES;
  if (kind === "cg_ip" || kind === "cg_port") return AEGIS_POL_CGROUP_RULES | AEGIS_POL_NET_RULES;
  // its table's bit; never AEGIS_POL_NET_TABLES (only a whole apply knows every table)
  return AEGIS_POL_NET_RULES | netTableFlag(RULE_TYPE[kind]);
}

/** flags field of a struct aegis_rule value. */
function flagsOfValue(v: Uint8Array): number {
  return new DataView(v.buffer, v.byteOffset, v.byteLength).getUint16(4, true);
}
function idOfValue(v: Uint8Array): number {
  return new DataView(v.buffer, v.byteOffset, v.byteLength).getUint32(0, true);
}

/** The map value of a live rule; `prevFlags` are the flags of a policy value it shadows. */
function valueOf(rule: LiveRule, prevFlags = 0): Uint8Array<ArrayBuffer> {
  const deny = rule.spec.kind === "cgroup" ? 0 : AEGIS_RULE_DENY;
  return ruleValue(rule.id, deny | prevFlags, RULE_TYPE[rule.spec.kind]);
}

/** How a rule reads in lists and messages. */
export function describeRule(spec: LiveRuleSpec): string {
  switch (spec.kind) {
    case "path":
      return `${spec.path} (inode ${spec.dev}:${spec.ino})`;
    case "cgroup":
      return cgroupText(spec);
    case "ip":
      return `ip ${spec.ip}`;
    case "cidr":
      return `cidr ${spec.cidr}`;
    case "port":
      return `port ${spec.port}:${spec.protocol}:${spec.direction}`;
    case "ip_port":
      return `ip:port ${spec.ip.includes(":") ? `[${spec.ip}]` : spec.ip}:${spec.port}:` +
        spec.protocol;
    case "cg_inode":
      return `cgroup ${cgroupText(spec)} inode ${spec.dev}:${spec.ino}`;
    case "cg_ip":
      return `cgroup ${cgroupText(spec)} ip ${spec.ip}`;
    case "cg_port":
      return `cgroup ${cgroupText(spec)} port ${spec.port}:${spec.protocol}:${spec.direction}`;
  }
}

/** A rule's cgroup as the operator named it, with its id when named by path. */
function cgroupText(spec: { cgroup: string; cgid: string }): string {
  return spec.cgroup.startsWith("cgid:") ? spec.cgroup : `${spec.cgroup} (cgid:${spec.cgid})`;
}

/**
 * The live rules merged into a compiled policy (for `policy apply`): a
 * live rule on a key the policy also writes replaces that entry (the
 * policy's flags kept) and records the policy value as `shadows`.
 */
export function mergeLive(
  compiled: CompiledPolicy,
  rules: readonly LiveRule[],
): { policy: CompiledPolicy; shadows: Map<number, string | null> } {
  const shadows = new Map<number, string | null>();
  if (rules.length === 0) return { policy: compiled, shadows };
  const entries = compiled.entries.slice();
  const touched = new Set(rules.map((r) => r.map));
  const index = new Map<string, number>();
  entries.forEach((e, i) => {
    if (touched.has(e.map)) index.set(`${e.map}/${toHex(e.key(0))}`, i);
  });
  let flags = compiled.flags;
  for (const r of rules) {
    const at = index.get(`${r.map}/${toHex(keyOf(r.spec, 0).key)}`);
    const entry: CompiledEntry = {
      map: r.map,
      key: (gen) => keyOf(r.spec, gen).key,
      value: valueOf(r, at === undefined ? 0 : flagsOfValue(entries[at].value)),
    };
    if (at === undefined) {
      entries.push(entry);
      shadows.set(r.id, null);
    } else {
      shadows.set(r.id, toHex(entries[at].value));
      entries[at] = entry;
    }
    flags |= policyFlagOf(r.spec.kind);
  }
  return { policy: { flags, entries }, shadows };
}

/** One line of `list`: a policy rule (from the live maps) or a live edit. */
export interface ListedRule {
  origin: "policy" | "live";
  id: number;
  map: MapName;
  rule: string;
  /** seconds left, null: no TTL */
  ttl_remaining_s: number | null;
}

export interface LiveRulesDeps {
  /** a map of the live object (daemon: its engine; CLI: the pins) */
  maps: (name: MapName) => BpfMap;
  /** <stateDir>/live_rules.json */
  storePath: string;
  /** unix ms (default Date.now) */
  now?: () => number;
  resolvePath?: (path: string) => ResolvedPath;
  /** cgroup v2 id of a cgroup path, or null */
  resolveCgroup: (path: string) => bigint | null;
  /** who must own the store (default 0, root) */
  ownerUid?: number;
}

/**
 * The live edits over the live generation's maps and the store. Every
 * method reads the store afresh (another process may have changed it) and
 * is synchronous, so inside the daemon they never interleave.
 */
export class LiveRules {
  #d: LiveRulesDeps;
  #now: () => number;

  constructor(deps: LiveRulesDeps) {
    this.#d = deps;
    this.#now = deps.now ?? Date.now;
  }

  #withLock<T>(f: () => T): T {
    const dir = this.#d.storePath.slice(0, this.#d.storePath.lastIndexOf("/")) || "/";
    Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const lock = Deno.openSync(`${this.#d.storePath}.lock`, {
      create: true,
      write: true,
      mode: 0o600,
    });
    try {
      lock.lockSync(true);
      return f();
    } finally {
      lock.close();
    }
  }

  #read(): Store {
    const p = this.#d.storePath;
    let st: Deno.FileInfo;
    try {
      st = Deno.lstatSync(p);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        return { version: 1, next_id: LIVE_RULE_ID_BASE, rules: [] };
      }
      throw e;
    }
    const uid = this.#d.ownerUid ?? 0;
    if (!st.isFile || (st.mode ?? 0) & 0o022 || st.uid !== uid) {
      throw new AegisError(
        "LIVE_STORE_UNSAFE",
        `${p} is not a regular file owned by uid ${uid} and writable only by it; refusing to ` +
          `use it. Check who changed it, then remove it (the live rules it listed stay in the ` +
          `maps until the next "policy apply --reset")`,
      );
    }
    const r = Store.safeParse(JSON.parse(Deno.readTextFileSync(p)));
    if (!r.success) {
      throw new AegisError(
        "LIVE_STORE_INVALID",
        `${p} is damaged (${r.error.issues[0]?.message}); remove it and re-add the live rules`,
      );
    }
    return r.data;
  }

  #write(s: Store): void {
    writeFileAtomic(this.#d.storePath, new TextEncoder().encode(JSON.stringify(s)), 0o600);
  }

  /** Parse, validate and resolve a request; throws UsageError naming what is wrong. */
  resolve(req: LiveRuleRequest): LiveRuleSpec {
    const r = LiveRuleRequest.safeParse(req);
    if (!r.success) {
      const i = r.error.issues[0];
      throw new UsageError(`Invalid rule: ${i?.path.join(".") || "(rule)"}: ${i?.message}`);
    }
    const q = r.data;
    switch (q.kind) {
      case "path": {
        const res = (this.#d.resolvePath ?? resolveRulePath)(q.path);
        if (res.status !== "resolved") {
          throw new UsageError(
            `Cannot block "${q.path}": ${res.reason}. A live rule needs an existing file ` +
              `(put paths that may appear later in a policy file: they are watched)`,
          );
        }
        return { kind: "path", path: q.path, dev: res.dev, ino: String(res.ino) };
      }
      case "cgroup":
        return { kind: "cgroup", ...this.#cgroup(q.cgroup, "allow") };
      case "ip":
        return { kind: "ip", ip: formatIp(parseIp(q.ip).bytes) };
      case "cidr": {
        const c = parseCidr(q.cidr);
        if (c.hostBitsCleared) {
          throw new UsageError(
            `Invalid CIDR "${q.cidr}": host bits are set; write ${formatIp(c.bytes)}/${c.prefix}`,
          );
        }
        return { kind: "cidr", cidr: `${formatIp(c.bytes)}/${c.prefix}` };
      }
      case "port": {
        const p = parsePort(`${q.port}:${q.protocol}:${q.direction}`);
        return {
          kind: "port",
          port: p.port,
          protocol: protoName(p.proto),
          direction: dirName(p.dir),
        };
      }
      case "ip_port": {
        const r = parseIpPort(q.protocol ? `${q.ip_port}:${q.protocol}` : q.ip_port);
        return {
          kind: "ip_port",
          ip: formatIp(r.ip.bytes),
          port: r.port,
          protocol: protoName(r.proto),
        };
      }
      case "cg_inode": {
        const cg = this.#cgroup(q.cgroup, "scope a deny rule to");
        let inode;
        try {
          inode = parseInode(q.inode);
        } catch (e) {
          throw new UsageError(`--inode: ${(e as Error).message}`);
        }
        return { kind: "cg_inode", ...cg, dev: inode.dev, ino: String(inode.ino) };
      }
      case "cg_ip": {
        const cg = this.#cgroup(q.cgroup, "scope a deny rule to");
        if (q.ip.includes("/")) {
          throw new UsageError(
            `Invalid IP address "${q.ip}": a cgroup rule takes an exact address`,
          );
        }
        return { kind: "cg_ip", ...cg, ip: formatIp(parseIp(q.ip).bytes) };
      }
      case "cg_port": {
        const cg = this.#cgroup(q.cgroup, "scope a deny rule to");
        const p = parsePort(`${q.port}:${q.protocol}:${q.direction}`);
        return {
          kind: "cg_port",
          ...cg,
          port: p.port,
          protocol: protoName(p.proto),
          direction: dirName(p.dir),
        };
      }
    }
  }

  /** A cgroup reference (path or cgid:N) resolved to its id; UsageError when it is not one. */
  #cgroup(text: string, verb: string): { cgroup: string; cgid: string } {
    let ref;
    try {
      ref = parseCgroupRef(text);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    if (ref.kind === "cgid") return { cgroup: text, cgid: String(ref.cgid) };
    const id = this.#d.resolveCgroup(ref.path);
    if (id === null) {
      throw new UsageError(`Cannot ${verb} cgroup "${ref.path}": no such cgroup v2 directory`);
    }
    return { cgroup: ref.path, cgid: String(id) };
  }

  /** The live rules in the store (expired ones included until a sweep). */
  rules(): LiveRule[] {
    return this.#read().rules;
  }

  /**
   * Add a rule to the live generation, or renew the same rule. `ttlSeconds`
   * null: until deleted. A renewal replaces the rule's expiry with this
   * call's (the last add says how long the rule stays: no TTL makes a TTL
   * rule permanent, a TTL makes a permanent rule expire), and the result
   * says what the expiry was (`previous_expires`) and how it changed
   * (`expiry`), so the caller can say so: docs/policy.md, "Live rule edits".
   */
  add(
    req: LiveRuleRequest,
    ttlSeconds: number | null = null,
  ): LiveAddResult {
    const spec = this.resolve(req);
    if (
      ttlSeconds !== null && (!Number.isSafeInteger(ttlSeconds) || ttlSeconds < 1 ||
        ttlSeconds > MAX_TTL_SECONDS)
    ) {
      throw new UsageError(`Invalid TTL ${ttlSeconds}: from 1 to ${MAX_TTL_SECONDS} seconds`);
    }
    return this.#withLock(() => {
      const s = this.#recoverLocked();
      const now = this.#now();
      const gen = liveGeneration(this.#d.maps);
      const { map, key } = keyOf(spec, gen);
      const m = this.#d.maps(map);
      const key0 = toHex(keyOf(spec, 0).key);
      const same = s.rules.find((r) => r.map === map && toHex(keyOf(r.spec, 0).key) === key0);
      const expires = ttlSeconds === null ? null : now + ttlSeconds * 1000;
      if (same) {
        const previous = same.expires;
        same.expires = expires;
        this.#write(s);
        return {
          rule: same,
          renewed: true,
          previous_expires: previous,
          expiry: expiryChange(previous, expires),
        };
      }
      const prev = m.lookup(key);
      const shadows = prev && idOfValue(prev) < LIVE_RULE_ID_BASE ? toHex(prev) : null;
      const rule: LiveRule = { id: s.next_id, map, spec, added: now, expires, shadows };
      // 1. the store says what is being added (a kill from here on is finished by recover())
      s.rules.push({ ...rule, state: "adding" });
      s.next_id = s.next_id >= 0xffff_ffff ? LIVE_RULE_ID_BASE : s.next_id + 1;
      this.#write(s);
      // 2. the maps
      try {
        this.#enforce(rule, gen);
      } catch (e) {
        s.rules = s.rules.filter((r) => r.id !== rule.id);
        this.#write(s);
        throw e;
      }
      // 3. done
      s.rules = s.rules.map((r) => r.id === rule.id ? rule : r);
      this.#write(s);
      return { rule, renewed: false, previous_expires: null, expiry: "new" };
    });
  }

  /** Write `rule` into the live generation `gen` (and its hook's policy switch). Idempotent. */
  #enforce(rule: LiveRule, gen: number): void {
    const { map, key } = keyOf(rule.spec, gen);
    const m = this.#d.maps(map);
    const prev = m.lookup(key);
    // the flags of the policy value it replaces (or of its own value on a redo)
    const prevFlags = rule.shadows
      ? flagsOfValue(fromHex(rule.shadows))
      : prev && idOfValue(prev) < LIVE_RULE_ID_BASE
      ? flagsOfValue(prev)
      : 0;
    try {
      m.update(key, valueOf(rule, prevFlags));
    } catch (e) {
      if (e instanceof NativeCallError && (e.errno === 7 || e.errno === 28)) {
        throw new AegisError(
          "MAP_FULL",
          `map full: ${map} holds ${m.maxEntries}; the live rule was not added. Remove rules, ` +
            `or restart the agent without its pins (see docs/policy.md, "Map sizes")`,
          { cause: e },
        );
      }
      throw e;
    }
    const flag = policyFlagOf(rule.spec.kind);
    if (flag) {
      const pol = this.#d.maps("aegis_policy");
      const cur = pol.lookup(u32Key(gen));
      const flags = cur ? Number(new DataView(cur.buffer).getBigUint64(0, true)) : 0;
      if ((flags & flag) !== flag) pol.update(u32Key(gen), policyValue(flags | flag));
    }
  }

  /** Remove stale temp files of the store (we hold the lock: no writer is running). */
  #removeStaleTemps(): void {
    const p = this.#d.storePath;
    const i = p.lastIndexOf("/");
    const dir = i <= 0 ? (i === 0 ? "/" : ".") : p.slice(0, i);
    const prefix = `.${p.slice(i + 1)}.tmp-`;
    try {
      for (const e of Deno.readDirSync(dir)) {
        if (e.isFile && e.name.startsWith(prefix)) {
          try {
            Deno.removeSync(`${dir}/${e.name}`);
          } catch { /* gone */ }
        }
      }
    } catch { /* no dir: nothing to clean */ }
  }

  /**
   * Under the lock: read the store and finish every edit a killed process
   * left in progress (`state`), so the maps and the store agree. Returns
   * the store as it is now.
   */
  #recoverLocked(): Store {
    this.#removeStaleTemps();
    const s = this.#read();
    if (!s.rules.some((r) => r.state !== undefined)) return s;
    const gen = liveGeneration(this.#d.maps);
    const kept: LiveRule[] = [];
    // a map write that fails now (not "map full") leaves its rule marked, to be retried by
    // the next edit or sweep; the other rules are finished and the caller's work goes on
    for (const r of s.rules) {
      if (r.state === "deleting") {
        try {
          this.#unenforce(r, gen);
        } catch {
          kept.push(r);
        }
        continue;
      }
      if (r.state === "adding") {
        const { state: _, ...rule } = r;
        try {
          this.#enforce(rule, gen);
        } catch (e) {
          // cannot be finished (map full): drop it, as a failed add does
          if (!(e instanceof AegisError && e.code === "MAP_FULL")) kept.push(r);
          continue;
        }
        kept.push(rule);
        continue;
      }
      kept.push(r);
    }
    s.rules = kept;
    this.#write(s);
    return s;
  }

  /**
   * Finish the edits a killed process left in progress (see the module
   * doc). Every edit and sweep does this first; call it at start to do it
   * at once. Returns how many rules were finished.
   */
  recover(): number {
    if (!this.rules().some((r) => r.state !== undefined)) return 0;
    return this.#withLock(() => {
      const before = this.#read().rules.filter((r) => r.state !== undefined).length;
      this.#recoverLocked();
      return before;
    });
  }

  /**
   * Where the maps and the store disagree (empty when they agree): a store
   * rule whose entry is missing or holds another id, a live-rule entry of
   * the live generation that the store does not list, an edit in progress.
   * For tests and diagnostics; reads only.
   */
  consistency(): string[] {
    const out: string[] = [];
    const rules = this.rules();
    const gen = liveGeneration(this.#d.maps);
    const byId = new Map(rules.map((r) => [r.id, r]));
    for (const r of rules) {
      if (r.state) out.push(`live rule ${r.id}: ${r.state} not finished`);
      const { map, key } = keyOf(r.spec, gen);
      const v = this.#d.maps(map).lookup(key);
      if (!v) out.push(`live rule ${r.id} (${describeRule(r.spec)}) is not in ${map}`);
      else if (idOfValue(v) !== r.id) {
        out.push(`live rule ${r.id} (${describeRule(r.spec)}): ${map} holds id ${idOfValue(v)}`);
      }
    }
    for (const map of Object.values(GROUP_MAPS).flat()) {
      const { keys, values } = this.#d.maps(map).entries();
      for (let i = 0; i < keys.length; i++) {
        const k = keys[i];
        if (keyGeneration(map, k) !== gen) continue;
        const id = idOfValue(values[i]);
        if (id < LIVE_RULE_ID_BASE) continue;
        const r = byId.get(id);
        if (!r || r.map !== map || toHex(keyOf(r.spec, gen).key) !== toHex(k)) {
          out.push(`${map} holds live rule id ${id}, which the store does not list there`);
        }
      }
    }
    return out;
  }

  /** Remove `rule` from the live generation: restore the policy value it replaced, or delete. */
  #unenforce(rule: LiveRule, gen: number): void {
    const { map, key } = keyOf(rule.spec, gen);
    const m = this.#d.maps(map);
    if (rule.shadows) m.update(key, fromHex(rule.shadows));
    else m.delete(key);
  }

  /** Delete the live rule matching `req`; throws NOT_FOUND when there is none. */
  del(req: LiveRuleRequest): LiveRule {
    const q = LiveRuleRequest.safeParse(req);
    return this.#withLock(() => {
      const s = this.#recoverLocked();
      const byPath = q.success && q.data.kind === "path" ? q.data.path : null;
      let found = byPath === null
        ? undefined
        : s.rules.find((r) => r.spec.kind === "path" && r.spec.path === byPath);
      if (!found) {
        const spec = this.resolve(req);
        const k = keyOf(spec, 0);
        found = s.rules.find((r) =>
          r.map === k.map && toHex(keyOf(r.spec, 0).key) === toHex(k.key)
        );
      }
      if (!found) {
        throw new AegisError(
          "NOT_FOUND",
          `No live rule ${JSON.stringify(req)}; list shows them (policy rules change with ` +
            `"policy apply", not with del)`,
        );
      }
      // 1. the store says what is being deleted (a kill from here on is finished by recover())
      const target = found;
      s.rules = s.rules.map((r) => r === target ? { ...r, state: "deleting" as const } : r);
      this.#write(s);
      // 2. the maps, 3. done
      this.#unenforce(target, liveGeneration(this.#d.maps));
      s.rules = s.rules.filter((r) => r.id !== target.id);
      this.#write(s);
      return target;
    });
  }

  /**
   * Delete every live rule of `group` (maps and store) and return them; the
   * policy's rules stay (they change with `policy apply`). Crash-safe as
   * {@link del}: the store marks them all `deleting` first.
   */
  delGroup(group: RuleGroup): LiveRule[] {
    return this.#withLock(() => {
      const s = this.#recoverLocked();
      const inGroup = (r: LiveRule) => GROUP_KINDS[group].includes(r.spec.kind);
      const gone = s.rules.filter(inGroup);
      if (gone.length === 0) return [];
      s.rules = s.rules.map((r) => inGroup(r) ? { ...r, state: "deleting" as const } : r);
      this.#write(s);
      const gen = liveGeneration(this.#d.maps);
      for (const r of gone) this.#unenforce(r, gen);
      s.rules = s.rules.filter((r) => !inGroup(r));
      this.#write(s);
      return gone;
    });
  }

  /**
   * At start (after a reboot device and inode numbers are new; files may
   * have been replaced while the agent was down): resolve every path and
   * named-cgroup rule again by the path or cgroup the operator gave, and
   * store the identity found now (`changed`). A rule whose file or cgroup no
   * longer exists is dropped from the store (`dropped`): its old identity
   * could name another file on this boot. Store only: the restore then
   * writes the rules into the maps as one generation.
   */
  refreshIdentities(): { changed: LiveRule[]; dropped: LiveRule[] } {
    if (!this.rules().some((r) => r.spec.kind === "path" || "cgid" in r.spec)) {
      return { changed: [], dropped: [] };
    }
    return this.#withLock(() => {
      const s = this.#read();
      const changed: LiveRule[] = [];
      const dropped: LiveRule[] = [];
      const kept: LiveRule[] = [];
      for (const r of s.rules) {
        const now = r.state === undefined ? this.#identityNow(r.spec) : r.spec;
        if (now === null) dropped.push(r);
        else if (now === r.spec) kept.push(r);
        else {
          const nr = { ...r, spec: now };
          changed.push(nr);
          kept.push(nr);
        }
      }
      if (changed.length > 0 || dropped.length > 0) this.#write({ ...s, rules: kept });
      return { changed, dropped };
    });
  }

  /** The spec with the identity its path or cgroup has now; the same object if unchanged; null if gone. */
  #identityNow(spec: LiveRuleSpec): LiveRuleSpec | null {
    if (spec.kind === "path") {
      let res: ResolvedPath;
      try {
        res = (this.#d.resolvePath ?? resolveRulePath)(spec.path);
      } catch {
        return null; // no longer on a file system a rule can hold
      }
      if (res.status !== "resolved") return null;
      if (res.dev === spec.dev && String(res.ino) === spec.ino) return spec;
      return { ...spec, dev: res.dev, ino: String(res.ino) };
    }
    if ("cgid" in spec) {
      let ref;
      try {
        ref = parseCgroupRef(spec.cgroup);
      } catch {
        return spec;
      }
      if (ref.kind === "cgid") return spec; // given by number: nothing to resolve
      const id = this.#d.resolveCgroup(ref.path);
      if (id === null) return null;
      return String(id) === spec.cgid ? spec : { ...spec, cgid: String(id) };
    }
    return spec;
  }

  /** Remove every rule whose TTL has passed (maps and store); returns them. */
  sweep(): LiveRule[] {
    const now = this.#now();
    const due = (r: LiveRule) => r.expires !== null && r.expires <= now;
    if (!this.rules().some((r) => due(r) || r.state !== undefined)) return [];
    return this.#withLock(() => {
      const s = this.#recoverLocked();
      const gen = liveGeneration(this.#d.maps);
      const expired = s.rules.filter(due);
      if (expired.length === 0) return [];
      for (const r of expired) this.#unenforce(r, gen);
      s.rules = s.rules.filter((r) => !expired.includes(r));
      this.#write(s);
      return expired;
    });
  }

  /** Forget every live rule (store only; `policy apply --reset` drops them from the maps). */
  clear(): LiveRule[] {
    return this.#withLock(() => {
      const s = this.#read();
      this.#write({ ...s, rules: [] });
      return s.rules;
    });
  }

  /** After an apply carried the rules: which policy value each one now replaces. */
  setShadows(shadows: Map<number, string | null>): void {
    if (shadows.size === 0) return;
    this.#withLock(() => {
      const s = this.#read();
      for (const r of s.rules) if (shadows.has(r.id)) r.shadows = shadows.get(r.id)!;
      this.#write(s);
    });
  }

  /**
   * A rule id in words, as block events carry it: a live rule's description,
   * a policy rule's line of `policyText` (the applied file), the kernel
   * switches for id 0; null when no such rule exists now.
   */
  ruleName(id: number, policyText: string): string | null {
    if (id === 0) return "a kernel switch (deny_ptrace, deny_module_load or deny_bpf)";
    if (id >= LIVE_RULE_ID_BASE) {
      const r = this.rules().find((x) => x.id === id);
      return r ? `live rule ${describeRule(r.spec)}` : null;
    }
    const text = policyText.split("\n")[id - 1]?.trim();
    return text ? `line ${id}: ${text}` : null;
  }

  /**
   * Policy rules (read from the live generation's maps; `policyText`, the
   * applied file, names them by line) and live rules of a group.
   */
  list(group: RuleGroup, policyText = ""): ListedRule[] {
    const now = this.#now();
    const lines = policyText.split("\n");
    const gen = liveGeneration(this.#d.maps);
    const out: ListedRule[] = [];
    for (const map of GROUP_MAPS[group]) {
      const { keys, values } = this.#d.maps(map).entries();
      for (let i = 0; i < keys.length; i++) {
        const id = idOfValue(values[i]);
        if (id >= LIVE_RULE_ID_BASE || keyGeneration(map, keys[i]) !== gen) continue;
        // the agent's own proof canaries are not the operator's rules (docs/posture.md)
        if (id >= BUILTIN_RULE_IDS[0] && id < BUILTIN_RULE_IDS[1]) continue;
        const text = lines[id - 1]?.trim();
        out.push({
          origin: "policy",
          id,
          map,
          rule: text ? `line ${id}: ${text}` : `rule ${id} in ${map}`,
          ttl_remaining_s: null,
        });
      }
    }
    out.sort((a, b) => a.id - b.id);
    for (const r of this.rules()) {
      if (!GROUP_KINDS[group].includes(r.spec.kind)) continue;
      out.push({
        origin: "live",
        id: r.id,
        map: r.map,
        rule: describeRule(r.spec),
        ttl_remaining_s: r.expires === null
          ? null
          : Math.max(0, Math.ceil((r.expires - now) / 1000)),
      });
    }
    return out;
  }
}
