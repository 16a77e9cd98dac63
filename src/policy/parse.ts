/**
 * Policy file parser and validator (docs/policy.md). Pure: text or bytes in,
 * model + issues out; no file system access.
 *
 *   const { policy, errors, warnings } = parsePolicy(bytes, "/etc/aegisbpf/policy.conf");
 *
 * Every problem is collected (not just the first) with its file and line;
 * `policy` is returned only when there are no errors, so a file with any
 * error is rejected as a whole. Warnings (lint advisories, see lint.ts) do
 * not reject the file.
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import { parseCidr, parseIp, parseIpPort, parsePort } from "../bpf/net_codec.ts";
import type { NetDir, NetProto } from "../bpf/net_codec.ts";
import { commBytes } from "../bpf/exec_codec.ts";
import { checkRulePath } from "../bpf/path_rule.ts";
import {
  type CgroupRef,
  Dir,
  emptyPolicy,
  type FlagField,
  MAX_VERSION,
  MIN_VERSION,
  Policy,
  type PolicyIssue,
  Proto,
  type SectionInfo,
  SECTIONS,
} from "./model.ts";
import { capWarnings, lintWarnings, MAX_WARNINGS } from "./lint.ts";

/** Largest policy file accepted (bytes). */
export const MAX_FILE_BYTES = 16 * 1024 * 1024;
/** Longest line accepted (bytes, without the newline). */
export const MAX_LINE_BYTES = 4096;
/** Most lines accepted (blank and comment lines count). */
export const MAX_LINES = 1_048_576;
/** Errors after this many are summarised in one last error; warnings likewise. */
export const MAX_ERRORS = 1000;
/** Warnings after this many are summarised in one last warning (lint.ts). */
export { MAX_WARNINGS } from "./lint.ts";

export interface ParseResult {
  /** Present only when `errors` is empty. */
  policy?: Policy;
  errors: PolicyIssue[];
  warnings: PolicyIssue[];
}

/** "file:line: message" (line 0 = the whole file: "file: message"). */
export function formatIssue(i: PolicyIssue): string {
  return i.line > 0 ? `${i.file}:${i.line}: ${i.message}` : `${i.file}: ${i.message}`;
}

// Every keyword table is a Map: a lookup never reaches Object.prototype
// (`constructor`, `__proto__`, `toString` are plain unknown words).
const PROTO_NAMES = new Map<NetProto, Proto>([[0, "any"], [6, "tcp"], [17, "udp"]]);
const DIR_NAMES = new Map<NetDir, Dir>([[0, "egress"], [1, "bind"], [2, "both"]]);
const PROTO_WORDS: ReadonlySet<string> = new Set(["any", "tcp", "udp"]);
const DIR_WORDS: ReadonlySet<string> = new Set(["egress", "bind", "both"]);
const SECTION_BY_NAME = new Map(SECTIONS.map((s) => [s.name, s]));
const U64_MAX = (1n << 64n) - 1n;

/** Canonical text of an address (IPv6 per RFC 5952: lower case, longest zero run as ::). */
export function formatIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return Array.from(bytes).join(".");
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push((bytes[i] << 8) | bytes[i + 1]);
  let bestAt = -1, bestLen = 0;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) [bestAt, bestLen] = [i, j - i];
    i = j;
  }
  const hex = (a: number[]) => a.map((x) => x.toString(16)).join(":");
  if (bestAt < 0) return hex(g);
  return `${hex(g.slice(0, bestAt))}::${hex(g.slice(bestAt + bestLen))}`;
}

/** Thrown inside entry parsers; carries the message for the line. */
class EntryError extends Error {}

function usage<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof UsageError) throw new EntryError(e.message);
    throw e;
  }
}

function parseU64(text: string, what: string): bigint {
  if (!/^\d+$/.test(text)) throw new EntryError(`${what} "${text}" is not a decimal number`);
  if (text.length > 20 || BigInt(text) > U64_MAX) {
    throw new EntryError(`${what} ${text.slice(0, 40)} does not fit in 64 bits`);
  }
  const n = BigInt(text);
  return n;
}

