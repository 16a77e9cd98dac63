import assert from "node:assert/strict";
import { formatIssue, MAX_FILE_BYTES, MAX_LINES, modelError, parsePolicy } from "./parse.ts";
import { Policy as PolicySchema, SECTIONS } from "./model.ts";
import type { Policy, PolicyIssue } from "./model.ts";
import { dedupePolicy, formatPolicy } from "./lint.ts";

const F = "/etc/aegisbpf/policy.conf";

function ok(text: string | Uint8Array): Policy {
  const r = parsePolicy(text, F);
  assert.deepEqual(r.errors.map(formatIssue), []);
  assert.ok(r.policy);
  return r.policy;
}

/** The errors, each as [line, fragment]; asserts file and the exact set of lines. */
function bad(text: string | Uint8Array, expected: [number, string][]): PolicyIssue[] {
  const r = parsePolicy(text, F);
  assert.equal(r.policy, undefined, "a file with errors must be rejected");
  const got = r.errors.map(formatIssue);
  assert.equal(r.errors.length, expected.length, got.join("\n"));
  expected.forEach(([line, frag], i) => {
    assert.equal(r.errors[i].file, F);
    assert.equal(r.errors[i].line, line, got[i]);
    assert.ok(r.errors[i].message.includes(frag), `${got[i]} should contain "${frag}"`);
  });
  return r.errors;
}

const noLines = (p: Policy) =>
  JSON.parse(
    JSON.stringify(p, (k, v) => k === "line" ? undefined : typeof v === "bigint" ? `${v}n` : v),
  );

// ---- one realistic policy per version ----

Deno.test("v1: deny_path, deny_inode, allow_cgroup, comments, blank lines, trailing whitespace", () => {
  const p = ok(
    "# production file rules\nversion=1\n\n[deny_path]\n/usr/bin/nc   \n/usr/bin/ncat\t\n\n" +
      "[deny_inode]\n# dev:ino\n2049:1234\n8:1:99\n[allow_cgroup]\n/system.slice/aegisbpf.service\ncgid:4242\n",
  );
  assert.equal(p.version, 1);
  assert.deepEqual(p.denyPath, [{ path: "/usr/bin/nc", line: 5 }, {
    path: "/usr/bin/ncat",
    line: 6,
  }]);
  assert.deepEqual(p.denyInode, [
    { dev: 2049, ino: 1234n, line: 10 },
    { dev: (8 << 20) | 1, ino: 99n, line: 11 },
  ]);
  assert.deepEqual(p.allowCgroup, [
    { cgroup: { kind: "path", path: "/system.slice/aegisbpf.service" }, line: 13 },
    { cgroup: { kind: "cgid", cgid: 4242n }, line: 14 },
  ]);
  assert.equal(p.denyPtrace, null);
});

Deno.test("v2: network, comm and kernel flag sections", () => {
  const p = ok(`version=2
[deny_ip]
192.0.2.10
2001:DB8:0:0:0:0:0:1
[deny_cidr]
198.51.100.0/24
2001:db8:abcd::/48
[deny_port]
4444
53:udp
8080:tcp:bind
[deny_ip_port]
203.0.113.5:443:tcp
[2001:db8::2]:22
[deny_comm]
xmrig
[deny_ptrace]
[deny_module_load]
true
[deny_bpf]
off
`);
  assert.deepEqual(p.denyIp, [
    { ip: "192.0.2.10", family: 4, line: 3 },
    { ip: "2001:db8::1", family: 6, line: 4 },
  ]);
  assert.deepEqual(p.denyCidr, [
    { cidr: "198.51.100.0/24", family: 4, line: 6 },
    { cidr: "2001:db8:abcd::/48", family: 6, line: 7 },
  ]);
  assert.deepEqual(p.denyPort, [
    { port: 4444, proto: "any", dir: "egress", line: 9 },
    { port: 53, proto: "udp", dir: "egress", line: 10 },
    { port: 8080, proto: "tcp", dir: "bind", line: 11 },
  ]);
  assert.deepEqual(p.denyIpPort, [
    { ip: "203.0.113.5", family: 4, port: 443, proto: "tcp", line: 13 },
    { ip: "2001:db8::2", family: 6, port: 22, proto: "any", line: 14 },
  ]);
  assert.deepEqual(p.denyComm, [{ comm: "xmrig", line: 16 }]);
  assert.deepEqual(p.denyPtrace, { enabled: true, line: 17 });
  assert.deepEqual(p.denyModuleLoad, { enabled: true, line: 18 });
  assert.deepEqual(p.denyBpf, { enabled: false, line: 20 });
});

