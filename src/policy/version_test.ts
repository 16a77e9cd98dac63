/**
 * Which section each `version=` accepts (docs/policy.md, "Version rules"):
 * every section under every version 1..6, from policy files written here.
 *
 * The expected rules are written out below on their own, not read from
 * SECTIONS, so a change to the parser's table has to agree with them. They
 * are the C++ agent's (its src/policy_parse.cpp, the checks after its read
 * loop): a section it does not number is accepted in any version; a flag
 * section needs its version by being present, a section of entries only
 * once it holds one.
 */
import assert from "node:assert/strict";
import { formatIssue, parsePolicy } from "./parse.ts";
import { dedupePolicy, formatPolicy } from "./lint.ts";
import { MAX_VERSION, MIN_VERSION, type Policy, SECTIONS } from "./model.ts";

const F = "/etc/aegisbpf/policy.conf";
const HASH = "sha256:" + "ab".repeat(32);
const VERSIONS = Array.from({ length: MAX_VERSION - MIN_VERSION + 1 }, (_, i) => MIN_VERSION + i);

interface Row {
  section: string;
  /** Lowest version that accepts it (1: any). */
  min: number;
  /** One valid entry; null: a flag section (on by being present). */
  entry: string | null;
  /** false: this agent does not implement it ("not supported" in every version). */
  supported: boolean;
  /** it needs another section (a parse error without it): tested on its own below */
  needs?: "protect" | "trusted";
}

const ROWS: Row[] = [
  { section: "deny_path", min: 1, entry: "/usr/bin/nc", supported: true },
  { section: "deny_inode", min: 1, entry: "2049:1234", supported: true },
  { section: "allow_cgroup", min: 1, entry: "cgid:4242", supported: true },
  { section: "deny_ip", min: 1, entry: "192.0.2.1", supported: true },
  { section: "deny_cidr", min: 1, entry: "10.0.0.0/8", supported: true },
  { section: "deny_port", min: 1, entry: "4444:tcp", supported: true },
  { section: "deny_ip_port", min: 1, entry: "203.0.113.5:443:tcp", supported: true },
  { section: "deny_comm", min: 1, entry: "xmrig", supported: true },
  { section: "deny_ptrace", min: 1, entry: null, supported: true },
  { section: "deny_module_load", min: 1, entry: null, supported: true },
  { section: "deny_bpf", min: 1, entry: null, supported: true },
  { section: "protect_path", min: 4, entry: "/etc/shadow", supported: true },
  { section: "protect_connect", min: 4, entry: null, supported: true },
  { section: "cgroup_deny_inode", min: 6, entry: "cgid:99 2049:777", supported: true },
  { section: "cgroup_deny_ip", min: 6, entry: "cgid:99 10.9.9.9", supported: true },
  { section: "cgroup_deny_port", min: 6, entry: "cgid:99 6379:tcp", supported: true },
  { section: "deny_binary_hash", min: 3, entry: HASH, supported: true },
  { section: "allow_binary_hash", min: 3, entry: "sha256:" + "cd".repeat(32), supported: true },
  { section: "scan_paths", min: 1, entry: "/usr/bin", supported: true },
  { section: "protect_runtime_deps", min: 4, entry: null, supported: true, needs: "protect" },
  { section: "trusted_exec_hash", min: 5, entry: HASH, supported: true },
  { section: "require_ima_appraisal", min: 5, entry: null, supported: true },
  // no version of its own (as the C++ agent); its needed trusted list is version 5
  { section: "ima_fail_closed", min: 1, entry: null, supported: true, needs: "trusted" },
];

const SUPPORTED = ROWS.filter((r) => r.supported);
const row = (section: string): Row => ROWS.find((r) => r.section === section)!;

/** `version=V`, then the section with its entry (a flag: the header alone). */
function file(v: number, r: Row): string {
  return `version=${v}\n[${r.section}]\n${r.entry === null ? "" : r.entry + "\n"}`;
}

function parsed(text: string): Policy {
  const r = parsePolicy(text, F);
  assert.deepEqual(r.errors.map(formatIssue), [], text);
  assert.ok(r.policy);
  return r.policy;
}

/** The errors as "line: message". */
function errors(text: string): string[] {
  const r = parsePolicy(text, F);
  if (r.errors.length > 0) assert.equal(r.policy, undefined, "a file with errors is rejected");
  return r.errors.map((e) => `${e.line}: ${e.message}`);
}

