/**
 * Lint advisories for a parsed policy, and the canonical writer used by
 * `policy lint --fix`.
 *
 * Warnings never reject a policy; they point at rules that do nothing
 * (duplicates, an IP already covered by a CIDR) or that contradict each
 * other (the same path denied and protected).
 *
 * @module
 */
import { parseCidr, parseIp } from "../bpf/net_codec.ts";
import type { CgroupRef, Flag, FlagField, Policy, PolicyIssue } from "./model.ts";
import { SECTIONS } from "./model.ts";

function cgText(c: CgroupRef): string {
  return c.kind === "path" ? c.path : `cgid:${c.cgid}`;
}

type ListField = Exclude<keyof Policy, "version" | FlagField>;

/** One entry's text, as formatPolicy writes it (also the duplicate key). */
// deno-lint-ignore no-explicit-any
function entryText(field: ListField, e: any): string {
  switch (field) {
    case "denyPath":
    case "protectPath":
    case "scanPaths":
      return e.path;
    case "denyInode":
      return `${e.dev}:${e.ino}`;
    case "allowCgroup":
      return cgText(e.cgroup);
    case "denyIp":
      return e.ip;
    case "denyCidr":
      return e.cidr;
    case "denyPort":
      return `${e.port}:${e.proto}:${e.dir}`;
    case "denyIpPort":
      return `${e.family === 6 ? `[${e.ip}]` : e.ip}:${e.port}:${e.proto}`;
    case "denyComm":
      return e.comm;
    case "denyBinaryHash":
    case "allowBinaryHash":
    case "trustedExecHash":
      return `sha256:${e.sha256}`;
    case "cgroupDenyInode":
      return `${cgText(e.cgroup)} ${e.dev}:${e.ino}`;
    case "cgroupDenyIp":
      return `${cgText(e.cgroup)} ${e.ip}`;
    case "cgroupDenyPort":
      return `${cgText(e.cgroup)} ${e.port}:${e.proto}:${e.dir}`;
  }
}

const NAME_OF = new Map(SECTIONS.map((s) => [s.field, s.name]));

/** key -> line of its first occurrence. */
function firstLines(pairs: [string, number][]): Map<string, number> {
  const m = new Map<string, number>();
  for (const [k, l] of pairs) if (!m.has(k)) m.set(k, l);
  return m;
}

/** Warnings listed at most; the rest are counted in one last warning (as errors are). */
export const MAX_WARNINGS = 1000;

/**
 * `warnings` and `more` merged by line, at most MAX_WARNINGS of them, plus
 * one last "N more warnings not shown" (line 0) when any were dropped
 * (`alreadyDropped` counts those dropped before they were collected).
 */
export function capWarnings(
  file: string,
  warnings: readonly PolicyIssue[],
  more: readonly PolicyIssue[],
  alreadyDropped = 0,
): PolicyIssue[] {
  const all = warnings.concat(more).sort((a, b) => a.line - b.line);
  const dropped = alreadyDropped + Math.max(0, all.length - MAX_WARNINGS);
  if (dropped === 0) return all;
  all.length = Math.min(all.length, MAX_WARNINGS);
  all.push({
    file,
    line: 0,
    message: `${dropped} more warning${dropped === 1 ? "" : "s"} not shown ` +
      `(only the first ${MAX_WARNINGS} are listed)`,
  });
  return all;
}

/** Advisories for `policy`, capped: at most MAX_WARNINGS and a trailing "N more warnings not shown". */
export function lintPolicy(policy: Policy, file: string): PolicyIssue[] {
  const r = lintWarnings(policy, file);
  return capWarnings(file, r.warnings, [], r.dropped);
}

/**
 * Advisories for `policy` (line numbers from the model): the first
 * MAX_WARNINGS found, sorted by line, and how many more were found (not
 * kept, so a policy of a million duplicates costs no memory for them).
 */