/** `dev:ino` (dev in the kernel encoding) or `major:minor:ino`. */
export function parseInode(text: string): { dev: number; ino: bigint } {
  const p = text.split(":");
  const syntax = `expected dev:ino or major:minor:ino (decimal), got "${text}"`;
  if (p.length < 2 || p.length > 3 || p.some((x) => !/^\d+$/.test(x))) {
    throw new EntryError(`Invalid inode: ${syntax}`);
  }
  let dev: number;
  if (p.length === 2) {
    const d = parseU64(p[0], "dev");
    if (d > 0xffffffffn) {
      throw new EntryError(
        `Invalid inode "${text}": dev ${p[0]} is above 4294967295 (the kernel encoding ` +
          "(major << 20) | minor is 32 bits; or write major:minor:ino)",
      );
    }
    dev = Number(d);
  } else {
    const major = parseU64(p[0], "major"), minor = parseU64(p[1], "minor");
    if (major > 4095n) {
      throw new EntryError(`Invalid inode "${text}": major ${major} is above 4095`);
    }
    if (minor > 0xfffffn) {
      throw new EntryError(`Invalid inode "${text}": minor ${minor} is above 1048575`);
    }
    dev = ((Number(major) << 20) | Number(minor)) >>> 0;
  }
  const ino = parseU64(p[p.length - 1], "inode number");
  if (ino === 0n) throw new EntryError(`Invalid inode "${text}": inode number 0 names no file`);
  return { dev, ino };
}

/**
 * `sha256:<64 hex>` → the 64 hex digits in lower case. The C++ parser's
 * rules: the prefix exactly "sha256:" (lower case), then exactly 64 hex
 * digits of either case.
 */
export function parseSha256(text: string): string {
  if (!text.startsWith("sha256:")) {
    throw new EntryError(`Invalid hash "${text}": an entry is sha256:<64 hex digits>`);
  }
  const hex = text.slice(7);
  if (hex.length !== 64) {
    throw new EntryError(
      `Invalid hash "${text}": sha256 needs 64 hex digits, this one has ${hex.length} characters`,
    );
  }
  if (!/^[0-9A-Fa-f]{64}$/.test(hex)) {
    throw new EntryError(`Invalid hash "${text}": sha256 has a character that is not a hex digit`);
  }
  return hex.toLowerCase();
}

/** An absolute cgroup v2 path or `cgid:N`. */
export function parseCgroupRef(text: string): CgroupRef {
  if (text.startsWith("cgid:")) {
    const id = parseU64(text.slice(5), "cgroup id");
    if (id === 0n) throw new EntryError(`Invalid cgroup "${text}": cgroup id 0 does not exist`);
    return { kind: "cgid", cgid: id };
  }
  if (!text.startsWith("/")) {
    throw new EntryError(
      `Invalid cgroup "${text}": give an absolute cgroup v2 path (e.g. /system.slice/x.service) ` +
        "or cgid:N",
    );
  }
  usage(() => checkRulePath(text));
  return { kind: "path", path: text };
}

function splitCgroupRule(text: string): [CgroupRef, string] {
  const m = /^(\S+)\s+(\S.*)$/.exec(text);
  if (!m) throw new EntryError(`expected "<cgroup path or cgid:N> <rule>", got "${text}"`);
  return [parseCgroupRef(m[1]), m[2]];
}

function ipEntry(text: string): { ip: string; family: 4 | 6 } {
  const ip = usage(() => parseIp(text));
  return { ip: formatIp(ip.bytes), family: ip.family };
}

/** The protocol / direction words of a rule, checked here (own tables) before the codec sees them. */
function checkWords(kind: string, text: string, proto: string | undefined, dir?: string): void {
  if (proto !== undefined && !PROTO_WORDS.has(proto.toLowerCase())) {
    throw new EntryError(`Invalid ${kind} "${text}": protocol "${proto}" is not tcp, udp or any`);
  }
  if (dir !== undefined && !DIR_WORDS.has(dir.toLowerCase())) {
    throw new EntryError(
      `Invalid ${kind} "${text}": direction "${dir}" is not egress, bind or both`,
    );
  }
}

function protoName(kind: string, text: string, p: NetProto): Proto {
  const v = PROTO_NAMES.get(p);
  if (v === undefined) throw new EntryError(`Invalid ${kind} "${text}": bad protocol`);
  return v;
}

function portEntry(text: string): { port: number; proto: Proto; dir: Dir } {
  const parts = text.trim().split(":");
  if (parts.length <= 3) checkWords("port", text, parts[1], parts[2]);
  const r = usage(() => parsePort(text));
  const dir = DIR_NAMES.get(r.dir);
  if (dir === undefined) throw new EntryError(`Invalid port "${text}": bad direction`);
  return { port: r.port, proto: protoName("port", text, r.proto), dir };
}