function tooNew(r: Row, v: number): string {
  const what = r.entry === null ? "" : " to hold entries";
  return `section [${r.section}] needs version=${r.min} or later${what}; this file says version=${v}`;
}

/** How many entries (or an enabled flag) the section put into the policy. */
function held(p: Policy, section: string): number {
  const info = SECTIONS.find((s) => s.name === section);
  assert.ok(info?.field, section);
  const v = p[info.field];
  if (Array.isArray(v)) return v.length;
  return v?.enabled ? 1 : 0;
}

Deno.test("version rules: the table here names every section the parser knows, and no other", () => {
  assert.deepEqual(ROWS.map((r) => r.section).sort(), SECTIONS.map((s) => s.name).sort());
  for (const r of ROWS) {
    const s = SECTIONS.find((x) => x.name === r.section)!;
    assert.equal(s.field !== null, r.supported, `[${r.section}] supported`);
    assert.equal(s.kind === "flag", r.supported && r.entry === null, `[${r.section}] flag`);
  }
});

Deno.test("version rules: each implemented section under each version 1..6", () => {
  for (const r of SUPPORTED.filter((r) => !r.needs)) {
    for (const v of VERSIONS) {
      const text = file(v, r);
      if (v >= r.min) {
        const p = parsed(text);
        assert.equal(p.version, v);
        assert.equal(held(p, r.section), 1, text);
      } else {
        // a flag at its header (line 2), a section of entries at its entry (line 3)
        assert.deepEqual(errors(text), [`${r.entry === null ? 2 : 3}: ${tooNew(r, v)}`]);
      }
    }
  }
});

Deno.test("version rules: an empty section of entries is accepted under every version", () => {
  for (const r of SUPPORTED.filter((r) => r.entry !== null)) {
    for (const v of VERSIONS) {
      const p = parsed(`version=${v}\n[${r.section}]\n# nothing yet\n\n`);
      assert.equal(held(p, r.section), 0);
    }
  }
});

Deno.test("version rules: a flag needs its version even when it says false", () => {
  for (const v of VERSIONS) {
    const text = `version=${v}\n[protect_connect]\nfalse\n`;
    if (v >= 4) assert.deepEqual(parsed(text).protectConnect, { enabled: false, line: 2 });
    else assert.deepEqual(errors(text), [`2: ${tooNew(row("protect_connect"), v)}`]);
  }
});

Deno.test("version rules: the sections that need another one, under each version 1..6", () => {
  for (const v of VERSIONS) {
    // protect_runtime_deps (4) with protect_connect (4): both need 4
    const deps = `version=${v}\n[protect_runtime_deps]\n[protect_connect]\n`;
    if (v >= 4) assert.equal(parsed(deps).protectRuntimeDeps?.enabled, true);
    else {
      assert.deepEqual(errors(deps), [
        `2: ${tooNew(row("protect_runtime_deps"), v)}`,
        `3: ${tooNew(row("protect_connect"), v)}`,
      ]);
    }
    // ima_fail_closed (any) with a non-empty trusted_exec_hash (5)
    const fc = `version=${v}\n[ima_fail_closed]\n[trusted_exec_hash]\n${HASH}\n`;
    if (v >= 5) assert.equal(parsed(fc).imaFailClosed?.enabled, true);
    else assert.deepEqual(errors(fc), [`4: ${tooNew(row("trusted_exec_hash"), v)}`]);
    // alone: the rule between them, in every version
    assert.deepEqual(errors(`version=${v}\n[ima_fail_closed]\n`).length, 1);
    assert.ok(errors(`version=${v}\n[ima_fail_closed]\n`)[0].includes("requires a non-empty"));
  }
});

Deno.test("version rules: every section of the C++ format is implemented; an unknown one is an error", () => {
  assert.deepEqual(ROWS.filter((r) => !r.supported).map((r) => r.section), []);
  for (const v of VERSIONS) {
    const e = errors(`version=${v}\n[scan_path]\n/usr/bin\n`);
    assert.equal(e.length, 1, e.join("; "));
    assert.match(e[0], /^2: unknown section \[scan_path\]; known sections: .*scan_paths/);
  }
});

