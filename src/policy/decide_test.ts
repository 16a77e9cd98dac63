/**
 * The user-space decision model on fixtures: every step of the kernel's
 * order (docs/engine.md, "Decision order"; bpf/lib/inode.h, bpf/exec.bpf.c,
 * bpf/lib/net.h, bpf/kernel.bpf.c), and the unknown facts.
 */
import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { commOf, decide, type Decision, type Facts, factsOf } from "./decide.ts";
import { connect, ev, fileBlock, rules } from "./decide_testing.ts";
import { LIVE_RULE_ID_BASE, type LiveRule } from "./live.ts";

function brief(d: Decision): [string, number | null, string | null] {
  return [d.outcome, d.rule?.line ?? d.rule?.id ?? null, d.rule_type];
}

const V = "version=6\n";

// --- file --------------------------------------------------------------------

Deno.test("file: no file rules → no lookup, no match", () => {
  const d = decide(rules(V + "[deny_port]\n22\n"), fileBlock(100));
  deepStrictEqual(brief(d), ["no_match", null, null]);
  strictEqual(d.chain[0].result, "skipped");
});

Deno.test("file: a deny_path rule matches its inode; deny_inode too", () => {
  const rs = rules(V + "[deny_path]\n/usr/bin/nc\n[deny_inode]\n2049:555\n");
  deepStrictEqual(brief(decide(rs, fileBlock(100))), ["block", 3, "inode"]);
  deepStrictEqual(brief(decide(rs, fileBlock(555))), ["block", 5, "inode"]);
  deepStrictEqual(brief(decide(rs, fileBlock(556))), ["no_match", null, null]);
});

Deno.test("file: protect-only depends on the verified state; deny beats protect", () => {
  const rs = rules(V + "[protect_path]\n/etc/shadow\n");
  const d = decide(rs, fileBlock(200));
  strictEqual(d.outcome, "undetermined");
  deepStrictEqual(d.unknown.map((u) => u.fact), ["verified"]);
  const f = factsOf(fileBlock(200));
  deepStrictEqual(brief(decide(rs, fileBlock(200), { ...f, verified: false })), [
    "block",
    3,
    "inode",
  ]);
  strictEqual(decide(rs, fileBlock(200), { ...f, verified: true }).outcome, "no_match");
  const both = rules(V + "[deny_path]\n/etc/shadow\n[protect_path]\n/etc/shadow\n");
  deepStrictEqual(brief(decide(both, fileBlock(200), { ...f, verified: true })), [
    "block",
    3,
    "inode",
  ]);
});

Deno.test("file: survival allowlist, then agent, then allow_cgroup, each exempts", () => {
  const rs = rules(V + "[deny_path]\n/usr/bin/nc\n[allow_cgroup]\n/system.slice/trusted.service\n");
  const open = ev({ type: "exec", comm: "x" }); // a non-block record: facts unknown
  strictEqual(factsOf(open).agent, false); // it has a cgroup_path that is not the agent's
  const e = fileBlock(100);
  const f: Facts = { ...factsOf(e) };
  const s = decide(rs, e, { ...f, survival: true });
  deepStrictEqual([s.outcome, s.exempt_by], ["allow", "survival"]);
  strictEqual(s.chain.map((c) => c.step).join(","), "deny/protect inode,survival allowlist");
  const a = decide(rs, e, { ...f, agent: true });
  deepStrictEqual([a.outcome, a.exempt_by], ["allow", "agent"]);
  const byPath = decide(rs, fileBlock(100, { cgroup_path: "/system.slice/trusted.service" }));
  deepStrictEqual([byPath.outcome, byPath.exempt_by], ["allow", "allow_cgroup"]);
  const byId = decide(rs, fileBlock(100, { cgroup_path: null, cgid: "77" }));
  deepStrictEqual([byId.outcome, byId.exempt_by], ["allow", "allow_cgroup"]);
  // the exact cgroup, not a child of it
  strictEqual(
    decide(rs, fileBlock(100, { cgroup_path: "/system.slice/trusted.service/child", cgid: "78" }))
      .outcome,
    "block",
  );
});