/** The protocol word of an `ip:port[:proto]` rule, if any. */
function ipPortProto(text: string): string | undefined {
  const t = text.trim();
  if (t.startsWith("[")) {
    const close = t.indexOf("]");
    if (close < 0 || t[close + 1] !== ":") return undefined;
    const rest = t.slice(close + 2).split(":");
    return rest.length === 2 ? rest[1] : undefined;
  }
  const parts = t.split(":");
  return parts.length === 3 ? parts[2] : undefined;
}

const FLAG_VALUES = new Map<string, boolean>([
  ["true", true],
  ["1", true],
  ["on", true],
  ["yes", true],
  ["false", false],
  ["0", false],
  ["off", false],
  ["no", false],
]);

interface Current {
  info: SectionInfo;
  /** Entries are checked but not kept (unknown/unsupported section). */
  skip: boolean;
  /** For flag sections: the line of a value already seen. */
  flagValueLine?: number;
  /**
   * A section of entries above the file's version: its first entry is an
   * error (an empty one is accepted; docs/policy.md, "Version rules").
   */
  tooNew?: boolean;
}

/**
 * Split input into lines, enforcing size, UTF-8 and per-line limits. Each
 * yielded line is either text or an error message for that line.
 */
function* lines(
  input: string | Uint8Array,
  fileError: (m: string) => void,
): Generator<{ n: number; text?: string; error?: string }> {
  const tooBig = (n: number, exact: boolean) =>
    fileError(
      `file is ${
        exact ? "" : "at least "
      }${n} bytes; the limit is ${MAX_FILE_BYTES} bytes (16 MiB)`,
    );
  const lineTooLong = (n: number) =>
    `line is ${n} bytes; the limit is ${MAX_LINE_BYTES} bytes per line`;
  if (typeof input === "string") {
    // UTF-8 needs at least one byte per UTF-16 code unit.
    if (input.length > MAX_FILE_BYTES) return tooBig(input.length, false);
    if (input.length * 3 > MAX_FILE_BYTES) {
      const n = new TextEncoder().encode(input).length;
      if (n > MAX_FILE_BYTES) return tooBig(n, true);
    }
    const parts = input.split("\n");
    if (parts.length > 1 && parts[parts.length - 1] === "") parts.pop();
    for (let i = 0; i < parts.length; i++) {
      const t = parts[i];
      if (t.length * 3 > MAX_LINE_BYTES) {
        const n = new TextEncoder().encode(t).length;
        if (n > MAX_LINE_BYTES) {
          yield { n: i + 1, error: lineTooLong(n) };
          continue;
        }
      }
      if (!t.isWellFormed()) {
        yield { n: i + 1, error: "invalid text: unpaired UTF-16 surrogate (not valid UTF-8)" };
        continue;
      }
      yield { n: i + 1, text: t };
    }
    return;
  }
  if (input.length > MAX_FILE_BYTES) return tooBig(input.length, true);
  // Fast path: the whole file is valid UTF-8, decoded once. Each line is
  // then what the line-by-line decode below gives (a BOM at the start of a
  // line dropped, as a fresh decode drops it), with its byte length
  // computed only when it could exceed the limit.
  let whole: string | undefined;
  try {
    whole = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(input);
  } catch { /* invalid somewhere: each line is decoded and reported below */ }
  if (whole !== undefined) {
    const ascii = whole.length === input.length;
    const parts = whole.split("\n");
    if (parts[parts.length - 1] === "") parts.pop();
    for (let i = 0; i < parts.length; i++) {
      let t = parts[i];
      if (!ascii && t.length * 3 > MAX_LINE_BYTES) {
        const len = new TextEncoder().encode(t).length;
        if (len > MAX_LINE_BYTES) {
          yield { n: i + 1, error: lineTooLong(len) };
          continue;
        }
      } else if (ascii && t.length > MAX_LINE_BYTES) {
        yield { n: i + 1, error: lineTooLong(t.length) };
        continue;
      }
      if (!ascii && t.charCodeAt(0) === 0xfeff) t = t.slice(1);
      yield { n: i + 1, text: t };
    }
    return;
  }
  const dec = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });
  let start = 0;
  for (let n = 1; start < input.length; n++) {
    let end = input.indexOf(0x0a, start);
    if (end < 0) end = input.length;
    const len = end - start;
    if (len > MAX_LINE_BYTES) {
      yield { n, error: lineTooLong(len) };
    } else {
      let text: string | undefined;
      try {
        text = dec.decode(input.subarray(start, end));
      } catch {
        yield { n, error: "invalid UTF-8 (policy files must be UTF-8 text)" };
      }
      if (text !== undefined) yield { n, text };
    }
    start = end + 1;
  }
}