export function lintWarnings(
  policy: Policy,
  file: string,
): { warnings: PolicyIssue[]; dropped: number } {
  const out: PolicyIssue[] = [];
  let dropped = 0;
  const warn = (line: number, message: string) => {
    if (out.length < MAX_WARNINGS) out.push({ file, line, message });
    else dropped++;
  };

  // Duplicates inside one section.
  for (const s of SECTIONS) {
    if (s.field === null || s.kind === "flag") continue;
    const field = s.field as ListField;
    const seen = new Map<string, number>();
    for (const e of policy[field] as { line: number }[]) {
      const key = entryText(field, e);
      const first = seen.get(key);
      if (first !== undefined) {
        warn(e.line, `[${s.name}] duplicate entry "${key}" (first at line ${first})`);
      } else seen.set(key, e.line);
    }
  }

  // The same path denied and protected.
  const denied = policy.protectPath.length === 0
    ? new Map<string, number>()
    : firstLines(policy.denyPath.map((e) => [e.path, e.line]));
  for (const e of policy.protectPath) {
    const d = denied.get(e.path);
    if (d !== undefined) {
      warn(
        e.line,
        `path "${e.path}" is in both [deny_path] (line ${d}) and [protect_path]; ` +
          "deny_path already blocks every access, so protect_path adds nothing",
      );
    }
  }

  // Addresses and networks already covered by a (broader) CIDR: networks
  // indexed by family, prefix length and masked address, so each check is
  // one lookup per shorter prefix length (not a scan of every network).
  const nets = policy.denyCidr.map((c) => ({ ...parseCidr(c.cidr), text: c.cidr, line: c.line }));
  const byPrefix = new Map<string, { text: string; line: number }>();
  const netKey = (family: number, p: number, bytes: Uint8Array) => {
    let k = `${family}/${p}/`;
    for (let i = 0; i < bytes.length; i++) {
      const keep = Math.max(0, Math.min(8, p - 8 * i));
      k += `${i > 0 ? "." : ""}${bytes[i] & ((0xff << (8 - keep)) & 0xff)}`;
    }
    return k;
  };
  // prefix lengths in use per family, ascending (the shortest cover is found first)
  const prefixes = new Map<number, number[]>();
  for (const n of nets) {
    const k = `${n.family}/${n.prefix}/${n.bytes.join(".")}`;
    if (!byPrefix.has(k)) byPrefix.set(k, n);
    const l = prefixes.get(n.family);
    if (!l) prefixes.set(n.family, [n.prefix]);
    else if (!l.includes(n.prefix)) l.push(n.prefix);
  }
  for (const l of prefixes.values()) l.sort((a, b) => a - b);
  const coveredBy = (bytes: Uint8Array, family: number, below: number) => {
    for (const p of prefixes.get(family) ?? []) {
      if (p >= below) break;
      const n = byPrefix.get(netKey(family, p, bytes));
      if (n) return n;
    }
    return undefined;
  };
  for (const e of policy.denyIp) {
    const ip = parseIp(e.ip);
    const n = coveredBy(ip.bytes, ip.family, ip.family === 4 ? 33 : 129);
    if (n) {
      warn(
        e.line,
        `[deny_ip] ${e.ip} is already covered by [deny_cidr] ${n.text} (line ${n.line})`,
      );
    }
  }
  for (const c of nets) {
    const n = coveredBy(c.bytes, c.family, c.prefix);
    if (n) warn(c.line, `[deny_cidr] ${c.text} is already covered by ${n.text} (line ${n.line})`);
  }
  // scan_paths feeds only the deny list, and only where the kernel hashes nothing
  if (policy.scanPaths.length > 0 && policy.denyBinaryHash.length === 0) {
    warn(
      policy.scanPaths[0].line,
      "[scan_paths] has no effect without [deny_binary_hash]: its directories are hashed " +
        "only to find files with a denied content (docs/policy.md)",
    );
  }
  // An ip:port rule whose address is denied on every port anyway.
  const ips = policy.denyIpPort.length === 0
    ? new Map<string, number>()
    : firstLines(policy.denyIp.map((e) => [e.ip, e.line]));
  for (const e of policy.denyIpPort) {
    const d = ips.get(e.ip);
    if (d !== undefined) {
      warn(e.line, `[deny_ip_port] ${e.ip} is denied on every port by [deny_ip] (line ${d})`);
    }
  }
  return { warnings: out.sort((a, b) => a.line - b.line), dropped };
}

/** A copy of `policy` without duplicate entries (the first of each is kept). */
export function dedupePolicy(policy: Policy): Policy {
  const out = structuredClone(policy);
  for (const s of SECTIONS) {
    if (s.field === null || s.kind === "flag") continue;
    const field = s.field as ListField;
    const seen = new Set<string>();
    // deno-lint-ignore no-explicit-any
    (out as any)[field] = (out[field] as { line: number }[]).filter((e) => {
      const k = entryText(field, e);
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    });
  }
  return out;
}

/**
 * The canonical text of `policy`: `version=N`, then each non-empty section
 * in SECTIONS order, one canonical entry per line. Parsing the output gives
 * back the same policy (line numbers aside). Entries keep their order;
 * `policy lint --fix` should pass the policy through dedupePolicy first.
 */
export function formatPolicy(policy: Policy): string {
  const parts = [`version=${policy.version}\n`];
  for (const s of SECTIONS) {
    if (s.field === null) continue;
    if (s.kind === "flag") {
      const f = policy[s.field] as Flag;
      if (f === null) continue;
      parts.push(`\n[${s.name}]\n${f.enabled ? "" : "false\n"}`);
      continue;
    }
    const field = s.field as ListField;
    const list = policy[field] as unknown[];
    if (list.length === 0) continue;
    parts.push(`\n[${NAME_OF.get(field)}]\n`);
    for (const e of list) parts.push(entryText(field, e) + "\n");
  }
  return parts.join("");
}