Deno.test("v3: v1/v2 sections still parse; deny_binary_hash, allow_binary_hash and scan_paths parse", () => {
  const p = ok("version=3\n[deny_path]\n/opt/miner\n[deny_port]\n3333\n");
  assert.equal(p.version, 3);
  const h = ok(
    "version=3\n[deny_binary_hash]\nsha256:" + "a".repeat(64) + "\n[allow_binary_hash]\nsha256:" +
      "B".repeat(64) + "\n[scan_paths]\n/opt/tools\n/srv/bin\n",
  );
  assert.deepEqual(h.denyBinaryHash, [{ sha256: "a".repeat(64), line: 3 }]);
  assert.deepEqual(h.allowBinaryHash, [{ sha256: "b".repeat(64), line: 5 }]);
  assert.deepEqual(h.scanPaths, [{ path: "/opt/tools", line: 7 }, { path: "/srv/bin", line: 8 }]);
  // a scan path is a path rule's path: absolute, no NUL (the C++ parser only warns)
  bad(
    "version=3\n[deny_binary_hash]\nsha256:" + "a".repeat(64) + "\n[scan_paths]\nopt/tools\n",
    [[5, "must be absolute"]],
  );
  // without a deny list it does nothing: a warning, not an error
  const r = parsePolicy("version=3\n[scan_paths]\n/opt/tools\n", "f.conf");
  assert.deepEqual(r.errors, []);
  assert.ok(
    r.warnings.some((w) =>
      w.line === 3 && /no effect without \[deny_binary_hash\]/.test(w.message)
    ),
    JSON.stringify(r.warnings),
  );
});

const HEX = "0123456789abcdef".repeat(4);

Deno.test("deny_binary_hash: the C++ rules (sha256: prefix, 64 hex digits of either case, lower-cased)", () => {
  const p = ok(
    `version=3\n[deny_binary_hash]\n  sha256:${HEX.toUpperCase()}  \nsha256:${"f".repeat(64)}\n`,
  );
  assert.deepEqual(p.denyBinaryHash, [
    { sha256: HEX, line: 3 },
    { sha256: "f".repeat(64), line: 4 },
  ]);
  // version 2 (and 1): the section needs 3 to hold entries; empty is accepted
  bad(`version=2\n[deny_binary_hash]\nsha256:${HEX}\n`, [[3, "needs version=3 or later"]]);
  assert.deepEqual(ok("version=1\n[deny_binary_hash]\n").denyBinaryHash, []);
  // malformed entries: an error at their own line, the file rejected
  bad(
    [
      "version=6",
      "[deny_binary_hash]",
      HEX, // no prefix
      `sha256:${HEX.slice(1)}`, // 63 digits
      `sha256:${HEX}0`, // 65 digits
      `sha256:${HEX.slice(1)}g`, // not hex
      `SHA256:${HEX}`, // the prefix is lower case only
      `sha512:${HEX}${HEX}`,
      `sha256: ${HEX.slice(1)}`, // a space inside
      "sha256:",
      `sha256:${"__proto__".padEnd(64, "0")}`,
      "",
    ].join("\n"),
    [
      [3, "[deny_binary_hash] Invalid hash"],
      [4, "has 63 characters"],
      [5, "has 65 characters"],
      [6, "not a hex digit"],
      [7, "an entry is sha256:<64 hex digits>"],
      [8, "an entry is sha256:<64 hex digits>"],
      [9, "not a hex digit"],
      [10, "has 0 characters"],
      [11, "not a hex digit"],
    ],
  );
});

Deno.test("deny_binary_hash: duplicates (either case) warn like other sections and compile once", () => {
  const r = parsePolicy(
    `version=3\n[deny_binary_hash]\nsha256:${HEX}\nsha256:${HEX.toUpperCase()}\n`,
    F,
  );
  assert.deepEqual(r.errors, []);
  assert.equal(r.policy!.denyBinaryHash.length, 2);
  assert.deepEqual(
    r.warnings.map(formatIssue),
    [`${F}:4: [deny_binary_hash] duplicate entry "sha256:${HEX}" (first at line 3)`],
  );
  assert.deepEqual(dedupePolicy(r.policy!).denyBinaryHash, [{ sha256: HEX, line: 3 }]);
  assert.equal(
    formatPolicy(dedupePolicy(r.policy!)),
    `version=3\n\n[deny_binary_hash]\nsha256:${HEX}\n`,
  );
});