/**
 * The error for a parsed policy that fails the model check (a parser bug):
 * the entry's line and section, no validator dump. Exported for tests.
 */
export function modelError(
  policy: Policy,
  file: string,
  path: readonly PropertyKey[],
): PolicyIssue {
  const field = typeof path[0] === "string" ? path[0] : "";
  const info = SECTIONS.find((s) => s.field === field);
  let line = 0;
  const v: unknown = Object.hasOwn(policy, field)
    ? (policy as unknown as Record<string, unknown>)[field]
    : undefined;
  if (Array.isArray(v) && typeof path[1] === "number") {
    const e: unknown = v[path[1]];
    if (e && typeof e === "object" && "line" in e && typeof e.line === "number") line = e.line;
  } else if (v && typeof v === "object" && "line" in v && typeof v.line === "number") {
    line = v.line;
  }
  const where = info ? `[${info.name}] ` : "";
  const what = path.slice(2).map(String).join(".");
  return {
    file,
    line,
    message: `${where}internal error: this entry${
      what ? ` (${what})` : ""
    } did not pass the policy model check; the file is rejected`,
  };
}

/** "section [x] needs version=N or later[ to hold entries]; this file says version=V". */
function tooNewMessage(info: SectionInfo, version: number | undefined): string {
  const what = info.kind === "flag" ? "" : " to hold entries";
  return `section [${info.name}] needs version=${info.minVersion} or later${what}; ` +
    `this file says version=${version}`;
}