Deno.test("file: allow_cgroup waives global rules only; cgroup-scoped rules still apply", () => {
  const rs = rules(
    V + "[allow_cgroup]\n/app.slice\n[deny_inode]\n2049:555\n[cgroup_deny_inode]\n" +
      "/app.slice 2049:555\ncgid:99 2049:600\n",
  );
  const inApp = fileBlock(555, { cgroup_path: "/app.slice", cgid: "88" });
  deepStrictEqual(brief(decide(rs, inApp)), ["block", 7, "cg_inode"]);
  deepStrictEqual(brief(decide(rs, fileBlock(555))), ["block", 5, "inode"]);
  // cgroup-scoped rule of another cgroup: no match
  deepStrictEqual(brief(decide(rs, fileBlock(600))), ["no_match", null, null]);
  deepStrictEqual(brief(decide(rs, fileBlock(600, { cgid: "99" }))), ["block", 8, "cg_inode"]);
});

Deno.test("file: a path rule whose inode differs matches only by path: undetermined", () => {
  const rs = rules(V + "[deny_path]\n/usr/bin/nc\n");
  const d = decide(rs, fileBlock(999, { path: "/usr/bin/nc" }));
  strictEqual(d.outcome, "undetermined");
  deepStrictEqual(d.unknown.map((u) => u.fact), ["path identity"]);
  deepStrictEqual(d.branches.map((b) => b.outcome), ["no_match", "block"]);
  // a path that never resolved here is matched by path the same way
  const un = rules(V + "[deny_path]\n/opt/missing\n");
  strictEqual(decide(un, fileBlock(5, { path: "/opt/missing" })).outcome, "undetermined");
});

Deno.test("file: a cgroup named by a path this host lacks, event without cgroup_path", () => {
  const rs = rules(V + "[deny_inode]\n2049:555\n[allow_cgroup]\n/gone.slice\n");
  const d = decide(rs, fileBlock(555, { cgroup_path: null }));
  strictEqual(d.outcome, "undetermined");
  deepStrictEqual(d.unknown.map((u) => u.fact), ["cgroup /gone.slice"]);
  // with the event's cgroup_path the path text decides
  strictEqual(decide(rs, fileBlock(555, { cgroup_path: "/gone.slice" })).outcome, "allow");
});

// --- exec --------------------------------------------------------------------

const execBlock = (ino: number, path: string) =>
  ev({
    type: "block",
    action: "BLOCK",
    hook: "bprm_check_security",
    ino: String(ino),
    dev: 2049,
    path,
    rule_id: 1,
  });

Deno.test("exec: comm is the basename cut to 15 bytes; the inode rule comes first", () => {
  strictEqual(commOf("/opt/x/averyveryverylongname"), "averyveryverylo");
  strictEqual(commOf("nc"), "nc");
  const rs = rules(V + "[deny_comm]\naveryveryverylo\nnc\n[deny_inode]\n2049:300\n");
  deepStrictEqual(brief(decide(rs, execBlock(1, "/opt/x/averyveryverylongname"))), [
    "block",
    3,
    "comm",
  ]);
  // inode rule on the binary: file_open denies the open of the binary first
  const d = decide(rs, execBlock(300, "/usr/bin/nc"));
  deepStrictEqual(brief(d), ["block", 6, "inode"]);
  strictEqual(d.hook, "file_open");
});

Deno.test("exec: protect-only and cgroup-scoped rules act through the file hook only", () => {
  const rs = rules(V + "[protect_path]\n/usr/bin/xmrig\n");
  const e = execBlock(300, "/usr/bin/xmrig");
  const f = factsOf(e);
  const d = decide(rs, e, { ...f, verified: false });
  deepStrictEqual([d.outcome, d.hook], ["block", "file_open"]);
  strictEqual(decide(rs, e, { ...f, verified: true }).outcome, "no_match");
  const cg = rules(V + "[cgroup_deny_inode]\ncgid:50 2049:300\n");
  const c = decide(cg, e);
  deepStrictEqual([c.outcome, c.rule_type, c.hook], ["block", "cg_inode", "file_open"]);
});

Deno.test("exec events: no inode (undetermined with file rules); comm rules by the new comm", () => {
  const x = ev({ type: "exec", comm: "xmrig" });
  const comm = rules(V + "[deny_comm]\nxmrig\n");
  const d = decide(comm, x);
  strictEqual(d.outcome, "undetermined"); // the survival allowlist is keyed by the binary
  deepStrictEqual(d.unknown.map((u) => u.fact), ["survival"]);
  deepStrictEqual(brief(decide(comm, x, { ...factsOf(x), survival: false })), [
    "block",
    3,
    "comm",
  ]);
  strictEqual(decide(comm, ev({ type: "exec", comm: "ls" })).outcome, "no_match");
  const files = rules(V + "[deny_path]\n/usr/bin/nc\n");
  const u = decide(files, ev({ type: "exec", comm: "ls" }));
  deepStrictEqual(u.unknown.map((x) => x.fact), ["binary rule"]);
});