Deno.test("allow_binary_hash: version 3, the digest rules of deny_binary_hash, errors at file:line", () => {
  const p = ok(`version=3\n[allow_binary_hash]\n  sha256:${HEX.toUpperCase()}  \n`);
  assert.deepEqual(p.allowBinaryHash, [{ sha256: HEX, line: 3 }]);
  assert.deepEqual(p.denyBinaryHash, []);
  // the version rule: entries need 3; an empty section is accepted
  bad(`version=2\n[allow_binary_hash]\nsha256:${HEX}\n`, [[
    3,
    "section [allow_binary_hash] needs version=3 or later",
  ]]);
  assert.deepEqual(ok("version=1\n[allow_binary_hash]\n").allowBinaryHash, []);
  // bad digests, Object.prototype names included: refused as bad digests
  bad(
    [
      "version=3",
      "[allow_binary_hash]",
      "__proto__",
      "constructor",
      "sha256:__proto__",
      "sha256:constructor",
      `sha256:${HEX.slice(2)}`,
      `sha256:${HEX.slice(1)}z`,
      "",
    ].join("\n"),
    [
      [3, '[allow_binary_hash] Invalid hash "__proto__"'],
      [4, '[allow_binary_hash] Invalid hash "constructor"'],
      [5, "has 9 characters"],
      [6, "has 11 characters"],
      [7, "has 62 characters"],
      [8, "not a hex digit"],
    ],
  );
  const r = parsePolicy(`version=3\n[allow_binary_hash]\nsha256:${"0".repeat(63)}\n`, F);
  assert.equal(r.policy, undefined);
  assert.ok(formatIssue(r.errors[0]).startsWith(`${F}:3: [allow_binary_hash] Invalid hash`));
});

Deno.test("allow_binary_hash: a digest both allowed and denied is an error naming both lines", () => {
  const other = "f".repeat(64);
  const r = parsePolicy(
    [
      "version=3",
      "[deny_binary_hash]",
      `sha256:${HEX}`,
      `sha256:${other}`,
      "[allow_binary_hash]",
      `sha256:${"e".repeat(64)}`,
      `sha256:${HEX.toUpperCase()}`, // the same content in another case
      "",
    ].join("\n"),
    F,
  );
  assert.equal(r.policy, undefined);
  assert.deepEqual(r.errors.map(formatIssue), [
    `${F}:7: [allow_binary_hash] sha256:${HEX} is also in [deny_binary_hash] at line 3; ` +
    "a content is either allowed or denied: remove one of the two lines",
  ]);
  // distinct contents in both lists: accepted; duplicates inside the allowlist warn
  const d = parsePolicy(
    `version=3\n[deny_binary_hash]\nsha256:${other}\n[allow_binary_hash]\nsha256:${HEX}\nsha256:${HEX}\n`,
    F,
  );
  assert.deepEqual(d.errors, []);
  assert.deepEqual(d.warnings.map(formatIssue), [
    `${F}:6: [allow_binary_hash] duplicate entry "sha256:${HEX}" (first at line 5)`,
  ]);
  assert.equal(
    formatPolicy(dedupePolicy(d.policy!)),
    `version=3\n\n[deny_binary_hash]\nsha256:${other}\n\n[allow_binary_hash]\nsha256:${HEX}\n`,
  );
});

Deno.test("v4: protect_path and protect_connect", () => {
  const p = ok(
    "version=4\n[protect_path]\n/etc/shadow\n/etc/aegisbpf/keys\n[protect_connect]\n[deny_comm]\nnc\n",
  );
  assert.deepEqual(p.protectPath, [{ path: "/etc/shadow", line: 3 }, {
    path: "/etc/aegisbpf/keys",
    line: 4,
  }]);
  assert.deepEqual(p.protectConnect, { enabled: true, line: 5 });
});

const HEX2 = "b".repeat(64);