/** One file holding every implemented section, one entry each. */
function everySection(v: number): { text: string; lineOf: Map<string, number> } {
  const lines = [`# every implemented section, version ${v}`, `version=${v}`];
  const lineOf = new Map<string, number>();
  for (const r of SUPPORTED) {
    lines.push("", `[${r.section}]`);
    lineOf.set(r.section, lines.length + (r.entry === null ? 0 : 1));
    if (r.entry !== null) lines.push(r.entry);
  }
  return { text: lines.join("\n") + "\n", lineOf };
}

Deno.test("version rules: a file with every implemented section, under each version", () => {
  for (const v of VERSIONS) {
    const { text, lineOf } = everySection(v);
    const want = SUPPORTED.filter((r) => v < r.min).map((r) =>
      `${lineOf.get(r.section)}: ${tooNew(r, v)}`
    );
    assert.deepEqual(errors(text), want, `version=${v}`);
    if (want.length > 0) continue;
    // accepted: everything held, and the canonical text keeps the version and parses back
    const p = parsed(text);
    for (const r of SUPPORTED) assert.equal(held(p, r.section), 1, r.section);
    const canon = formatPolicy(dedupePolicy(p));
    assert.ok(canon.startsWith(`version=${v}\n`));
    assert.equal(formatPolicy(dedupePolicy(parsed(canon))), canon);
  }
});

Deno.test("version rules: the sections the C++ agent allows in version=1 parse there together", () => {
  // The shapes of a getting-started and a kernel-tampering policy: files,
  // network, process names and the kernel flags, all under version=1.
  const p = parsed(`version=1
[deny_path]
/etc/shadow
[deny_ptrace]
[deny_module_load]
[deny_bpf]
true
[deny_ip]
169.254.169.254
[deny_cidr]
198.51.100.0/24
[deny_port]
4444:tcp:both
[deny_ip_port]
[2001:db8::2]:22
[deny_comm]
xmrig
`);
  assert.equal(p.version, 1);
  assert.deepEqual(
    [p.denyPtrace, p.denyModuleLoad, p.denyBpf],
    [{ enabled: true, line: 4 }, { enabled: true, line: 5 }, { enabled: true, line: 6 }],
  );
  assert.deepEqual(p.denyIp.map((e) => e.ip), ["169.254.169.254"]);
  assert.deepEqual(p.denyIpPort.map((e) => [e.ip, e.port]), [["2001:db8::2", 22]]);
  assert.deepEqual(p.denyComm.map((e) => e.comm), ["xmrig"]);
});

Deno.test("version rules: one error per occurrence of a section, at its first entry", () => {
  const r = row("cgroup_deny_port");
  assert.deepEqual(
    errors(
      "version=5\n[cgroup_deny_port]\n# a comment is no entry\ncgid:1 22\ncgid:1 23\n" +
        "[deny_path]\n/x\n[cgroup_deny_port]\n\ncgid:2 22\n",
    ),
    [`4: ${tooNew(r, 5)}`, `10: ${tooNew(r, 5)}`],
  );
  // a bad entry is reported too, after the version error at its line
  assert.deepEqual(errors("version=3\n[protect_path]\nrelative\n"), [
    `3: ${tooNew(row("protect_path"), 3)}`,
    '3: [protect_path] Invalid path "relative": must be absolute (start with "/")',
  ]);
});

Deno.test("version rules: no version error where the version is missing or unsupported", () => {
  assert.deepEqual(errors("[protect_path]\n/etc/shadow\n[protect_connect]\n"), [
    '1: missing "version=N" header (N from 1 to 6) before the first section',
  ]);
  assert.deepEqual(errors("version=7\n[cgroup_deny_ip]\ncgid:1 10.0.0.1\n[protect_connect]\n"), [
    '1: unsupported version "7"; this aegisbpf reads policy versions 1 to 6',
  ]);
});

Deno.test("version rules: Object.prototype names as sections are unknown in every version", () => {
  for (const w of ["__proto__", "constructor", "toString", "hasOwnProperty"]) {
    for (const v of VERSIONS) {
      const got = errors(`version=${v}\n[${w}]\n/x\n`);
      assert.equal(got.length, 1, got.join("\n"));
      assert.ok(got[0].startsWith(`2: unknown section [${w}]; known sections: deny_path,`), got[0]);
    }
  }
});