// --- network -----------------------------------------------------------------

const NET = V + "[deny_ip]\n10.1.2.3\n2001:db8::1\n[deny_cidr]\n10.0.0.0/8\n10.1.0.0/16\n" +
  "[deny_ip_port]\n10.9.9.9:443:tcp\n10.9.9.9:443\n[deny_port]\n4444:tcp:egress\n4444:any:egress\n" +
  "4444:tcp:both\n5555:any:both\n8080:any:bind\n";

Deno.test("net: ip → cidr (longest prefix) → ip:port (proto, any) → port", () => {
  const rs = rules(NET);
  deepStrictEqual(brief(decide(rs, connect("10.1.2.3", 1))), ["block", 3, "ip"]);
  deepStrictEqual(brief(decide(rs, connect("10.1.2.4", 1))), ["block", 7, "cidr"]);
  deepStrictEqual(brief(decide(rs, connect("10.2.0.1", 1))), ["block", 6, "cidr"]);
  // 10.9.9.9 is in 10.0.0.0/8: cidr comes before ip:port
  deepStrictEqual(brief(decide(rs, connect("10.9.9.9", 443))), ["block", 6, "cidr"]);
  const noCidr = rules(V + "[deny_ip_port]\n10.9.9.9:443:tcp\n10.9.9.9:443\n[deny_port]\n443\n");
  deepStrictEqual(brief(decide(noCidr, connect("10.9.9.9", 443))), ["block", 3, "ip_port"]);
  deepStrictEqual(brief(decide(noCidr, connect("10.9.9.9", 443, { protocol: "udp" }))), [
    "block",
    4,
    "ip_port",
  ]);
  deepStrictEqual(brief(decide(noCidr, connect("10.9.9.8", 443))), ["block", 6, "port"]);
});

Deno.test("net: port order (proto, dir), (any, dir), (proto, both), (any, both); bind skips addresses", () => {
  const rs = rules(NET);
  deepStrictEqual(brief(decide(rs, connect("192.0.2.1", 4444))), ["block", 12, "port"]);
  deepStrictEqual(brief(decide(rs, connect("192.0.2.1", 4444, { protocol: "udp" }))), [
    "block",
    13,
    "port",
  ]);
  const bind = (port: number, protocol = "tcp") =>
    ev({
      type: "net_bind_block",
      action: "BLOCK",
      hook: "socket_bind",
      family: "ipv4",
      addr: "10.1.2.3",
      port,
      protocol,
      rule_id: 1,
    });
  deepStrictEqual(brief(decide(rs, bind(4444))), ["block", 14, "port"]);
  strictEqual(decide(rs, bind(4444, "udp")).outcome, "no_match");
  deepStrictEqual(brief(decide(rs, bind(5555, "udp"))), ["block", 15, "port"]);
  deepStrictEqual(brief(decide(rs, bind(8080))), ["block", 16, "port"]);
  strictEqual(decide(rs, connect("192.0.2.1", 8080)).outcome, "no_match");
});

Deno.test("net: IPv6 and IPv4-mapped IPv6 (checked against the v6 rules, then the v4 rules)", () => {
  const rs = rules(NET);
  deepStrictEqual(brief(decide(rs, connect("2001:db8::1", 1))), ["block", 4, "ip"]);
  deepStrictEqual(brief(decide(rs, connect("::ffff:10.1.2.3", 1))), ["block", 3, "ip"]);
  deepStrictEqual(brief(decide(rs, connect("0:0:0:0:0:ffff:a02:1", 1))), ["block", 6, "cidr"]);
  strictEqual(decide(rs, connect("2001:db8::2", 1)).outcome, "no_match");
});

Deno.test("net: protect_connect makes every network rule protect-only", () => {
  const rs = rules(V + "[deny_port]\n4444\n[protect_connect]\n");
  const e = connect("192.0.2.1", 4444);
  strictEqual(decide(rs, e).outcome, "undetermined");
  strictEqual(decide(rs, e, { ...factsOf(e), verified: false }).outcome, "block");
  strictEqual(decide(rs, e, { ...factsOf(e), verified: true }).outcome, "no_match");
});