Deno.test("v5: trusted_exec_hash, ima_fail_closed, require_ima_appraisal parse; protect_runtime_deps (v4)", () => {
  ok("version=5\n[protect_connect]\n1\n[deny_bpf]\n");
  const p = ok(
    [
      "version=5",
      "[trusted_exec_hash]",
      `  sha256:${HEX.toUpperCase()}  `,
      `sha256:${HEX2}`,
      "[ima_fail_closed]",
      "[require_ima_appraisal]",
      "[protect_path]",
      "/etc/shadow",
      "[protect_runtime_deps]",
      "[allow_binary_hash]",
      `sha256:${HEX2}`,
      "",
    ].join("\n"),
  );
  assert.deepEqual(p.trustedExecHash, [{ sha256: HEX, line: 3 }, { sha256: HEX2, line: 4 }]);
  assert.deepEqual(p.imaFailClosed, { enabled: true, line: 5 });
  assert.deepEqual(p.requireImaAppraisal, { enabled: true, line: 6 });
  assert.deepEqual(p.protectRuntimeDeps, { enabled: true, line: 9 });
  assert.deepEqual(
    p.allowBinaryHash,
    [{ sha256: HEX2, line: 11 }],
    "allow and trusted may overlap",
  );
  // the canonical form keeps them and parses back
  const canon = formatPolicy(dedupePolicy(p));
  assert.ok(canon.includes("[trusted_exec_hash]\n"), canon);
  assert.ok(canon.includes("[ima_fail_closed]\n"), canon);
  assert.ok(canon.includes("[protect_runtime_deps]\n"), canon);
  assert.equal(formatPolicy(dedupePolicy(ok(canon))), canon);
  // a flag set to false is off, and needs nothing
  const off = ok("version=5\n[ima_fail_closed]\noff\n[protect_runtime_deps]\nno\n");
  assert.deepEqual([off.imaFailClosed?.enabled, off.protectRuntimeDeps?.enabled], [false, false]);
});

Deno.test("trusted_exec_hash: version 5, digest errors at file:line, duplicates warn, Object.prototype names refused", () => {
  bad(`version=4\n[trusted_exec_hash]\nsha256:${HEX}\n`, [[
    3,
    "section [trusted_exec_hash] needs version=5 or later",
  ]]);
  assert.deepEqual(
    ok("version=1\n[trusted_exec_hash]\n").trustedExecHash,
    [],
    "empty: any version",
  );
  const errs = bad(
    [
      "version=5",
      "[trusted_exec_hash]",
      "__proto__",
      "sha256:constructor",
      `md5:${HEX.slice(32)}`,
      `sha256:${HEX.slice(1)}`,
      `sha256:${HEX.slice(1)}g`,
      "",
    ].join("\n"),
    [
      [3, '[trusted_exec_hash] Invalid hash "__proto__"'],
      [4, "has 11 characters"],
      [5, "[trusted_exec_hash] Invalid hash"],
      [6, "has 63 characters"],
      [7, "not a hex digit"],
    ],
  );
  assert.ok(formatIssue(errs[0]).startsWith(`${F}:3: `));
  const d = parsePolicy(
    `version=5\n[trusted_exec_hash]\nsha256:${HEX}\nsha256:${HEX.toUpperCase()}\n`,
    F,
  );
  assert.deepEqual(d.errors, []);
  assert.deepEqual(d.warnings.map(formatIssue), [
    `${F}:4: [trusted_exec_hash] duplicate entry "sha256:${HEX}" (first at line 3)`,
  ]);
  assert.equal(
    formatPolicy(dedupePolicy(d.policy!)),
    `version=5\n\n[trusted_exec_hash]\nsha256:${HEX}\n`,
  );
  // trusted and denied: accepted (the deny wins), with a warning naming both lines
  const td = parsePolicy(
    `version=5\n[deny_binary_hash]\nsha256:${HEX}\n[trusted_exec_hash]\nsha256:${HEX}\n`,
    F,
  );
  assert.deepEqual(td.errors, []);
  assert.deepEqual(td.warnings.map(formatIssue), [
    `${F}:5: [trusted_exec_hash] sha256:${HEX} is also in [deny_binary_hash] at line 3; ` +
    "the deny wins (it cannot run)",
  ]);
});

Deno.test("ima_fail_closed needs a non-empty trusted_exec_hash; entries are not flag values", () => {
  bad("version=5\n[ima_fail_closed]\n", [[
    2,
    "[ima_fail_closed] requires a non-empty [trusted_exec_hash] allowlist",
  ]]);
  bad("version=5\n[trusted_exec_hash]\n# none yet\n[ima_fail_closed]\n", [[
    4,
    "[ima_fail_closed] requires a non-empty [trusted_exec_hash]",
  ]]);
  // version 4 or lower: the trusted list cannot hold entries, so it fails either way
  bad(`version=4\n[ima_fail_closed]\n[trusted_exec_hash]\nsha256:${HEX}\n`, [[
    4,
    "needs version=5 or later",
  ]]);
  // strict: no entry line (only one flag value)
  bad(`version=5\n[trusted_exec_hash]\nsha256:${HEX}\n[ima_fail_closed]\nsha256:${HEX}\n`, [[
    5,
    "is not a flag value",
  ]]);
  bad(`version=5\n[trusted_exec_hash]\nsha256:${HEX}\n[ima_fail_closed]\non\ntrue\n`, [[
    6,
    "a flag section holds at most one value (already given at line 5)",
  ]]);
});

