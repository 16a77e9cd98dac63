import assert from "node:assert/strict";
import { formatIssue, parsePolicy } from "./parse.ts";
import { dedupePolicy, formatPolicy, lintPolicy, MAX_WARNINGS } from "./lint.ts";
import type { Policy } from "./model.ts";

const F = "p.conf";

function parse(text: string): { policy: Policy; warnings: string[] } {
  const r = parsePolicy(text, F);
  assert.deepEqual(r.errors.map(formatIssue), []);
  return { policy: r.policy!, warnings: r.warnings.map(formatIssue) };
}

function strip(p: Policy): unknown {
  return JSON.parse(
    JSON.stringify(p, (k, v) => (k === "line" ? undefined : typeof v === "bigint" ? `${v}n` : v)),
  );
}

const FULL = `# every implemented section
version=6
[deny_path]
/usr/bin/nc
/usr/bin/nc
[deny_inode]
8:1:99
2049:5
[allow_cgroup]
/system.slice/aegisbpf.service
cgid:77
[deny_ip]
10.1.2.3
192.0.2.1
2001:0DB8::0001
[deny_cidr]
10.0.0.0/8
10.1.2.3/16
2001:db8::/32
[deny_port]
4444
53:UDP:both
[deny_ip_port]
192.0.2.1:443:tcp
[2001:db8::5]:22
[deny_comm]
xmrig
[deny_ptrace]
[deny_module_load]
false
[deny_bpf]
1
[protect_path]
/usr/bin/nc
/etc/shadow
[protect_connect]
[cgroup_deny_inode]
/kubepods/pod1 2049:7
[cgroup_deny_ip]
cgid:9 ::1
[cgroup_deny_port]
/kubepods/pod1 6379:tcp:bind
`;

Deno.test("lint: duplicates, path in deny and protect, IP/CIDR covered by a CIDR, ip:port under deny_ip", () => {
  const { warnings } = parse(FULL);
  assert.deepEqual(warnings, [
    'p.conf:5: [deny_path] duplicate entry "/usr/bin/nc" (first at line 4)',
    "p.conf:13: [deny_ip] 10.1.2.3 is already covered by [deny_cidr] 10.0.0.0/8 (line 17)",
    "p.conf:15: [deny_ip] 2001:db8::1 is already covered by [deny_cidr] 2001:db8::/32 (line 19)",
    'p.conf:18: [deny_cidr] "10.1.2.3/16" has host bits set; it means 10.1.0.0/16',
    "p.conf:18: [deny_cidr] 10.1.0.0/16 is already covered by 10.0.0.0/8 (line 17)",
    "p.conf:24: [deny_ip_port] 192.0.2.1 is denied on every port by [deny_ip] (line 14)",
    'p.conf:34: path "/usr/bin/nc" is in both [deny_path] (line 4) and [protect_path]; ' +
    "deny_path already blocks every access, so protect_path adds nothing",
  ]);
});

Deno.test("lint: a clean policy has no warnings; warnings never reject", () => {
  const { policy, warnings } = parse(
    "version=2\n[deny_ip]\n10.0.0.1\n[deny_cidr]\n192.168.0.0/16\n",
  );
  assert.deepEqual(warnings, []);
  assert.deepEqual(lintPolicy(policy, F), []);
  const r = parsePolicy("version=1\n[deny_path]\n/x\n/x\n", F);
  assert.ok(r.policy);
  assert.equal(r.warnings.length, 1);
});

Deno.test("formatPolicy: canonical text that parses back to the same model", () => {
  const { policy } = parse(FULL);
  const text = formatPolicy(policy);
  const again = parse(text).policy;
  assert.deepEqual(strip(again), strip(policy));
  assert.equal(formatPolicy(again), text, "formatting is idempotent");
  assert.ok(text.startsWith("version=6\n\n[deny_path]\n/usr/bin/nc\n/usr/bin/nc\n"));
  assert.ok(text.includes("\n[deny_inode]\n8388609:99\n2049:5\n"));
  assert.ok(text.includes("\n[deny_ip]\n10.1.2.3\n192.0.2.1\n2001:db8::1\n"));
  assert.ok(text.includes("\n[deny_cidr]\n10.0.0.0/8\n10.1.0.0/16\n2001:db8::/32\n"));
  assert.ok(text.includes("\n[deny_port]\n4444:any:egress\n53:udp:both\n"));
  assert.ok(text.includes("\n[deny_ip_port]\n192.0.2.1:443:tcp\n[2001:db8::5]:22:any\n"));
  assert.ok(text.includes("\n[deny_ptrace]\n\n[deny_module_load]\nfalse\n\n[deny_bpf]\n\n"));
  assert.ok(text.includes("\n[cgroup_deny_ip]\ncgid:9 ::1\n"));
  assert.ok(text.includes("\n[cgroup_deny_port]\n/kubepods/pod1 6379:tcp:bind\n"));
});

Deno.test("formatPolicy round-trips one policy of every version", () => {
  for (
    const t of [
      "version=1\n[deny_path]\n/a\n[allow_cgroup]\ncgid:1\n",
      "version=2\n[deny_comm]\nnc\n[deny_bpf]\n",
      "version=3\n[deny_port]\n22:tcp\n",
      "version=4\n[protect_connect]\nno\n[protect_path]\n/etc/shadow\n",
      "version=5\n[deny_ip]\n::ffff:1.2.3.4\n",
      "version=6\n[cgroup_deny_inode]\ncgid:3 1:2:3\n",
      "version=6\n",
    ]
  ) {
    const p = parse(t).policy;
    assert.deepEqual(strip(parse(formatPolicy(p)).policy), strip(p), t);
  }
});

Deno.test("dedupePolicy keeps the first of each entry", () => {
  const { policy } = parse(FULL);
  const d = dedupePolicy(policy);
  assert.deepEqual(d.denyPath, [{ path: "/usr/bin/nc", line: 4 }]);
  assert.equal(policy.denyPath.length, 2, "input untouched");
  const w = parse(formatPolicy(d)).warnings;
  assert.ok(!w.some((x) => x.includes("duplicate")), w.join("\n"));
});

Deno.test("lint warnings are capped like errors, with a last 'N more warnings not shown'", () => {
  // 1,500 duplicates of one path and one host-bits CIDR (a parser warning)
  const text = "version=2\n[deny_cidr]\n10.1.2.3/8\n[deny_path]\n" + "/x\n".repeat(1501);
  const r = parsePolicy(text, F);
  assert.ok(r.policy, "warnings never reject");
  assert.equal(r.warnings.length, MAX_WARNINGS + 1);
  assert.equal(r.warnings[0].line, 3, "the parser's warning is kept and sorted first");
  assert.match(r.warnings[0].message, /host bits set/);
  assert.equal(r.warnings[MAX_WARNINGS - 1].line, MAX_WARNINGS + 4); // duplicates from line 6
  assert.deepEqual(r.warnings[MAX_WARNINGS], {
    file: F,
    line: 0,
    message: `501 more warnings not shown (only the first ${MAX_WARNINGS} are listed)`,
  });
  // lintPolicy on its own is capped the same way
  const l = lintPolicy(r.policy, F);
  assert.equal(l.length, MAX_WARNINGS + 1);
  assert.match(l[MAX_WARNINGS].message, /^500 more warnings not shown/);
  // at the cap exactly: no summary line
  const at = parsePolicy("version=1\n[deny_path]\n" + "/x\n".repeat(MAX_WARNINGS + 1), F);
  assert.equal(at.warnings.length, MAX_WARNINGS);
  assert.ok(at.warnings.every((w) => w.line > 0));
});