/** Parse and validate a policy file. See the module doc. */
export function parsePolicy(input: string | Uint8Array, file: string): ParseResult {
  const errors: PolicyIssue[] = [];
  const warnings: PolicyIssue[] = [];
  let truncated = false;
  const err = (line: number, message: string) => {
    if (errors.length < MAX_ERRORS) errors.push({ file, line, message });
    else truncated = true;
  };
  let warningsDropped = 0;
  const warn = (line: number, message: string) => {
    if (warnings.length < MAX_WARNINGS) warnings.push({ file, line, message });
    else warningsDropped++;
  };

  const policy = emptyPolicy(MIN_VERSION);
  let version: number | undefined;
  let versionLine = 0;
  let versionBad = false;
  let cur: Current | null = null;
  let sawSection = false;
  let missingVersionReported = false;
  const seenSections = new Map<string, number>();

  for (const l of lines(input, (m) => err(0, m))) {
    if (l.n > MAX_LINES) {
      err(0, `file has more than ${MAX_LINES} lines; the limit is ${MAX_LINES} lines`);
      break;
    }
    if (l.error !== undefined) {
      err(l.n, l.error);
      continue;
    }
    let raw = l.text!;
    if (l.n === 1 && raw.startsWith("\uFEFF")) raw = raw.slice(1);
    if (raw.includes("\0")) {
      err(l.n, "contains a NUL byte (policy files are text)");
      continue;
    }
    const text = raw.trim();
    if (text === "" || text.startsWith("#")) continue;

    const sec = /^\[\s*([A-Za-z0-9_-]+)\s*\]$/.exec(text);
    if (sec) {
      const name = sec[1].trim();
      sawSection = true;
      if (version === undefined && !versionBad && !missingVersionReported) {
        err(
          l.n,
          `missing "version=N" header (N from ${MIN_VERSION} to ${MAX_VERSION}) before the first section`,
        );
        missingVersionReported = true;
      }
      const info = SECTION_BY_NAME.get(name);
      if (!info) {
        err(
          l.n,
          `unknown section [${name}]; known sections: ${SECTIONS.map((s) => s.name).join(", ")}`,
        );
        cur = { info: { name, minVersion: 1, field: null, kind: null }, skip: true };
        continue;
      }
      // The version rules (docs/policy.md, "Version rules"): a flag section
      // needs its version by being present, a section of entries once it
      // holds an entry (reported at that entry's line, below).
      const tooNew = version !== undefined && info.minVersion > version;
      if (tooNew && info.kind === "flag") err(l.n, tooNewMessage(info, version));
      const prev = seenSections.get(name);
      if (prev !== undefined) {
        warn(
          l.n,
          `section [${name}] appears again (first at line ${prev}); its entries are merged`,
        );
      } else seenSections.set(name, l.n);
      cur = { info, skip: false, tooNew: tooNew && info.kind !== "flag" };
      if (info.kind === "flag") {
        const f = info.field as FlagField;
        if (policy[f] === null) policy[f] = { enabled: true, line: l.n };
      }
      continue;
    }
    if (text.startsWith("[") && (text.endsWith("]") || cur?.info.kind !== "ip_port")) {
      err(l.n, `malformed section header "${text}"; expected [name]`);
      sawSection = true;
      cur = { info: { name: "", minVersion: 1, field: null, kind: null }, skip: true };
      continue;
    }

    if (!sawSection) {
      const kv = /^([A-Za-z0-9_.-]+)\s*=\s*(.*)$/.exec(text);
      if (!kv) {
        err(l.n, `expected a "key=value" header line (version=N) or a [section], got "${text}"`);
        continue;
      }
      const [, key, value] = kv;
      if (key !== "version") {
        err(l.n, `unknown header key "${key}"; the only header key is "version"`);
        continue;
      }
      if (version !== undefined || versionBad) {
        err(l.n, `"version" is given again (first at line ${versionLine})`);
        continue;
      }
      versionLine = l.n;
      const v = /^\d{1,3}$/.test(value) ? Number(value) : NaN;
      if (!(v >= MIN_VERSION && v <= MAX_VERSION)) {
        err(
          l.n,
          `unsupported version "${value}"; this aegisbpf reads policy versions ${MIN_VERSION} to ${MAX_VERSION}`,
        );
        versionBad = true;
        continue;
      }
      version = v;
      policy.version = v;
      continue;
    }

    if (cur === null) continue; // unreachable: sawSection implies cur
    if (cur.skip) continue;
    if (cur.tooNew) {
      err(l.n, tooNewMessage(cur.info, version));
      cur.tooNew = false;
    }
    try {
      entry(cur, text, l.n);
    } catch (e) {
      if (e instanceof EntryError) err(l.n, `[${cur.info.name}] ${e.message}`);
      else throw e;
    }
  }

  // a content both allowed and denied: the operator must say which
  alsoDenied(policy, policy.allowBinaryHash, (e, d) =>
    err(
      e.line,
      `[allow_binary_hash] sha256:${e.sha256} is also in [deny_binary_hash] at line ${d}; ` +
        "a content is either allowed or denied: remove one of the two lines",
    ));
  crossSectionRules(policy, err, warn);
  if (
    version === undefined && !versionBad && !missingVersionReported &&
    errors.every((e) => e.line !== 0)
  ) {
    err(1, `missing "version=N" header (N from ${MIN_VERSION} to ${MAX_VERSION})`);
  }
  if (truncated) {
    errors.push({
      file,
      line: 0,
      message: `too many errors; only the first ${MAX_ERRORS} are shown`,
    });
  }
  if (errors.length > 0) {
    return { errors, warnings: capWarnings(file, warnings, [], warningsDropped) };
  }

  const checked = Policy.safeParse(policy);
  if (!checked.success) {
    // A parser bug, not bad input (every entry parser above only stores
    // values of the model's types); still reject the file rather than
    // apply it, and name the entry, not the validator's dump.
    return {
      errors: [modelError(policy, file, checked.error.issues[0]?.path ?? [])],
      warnings: capWarnings(file, warnings, [], warningsDropped),
    };
  }
  const lint = lintWarnings(policy, file);
  return {
    policy,
    errors,
    warnings: capWarnings(file, warnings, lint.warnings, warningsDropped + lint.dropped),
  };

  function entry(c: Current, text: string, line: number): void {
    switch (c.info.kind) {
      case "path":
        usage(() => checkRulePath(text));
        policy[c.info.field as "denyPath" | "protectPath" | "scanPaths"].push({ path: text, line });
        return;
      case "inode":
        policy.denyInode.push({ ...parseInode(text), line });
        return;
      case "cgroup":
        policy.allowCgroup.push({ cgroup: parseCgroupRef(text), line });
        return;
      case "ip":
        policy.denyIp.push({ ...ipEntry(text), line });
        return;
      case "cidr": {
        const cidr = usage(() => parseCidr(text));
        const canon = `${formatIp(cidr.bytes)}/${cidr.prefix}`;
        if (cidr.hostBitsCleared) {
          warn(line, `[deny_cidr] "${text}" has host bits set; it means ${canon}`);
        }
        policy.denyCidr.push({ cidr: canon, family: cidr.family, line });
        return;
      }
      case "port":
        policy.denyPort.push({ ...portEntry(text), line });
        return;
      case "ip_port": {
        checkWords("ip:port", text, ipPortProto(text));
        const r = usage(() => parseIpPort(text));
        policy.denyIpPort.push({
          ip: formatIp(r.ip.bytes),
          family: r.ip.family,
          port: r.port,
          proto: protoName("ip:port", text, r.proto),
          line,
        });
        return;
      }
      case "comm":
        usage(() => commBytes(text));
        policy.denyComm.push({ comm: text, line });
        return;
      case "hash":
        policy[c.info.field as "denyBinaryHash" | "allowBinaryHash" | "trustedExecHash"].push({
          sha256: parseSha256(text),
          line,
        });
        return;
      case "flag": {
        const f = c.info.field as FlagField;
        const v = FLAG_VALUES.get(text.toLowerCase());
        if (v === undefined) {
          throw new EntryError(
            `"${text}" is not a flag value; a flag section is on by being present, ` +
              "or holds one line: true|false|1|0|on|off|yes|no",
          );
        }
        if (c.flagValueLine !== undefined) {
          throw new EntryError(
            `a flag section holds at most one value (already given at line ${c.flagValueLine})`,
          );
        }
        c.flagValueLine = line;
        policy[f] = { enabled: v, line: policy[f]?.line ?? line };
        return;
      }
      case "cg_inode": {
        const [cgroup, rule] = splitCgroupRule(text);
        policy.cgroupDenyInode.push({ cgroup, ...parseInode(rule), line });
        return;
      }
      case "cg_ip": {
        const [cgroup, rule] = splitCgroupRule(text);
        if (rule.includes("/")) {
          throw new EntryError(`"${rule}": cgroup_deny_ip takes exact addresses, not CIDRs`);
        }
        policy.cgroupDenyIp.push({ cgroup, ...ipEntry(rule), line });
        return;
      }
      case "cg_port": {
        const [cgroup, rule] = splitCgroupRule(text);
        policy.cgroupDenyPort.push({ cgroup, ...portEntry(rule), line });
        return;
      }
      default:
        return;
    }
  }
}