Deno.test("protect_runtime_deps (v4) needs protect_path or protect_connect; without a list it warns", () => {
  bad("version=4\n[protect_runtime_deps]\n", [[
    2,
    "[protect_runtime_deps] requires [protect_connect] or [protect_path]",
  ]]);
  bad("version=4\n[protect_path]\n[protect_connect]\nfalse\n[protect_runtime_deps]\n", [[
    5,
    "requires [protect_connect] or [protect_path]",
  ]]);
  bad("version=3\n[protect_runtime_deps]\n[protect_connect]\n", [
    [2, "section [protect_runtime_deps] needs version=4 or later"],
    [3, "section [protect_connect] needs version=4 or later"],
  ]);
  const w = parsePolicy("version=4\n[protect_connect]\n[protect_runtime_deps]\n", F);
  assert.deepEqual(w.errors, []);
  assert.deepEqual(w.warnings.map(formatIssue), [
    `${F}:3: [protect_runtime_deps] has no effect on executable mappings without a non-empty ` +
    "[allow_binary_hash] or [trusted_exec_hash]: only [deny_binary_hash] is checked there",
  ]);
  const quiet = parsePolicy(
    `version=5\n[protect_path]\n/etc/shadow\n[protect_runtime_deps]\n[trusted_exec_hash]\nsha256:${HEX}\n`,
    F,
  );
  assert.deepEqual([quiet.errors, quiet.warnings], [[], []]);
});

Deno.test("v6: cgroup-scoped rules", () => {
  const p = ok(`version=6
[cgroup_deny_inode]
/kubepods/besteffort/pod1 2049:777
cgid:99   8:1:5
[cgroup_deny_ip]
/kubepods/besteffort/pod1 10.9.9.9
cgid:99 2001:db8::9
[cgroup_deny_port]
/kubepods/besteffort/pod1 6379:tcp
cgid:99 22:any:both
`);
  const pod = { kind: "path" as const, path: "/kubepods/besteffort/pod1" };
  const cg = { kind: "cgid" as const, cgid: 99n };
  assert.deepEqual(p.cgroupDenyInode, [
    { cgroup: pod, dev: 2049, ino: 777n, line: 3 },
    { cgroup: cg, dev: (8 << 20) | 1, ino: 5n, line: 4 },
  ]);
  assert.deepEqual(p.cgroupDenyIp, [
    { cgroup: pod, ip: "10.9.9.9", family: 4, line: 6 },
    { cgroup: cg, ip: "2001:db8::9", family: 6, line: 7 },
  ]);
  assert.deepEqual(p.cgroupDenyPort, [
    { cgroup: pod, port: 6379, proto: "tcp", dir: "egress", line: 9 },
    { cgroup: cg, port: 22, proto: "any", dir: "both", line: 10 },
  ]);
});

Deno.test("CRLF line ends, a BOM and bytes input parse like text", () => {
  const text = "\uFEFFversion=1\r\n[deny_path]\r\n/bin/x\r\n";
  const a = ok(text);
  const b = ok(new TextEncoder().encode(text));
  assert.deepEqual(a, b);
  assert.deepEqual(a.denyPath, [{ path: "/bin/x", line: 3 }]);
});

// ---- bad inputs ----

Deno.test("unknown section: error at its line, its entries are not parsed", () => {
  bad("version=1\n[deny_pathz]\nnot/checked\n[deny_path]\n/ok\n", [[
    2,
    "unknown section [deny_pathz]",
  ]]);
});

Deno.test("bad version: 0, 7, text, missing, repeated", () => {
  bad("version=0\n", [[1, 'unsupported version "0"']]);
  bad("version=7\n[deny_path]\n/x\n", [[
    1,
    'unsupported version "7"; this aegisbpf reads policy versions 1 to 6',
  ]]);
  bad("version=two\n", [[1, 'unsupported version "two"']]);
  bad("# no header\n[deny_path]\n/x\n", [[2, 'missing "version=N" header']]);
  bad("", [[1, 'missing "version=N" header']]);
  bad("version=1\nversion=2\n", [[2, '"version" is given again (first at line 1)']]);
});

Deno.test("unknown header key and junk before the first section", () => {
  bad("version=1\nmode=enforce\nhello\n", [[2, 'unknown header key "mode"'], [
    3,
    'expected a "key=value" header line',
  ]]);
});

Deno.test("section above the file's version: a flag at its header, entries at the first one", () => {
  bad(
    "version=1\n[deny_ip]\n10.0.0.1\n[protect_path]\n/etc/shadow\n[cgroup_deny_port]\ncgid:1 22\n" +
      "[protect_connect]\n",
    [
      [
        5,
        "section [protect_path] needs version=4 or later to hold entries; this file says version=1",
      ],
      [7, "section [cgroup_deny_port] needs version=6 or later to hold entries"],
      [8, "section [protect_connect] needs version=4 or later; this file says version=1"],
    ],
  );
});