Deno.test("net: allow_cgroup waives the global rule, then cgroup-scoped ip and port rules", () => {
  const rs = rules(
    V + "[deny_port]\n4444\n[allow_cgroup]\n/app.slice\n[cgroup_deny_ip]\n/app.slice 192.0.2.9\n" +
      "[cgroup_deny_port]\n/app.slice 4444:udp:both\ncgid:88 4444:tcp:egress\n",
  );
  const app = { cgroup_path: "/app.slice", cgid: "88" };
  const w = decide(rs, connect("192.0.2.1", 4444, { ...app, protocol: "udp" }));
  deepStrictEqual(brief(w), ["block", 9, "cg_port"]);
  deepStrictEqual(brief(decide(rs, connect("192.0.2.1", 4444, app))), ["block", 10, "cg_port"]);
  deepStrictEqual(brief(decide(rs, connect("192.0.2.9", 1, app))), ["block", 7, "cg_ip"]);
  // another protocol: no cgroup-scoped rule has it (udp:both is not any), the waiver stands
  const waived = decide(rs, connect("192.0.2.1", 4444, { ...app, protocol: 0 }));
  deepStrictEqual([waived.outcome, waived.exempt_by, waived.rule?.line], [
    "allow",
    "allow_cgroup",
    3,
  ]);
  // outside the app cgroup the global rule applies
  deepStrictEqual(brief(decide(rs, connect("192.0.2.1", 4444))), ["block", 3, "port"]);
  const plain = rules(V + "[deny_port]\n4444\n[allow_cgroup]\n/app.slice\n");
  const a = decide(plain, connect("192.0.2.1", 4444, app));
  deepStrictEqual([a.outcome, a.exempt_by], ["allow", "allow_cgroup"]);
});

Deno.test("live rules replace the policy's entry; one with an edit in progress is left out", () => {
  const live = (id: number, expires: number | null): LiveRule => ({
    id,
    map: "aegis_deny_port",
    spec: { kind: "port", port: 4444, protocol: "any", direction: "egress" },
    added: 0,
    expires,
    shadows: null,
  });
  const rs = rules(V + "[deny_port]\n4444\n", [live(LIVE_RULE_ID_BASE, null)]);
  const d = decide(rs, connect("192.0.2.1", 4444));
  deepStrictEqual([d.outcome, d.rule?.origin, d.rule?.id], ["block", "live", LIVE_RULE_ID_BASE]);
  const adding = { ...live(LIVE_RULE_ID_BASE, null), state: "adding" as const };
  const gone = rules(V + "[deny_port]\n4444\n", [adding]);
  deepStrictEqual(brief(decide(gone, connect("192.0.2.1", 4444))), ["block", 3, "port"]);
  // TTL over but not swept yet: still in the maps
  const late = rules(V + "[deny_port]\n4444\n", [live(LIVE_RULE_ID_BASE, 999)]);
  strictEqual(decide(late, connect("192.0.2.1", 4444)).rule?.origin, "live");
});

// --- kernel --------------------------------------------------------------------

Deno.test("kernel: the switch, then the agent's and allowed cgroups", () => {
  const k = (type: string) =>
    ev({
      type,
      action: "BLOCK",
      hook: "ptrace_access_check",
      target_pid: 1,
      detail: 2,
      rule_id: 0,
    });
  strictEqual(decide(rules(V), k("kernel_ptrace_block")).outcome, "no_match");
  const rs = rules(V + "[deny_ptrace]\n[deny_bpf]\n[allow_cgroup]\n/app.slice\n");
  deepStrictEqual(brief(decide(rs, k("kernel_ptrace_block"))), ["block", 2, "ptrace"]);
  deepStrictEqual(brief(decide(rs, k("kernel_bpf_block"))), ["block", 3, "bpf"]);
  strictEqual(decide(rs, k("kernel_module_block")).outcome, "no_match");
  const a = decide(rs, { ...k("kernel_bpf_block"), cgroupPath: "/app.slice" });
  deepStrictEqual([a.outcome, a.exempt_by], ["allow", "allow_cgroup"]);
  const off = rules(V + "[deny_ptrace]\nfalse\n");
  strictEqual(decide(off, k("kernel_ptrace_block")).outcome, "no_match");
});

Deno.test("facts: a block record proves not survival and not the agent; an agent cgroup is known", () => {
  const b = factsOf(fileBlock(1));
  deepStrictEqual([b.survival, b.agent], [false, false]);
  const x = factsOf(
    ev({ type: "exec", cgroup_path: "/system.slice/aegisbpf.service/aegisbpf.agent" }),
  );
  strictEqual(x.agent, true);
  strictEqual(typeof factsOf(ev({ type: "exec", cgroup_path: null })).agent, "object");
});