/**
 * The rules between the exec identity sections (docs/policy.md, "Trusted
 * exec identity"), the C++ agent's: [ima_fail_closed] needs a non-empty
 * [trusted_exec_hash]; [protect_runtime_deps] needs [protect_path] or
 * [protect_connect]. Warnings: [protect_runtime_deps] with no list that
 * applies to mappings, and a trusted content that is also denied.
 */
function crossSectionRules(
  policy: Policy,
  err: (line: number, message: string) => void,
  warn: (line: number, message: string) => void,
): void {
  const fc = policy.imaFailClosed;
  if (fc?.enabled && policy.trustedExecHash.length === 0) {
    err(
      fc.line,
      "[ima_fail_closed] requires a non-empty [trusted_exec_hash] allowlist (version=5): " +
        "it denies the files whose content the kernel cannot name, and only a trusted list " +
        "decides by content; add [trusted_exec_hash] entries or remove [ima_fail_closed]",
    );
  }
  const rd = policy.protectRuntimeDeps;
  if (rd?.enabled) {
    if (policy.protectPath.length === 0 && !policy.protectConnect?.enabled) {
      err(
        rd.line,
        "[protect_runtime_deps] requires [protect_connect] or [protect_path] (a non-empty one); " +
          "add the protected resource or remove [protect_runtime_deps]",
      );
    } else if (policy.allowBinaryHash.length === 0 && policy.trustedExecHash.length === 0) {
      warn(
        rd.line,
        "[protect_runtime_deps] has no effect on executable mappings without a non-empty " +
          "[allow_binary_hash] or [trusted_exec_hash]: only [deny_binary_hash] is checked there",
      );
    }
  }
  alsoDenied(policy, policy.trustedExecHash, (e, d) =>
    warn(
      e.line,
      `[trusted_exec_hash] sha256:${e.sha256} is also in [deny_binary_hash] at line ${d}; ` +
        "the deny wins (it cannot run)",
    ));
}

/** Calls `found` for each entry of `list` whose digest is also denied, with the deny's first line. */
function alsoDenied(
  policy: Policy,
  list: Policy["denyBinaryHash"],
  found: (e: Policy["denyBinaryHash"][number], denyLine: number) => void,
): void {
  if (list.length === 0 || policy.denyBinaryHash.length === 0) return;
  const denied = new Map<string, number>();
  for (const e of policy.denyBinaryHash) if (!denied.has(e.sha256)) denied.set(e.sha256, e.line);
  for (const e of list) {
    const d = denied.get(e.sha256);
    if (d !== undefined) found(e, d);
  }
}