Deno.test("relative path, NUL byte in a path", () => {
  bad("version=4\n[deny_path]\nusr/bin/nc\n[protect_path]\n./x\n", [
    [3, '[deny_path] Invalid path "usr/bin/nc": must be absolute'],
    [5, 'Invalid path "./x": must be absolute'],
  ]);
  bad("version=1\n[deny_path]\n/bin/a\0b\n", [[3, "contains a NUL byte"]]);
  bad(new Uint8Array([...new TextEncoder().encode("version=1\n[deny_path]\n/x"), 0, 0x0a]), [
    [3, "contains a NUL byte"],
  ]);
});

Deno.test("bad CIDR, bad IP, port 0 and 70000, bad ip:port", () => {
  bad(
    "version=2\n[deny_cidr]\n10.0.0.0/33\n10.0.0.0\n[deny_ip]\n256.1.1.1\n[deny_port]\n0\n70000\n53:icmp\n" +
      "[deny_ip_port]\n2001:db8::1:80\n1.2.3.4\n",
    [
      [3, 'Invalid CIDR "10.0.0.0/33": prefix length "33" must be a number from 0 to 32'],
      [4, 'Invalid CIDR "10.0.0.0": no "/<prefix length>"'],
      [6, "256 is above 255"],
      [8, "port 0 is not from 1 to 65535"],
      [9, "port 70000 is not from 1 to 65535"],
      [10, 'protocol "icmp" is not tcp, udp or any'],
      [12, "write IPv6 addresses in brackets"],
      [13, "expected <ip>:<port>[:tcp|udp|any]"],
    ],
  );
});

Deno.test("IPv6 where an IPv4 form is required: unbracketed v6 in ip:port, CIDR in cgroup_deny_ip", () => {
  bad("version=6\n[deny_ip_port]\n::1:22\n[cgroup_deny_ip]\ncgid:5 10.0.0.0/8\n", [
    [3, "write IPv6 addresses in brackets"],
    [5, "cgroup_deny_ip takes exact addresses, not CIDRs"],
  ]);
});

Deno.test("bad inode, cgroup and comm entries", () => {
  bad(
    "version=6\n[deny_inode]\n2049\n99999999999:1\n4096:0:1\n1:0\n[allow_cgroup]\nsystem.slice\ncgid:x\n" +
      "[deny_comm]\nvery-long-process-name\n/usr/bin/nc\n[cgroup_deny_inode]\n/kubepods\n",
    [
      [3, "expected dev:ino or major:minor:ino"],
      [4, "dev 99999999999 is above 4294967295"],
      [5, "major 4096 is above 4095"],
      [6, "inode number 0 names no file"],
      [8, 'Invalid cgroup "system.slice": give an absolute cgroup v2 path'],
      [9, 'cgroup id "x" is not a decimal number'],
      [11, "22 bytes, the kernel keeps at most 15"],
      [12, 'contains "/"'],
      [14, 'expected "<cgroup path or cgid:N> <rule>"'],
    ],
  );
});

Deno.test("flag sections: bad value, two values", () => {
  bad("version=2\n[deny_ptrace]\nmaybe\n[deny_bpf]\ntrue\nfalse\n", [
    [3, '"maybe" is not a flag value'],
    [6, "at most one value (already given at line 5)"],
  ]);
});

Deno.test("malformed section header and entries outside a known section", () => {
  bad("version=1\n[deny path]\n/x\n", [[2, 'malformed section header "[deny path]"']]);
});

Deno.test("a 17 MiB file is rejected without parsing (bytes and string)", () => {
  const big = new Uint8Array(17 * 1024 * 1024).fill(0x61);
  const e = bad(big, [[
    0,
    `file is ${big.length} bytes; the limit is ${MAX_FILE_BYTES} bytes (16 MiB)`,
  ]]);
  assert.equal(
    formatIssue(e[0]),
    `${F}: file is 17825792 bytes; the limit is 16777216 bytes (16 MiB)`,
  );
  bad("a".repeat(MAX_FILE_BYTES + 1), [[0, "the limit is 16777216 bytes"]]);
  // Multi-byte text over the limit in bytes but not in characters.
  bad("é".repeat(MAX_FILE_BYTES / 2 + 1), [[0, "file is 16777218 bytes"]]);
});

Deno.test("a 1 MB line is an error at its line; the other lines are still checked", () => {
  const long = "/" + "a".repeat(1024 * 1024);
  bad(`version=1\n[deny_path]\n${long}\nrelative\n`, [
    [3, "line is 1048577 bytes; the limit is 4096 bytes per line"],
    [4, "must be absolute"],
  ]);
  bad(new TextEncoder().encode(`version=1\n[deny_path]\n${long}\n`), [[
    3,
    "line is 1048577 bytes",
  ]]);
  ok(`version=1\n[deny_path]\n/${"a/".repeat(2000)}\n`); // 4002 bytes: fine
});

Deno.test("invalid UTF-8 is an error at its line (fatal decoding)", () => {
  const enc = new TextEncoder();
  const bytes = new Uint8Array([
    ...enc.encode("version=1\n[deny_path]\n/ok\n/bad"),
    0xff,
    0xfe,
    ...enc.encode("\n/also\xc3"),
    0xc3,
    0x28,
    0x0a,
  ]);
  bad(bytes, [[4, "invalid UTF-8"], [5, "invalid UTF-8"]]);
  bad("version=1\n[deny_path]\n/x\uD800\n", [[3, "unpaired UTF-16 surrogate"]]);
});

Deno.test("all errors are reported at once and the whole file is rejected", () => {
  const errs = bad(
    "version=2\n[deny_path]\n/good\nrel1\n[nope]\n[deny_port]\n0\n22\n[deny_ip]\nx\n",
    [
      [4, "must be absolute"],
      [5, "unknown section [nope]"],
      [7, "port 0"],
      [10, 'Invalid IP address "x"'],
    ],
  );
  assert.ok(errs.every((e) => e.file === F));
});

Deno.test("error count is capped", () => {
  const text = "version=1\n[deny_path]\n" + "rel\n".repeat(1500);
  const r = parsePolicy(text, F);
  assert.equal(r.errors.length, 1001);
  assert.equal(r.errors[1000].message, "too many errors; only the first 1000 are shown");
});

Deno.test("model is plain data apart from bigints", () => {
  const p = ok("version=1\n[deny_inode]\n1:2\n");
  assert.deepEqual(noLines(p).denyInode, [{ dev: 1, ino: "2n" }]);
});

Deno.test("a file of more lines than MAX_LINES is rejected with one error", () => {
  const r = parsePolicy("version=1\n" + "#\n".repeat(MAX_LINES), F);
  assert.equal(r.policy, undefined);
  assert.deepEqual(r.errors.map(formatIssue), [
    `${F}: file has more than ${MAX_LINES} lines; the limit is ${MAX_LINES} lines`,
  ]);
  ok("version=1\n" + "#\n".repeat(MAX_LINES - 1)); // exactly MAX_LINES: fine
});

// ---- Object.prototype names as input, in every position of every section ----

/** Names that a lookup in a plain object would find on Object.prototype. */
const PROTO_WORDS = [
  "constructor",
  "__proto__",
  "toString",
  "hasOwnProperty",
  "valueOf",
  "isPrototypeOf",
  "__defineGetter__",
];

/**
 * [section, entry template (W = the word), expected error fragment]; every
 * row must give one normal error at the entry's line (3), never an
 * "internal error" at line 0.
 */
const WORD_CASES: [string, string, string, string?][] = [
  ["deny_path", "W", "must be absolute"],
  ["protect_path", "W", "must be absolute"],
  ["scan_paths", "W", "must be absolute"],
  ["deny_inode", "W", "Invalid inode"],
  ["deny_inode", "1:W", "Invalid inode"],
  ["allow_cgroup", "W", "Invalid cgroup"],
  ["allow_cgroup", "cgid:W", "is not a decimal number"],
  ["deny_ip", "W", "Invalid IP address"],
  ["deny_cidr", "W", "Invalid"],
  ["deny_cidr", "10.0.0.0/W", "Invalid"],
  ["deny_port", "W", "is not a number from 1 to 65535"],
  ["deny_port", "443:W", "protocol"],
  ["deny_port", "443:tcp:W", "direction"],
  ["deny_port", "443:W:W", "protocol"],
  ["deny_ip_port", "W", "Invalid ip:port"],
  ["deny_ip_port", "W:443", "Invalid ip:port"],
  ["deny_ip_port", "1.2.3.4:W", "is not a number from 1 to 65535"],
  ["deny_ip_port", "1.2.3.4:443:W", "protocol"],
  ["deny_ip_port", "[2001:db8::1]:443:W", "protocol"],
  ["deny_binary_hash", "W", "Invalid hash"],
  ["deny_binary_hash", "sha256:W", "Invalid hash"],
  ["allow_binary_hash", "W", "Invalid hash"],
  ["allow_binary_hash", "sha256:W", "Invalid hash"],
  ["trusted_exec_hash", "W", "Invalid hash"],
  ["trusted_exec_hash", "sha256:W", "Invalid hash"],
  ["require_ima_appraisal", "W", "is not a flag value"],
  // the sections they need come after the bad line (one error: that line's)
  [
    "ima_fail_closed",
    "W",
    "is not a flag value",
    `[trusted_exec_hash]\nsha256:${"a".repeat(64)}\n`,
  ],
  ["protect_runtime_deps", "W", "is not a flag value", "[protect_connect]\n"],
  ["deny_ptrace", "W", "is not a flag value"],
  ["deny_module_load", "W", "is not a flag value"],
  ["deny_bpf", "W", "is not a flag value"],
  ["protect_connect", "W", "is not a flag value"],
  ["cgroup_deny_inode", "W 1:2", "Invalid cgroup"],
  ["cgroup_deny_inode", "/a W", "Invalid inode"],
  ["cgroup_deny_ip", "W 10.0.0.1", "Invalid cgroup"],
  ["cgroup_deny_ip", "/a W", "Invalid IP address"],
  ["cgroup_deny_port", "W 443", "Invalid cgroup"],
  ["cgroup_deny_port", "/a W", "is not a number from 1 to 65535"],
  ["cgroup_deny_port", "/a 443:W", "protocol"],
  ["cgroup_deny_port", "/a 443:tcp:W", "direction"],
];

Deno.test("Object.prototype names in every entry position: a normal error at their line", () => {
  // every implemented section is covered by at least one row
  for (const s of SECTIONS) {
    if (s.field === null || s.kind === "comm") continue;
    assert.ok(WORD_CASES.some(([n]) => n === s.name), `no row for [${s.name}]`);
  }
  for (const w of PROTO_WORDS) {
    for (const [section, tpl, frag, after] of WORD_CASES) {
      const entry = tpl.replaceAll("W", w);
      const errs = bad(`version=6\n[${section}]\n${entry}\n${after ?? ""}`, [[3, frag]]);
      assert.ok(errs[0].message.startsWith(`[${section}] `), formatIssue(errs[0]));
      assert.ok(!errs[0].message.includes("internal error"), formatIssue(errs[0]));
    }
  }
});

Deno.test("Object.prototype names as section name, header key, version, flag values: normal errors", () => {
  for (const w of PROTO_WORDS) {
    bad(`version=2\n[${w}]\n/x\n`, [[2, `unknown section [${w}]`]]);
    bad(`${w}=2\n[deny_path]\n/x\n`, [
      [1, `unknown header key "${w}"`],
      [2, 'missing "version=N" header'],
    ]);
    bad(`version=${w}\n[deny_path]\n/x\n`, [[1, `unsupported version "${w}"`]]);
    // a flag value in another case still goes through the same table
    bad(`version=2\n[deny_bpf]\n${w.toUpperCase()}\n`, [[3, "is not a flag value"]]);
  }
});

Deno.test("Object.prototype names are ordinary process names in [deny_comm]", () => {
  const p = ok(`version=2\n[deny_comm]\n${PROTO_WORDS.slice(0, 5).join("\n")}\n`);
  assert.deepEqual(p.denyComm.map((e) => e.comm), PROTO_WORDS.slice(0, 5));
  // and as path components
  const q = ok("version=1\n[deny_path]\n/constructor/__proto__/toString\n");
  assert.equal(q.denyPath[0].path, "/constructor/__proto__/toString");
});

Deno.test("a model-check failure (a parser bug) names the entry's line and section, no zod dump", () => {
  const p = ok("version=2\n[deny_port]\n22\n443:tcp\n[deny_bpf]\n");
  // corrupt it as a parser bug would
  (p.denyPort[1] as { proto: string }).proto = "constructor";
  const r = PolicySchema.safeParse(p);
  assert.equal(r.success, false);
  const e = modelError(p, F, r.error!.issues[0].path);
  assert.equal(
    formatIssue(e),
    `${F}:4: [deny_port] internal error: this entry (proto) did not pass the policy model check; ` +
      "the file is rejected",
  );
  // a flag section: its header line
  const q = ok("version=2\n[deny_bpf]\n");
  (q.denyBpf as { enabled: unknown }).enabled = "yes";
  const rq = PolicySchema.safeParse(q);
  assert.equal(formatIssue(modelError(q, F, rq.error!.issues[0].path)).split(": ")[0], `${F}:2`);
  // an unknown field path: still no dump, line 0
  assert.equal(modelError(q, F, ["constructor"]).line, 0);
});
