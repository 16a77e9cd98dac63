import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { connect, ev, fileBlock, rules } from "./decide_testing.ts";
import { explainEvent } from "./explain.ts";
import { LIVE_RULE_ID_BASE } from "./live.ts";

const V = "version=6\n";

Deno.test("explain: the event's rule exists and decides it now (agrees)", () => {
  const x = explainEvent(rules(V + "[deny_path]\n/usr/bin/nc\n"), fileBlock(100, { rule_id: 3 }));
  deepStrictEqual([x.recorded_rule.kind, x.recorded_rule.exists, x.agrees], ["policy", true, true]);
  strictEqual(x.recorded_rule.message, "p.conf:3 [deny_path] /usr/bin/nc");
  ok(x.notes.some((n) => /survival allowlist/.test(n)));
  strictEqual(x.decision.enforce.startsWith("denied"), true);
  strictEqual(x.decision.audit.includes("AUDIT"), true);
});

Deno.test("explain: says plainly when the policy line or live rule is gone", () => {
  const x = explainEvent(rules(V + "[deny_path]\n/usr/bin/nc\n"), fileBlock(100, { rule_id: 9 }));
  deepStrictEqual([x.recorded_rule.exists, x.agrees], [false, false]);
  ok(/no longer exists: p.conf has no rule at line 9/.test(x.recorded_rule.message));
  ok(x.notes.some((n) => /decided now by rule 3, not by rule 9/.test(n)));
  const live = explainEvent(
    rules(V + "[deny_port]\n22\n"),
    connect("192.0.2.1", 4444, { rule_id: LIVE_RULE_ID_BASE + 4 }),
  );
  ok(/live rule 2147483652 no longer exists/.test(live.recorded_rule.message));
  ok(live.notes.some((n) => /would be allowed/.test(n)));
  const flag = explainEvent(
    rules(V),
    ev({ type: "kernel_bpf_block", action: "BLOCK", hook: "bpf", rule_id: 0 }),
  );
  ok(/\[deny_bpf\] is off/.test(flag.recorded_rule.message));
});

Deno.test("explain: a protect-only rule named by the record proves the task was unverified", () => {
  const rs = rules(V + "[protect_path]\n/etc/shadow\n");
  const x = explainEvent(rs, fileBlock(200, { rule_id: 3 }));
  deepStrictEqual([x.decision.outcome, x.agrees], ["block", true]);
  ok(x.notes.some((n) => /not verified/.test(n)));
  // another rule id: nothing proven, the outcome stays undetermined
  strictEqual(explainEvent(rs, fileBlock(200, { rule_id: 4 })).decision.outcome, "undetermined");
});

Deno.test("explain: live rules carry their id and TTL", () => {
  const rs = rules(V, [{
    id: LIVE_RULE_ID_BASE,
    map: "aegis_deny_inode",
    spec: { kind: "path", path: "/usr/bin/nc", dev: 2049, ino: "100" },
    added: 0,
    expires: 1e15,
    shadows: null,
  }]);
  const x = explainEvent(rs, fileBlock(100, { rule_id: LIVE_RULE_ID_BASE }));
  deepStrictEqual([x.recorded_rule.kind, x.agrees], ["live", true]);
  ok(
    /live rule 2147483648: block \/usr\/bin\/nc \(expires in \d+ s\)/.test(x.recorded_rule.message),
  );
});

Deno.test("explain: a live rule whose TTL ran out but that no sweep removed yet is still enforced", () => {
  const rs = rules(V, [{
    id: LIVE_RULE_ID_BASE,
    map: "aegis_deny_inode",
    spec: { kind: "path", path: "/usr/bin/nc", dev: 2049, ino: "100" },
    added: 0,
    expires: 5000,
    shadows: null,
  }]);
  const x = explainEvent(rs, fileBlock(100, { rule_id: LIVE_RULE_ID_BASE }), 65_000);
  ok(x.agrees);
  ok(
    /TTL ran out 60 s ago; it stays in the maps until the next sweep/.test(x.recorded_rule.message),
  );
});

Deno.test("explain: a deny_binary_hash record names its rule by content; another digest does not match", () => {
  const sha = "c0ffee".repeat(10) + "abcd";
  const rs = rules(V + `[deny_binary_hash]\nsha256:${sha.toUpperCase()}\n`);
  const hashBlock = (digest: string, rule_id = 3) =>
    fileBlock(555, {
      hook: "bprm_check_hash",
      path: "/tmp/copy-of-nc",
      rule_id,
      rule_type: "hash",
      sha256: digest,
    });
  const x = explainEvent(rs, hashBlock(sha));
  strictEqual(x.event.surface, "exec");
  ok(x.event.summary.includes(`sha256:${sha}`), x.event.summary);
  deepStrictEqual([x.recorded_rule.exists, x.agrees], [true, true]);
  strictEqual(x.recorded_rule.message, `p.conf:3 [deny_binary_hash] sha256:${sha}`);
  deepStrictEqual([x.decision.outcome, x.decision.rule_type, x.decision.hook], [
    "block",
    "hash",
    "bprm_check_hash",
  ]);
  ok(x.decision.chain.some((s) => s.step === "deny_binary_hash" && s.result === "match"));
  // the same record against a policy that denies other content: not decided by it now
  const other = explainEvent(
    rules(V + `[deny_binary_hash]\nsha256:${"0".repeat(64)}\n`),
    hashBlock(sha),
  );
  deepStrictEqual([other.decision.outcome, other.agrees], ["no_match", false]);
  // a malformed digest is not a replayable record
  let threw = false;
  try {
    hashBlock("xyz");
  } catch {
    threw = true;
  }
  ok(threw, "a sha256 that is not 64 lower-case hex digits is refused");
});

Deno.test("explain: an executable mapping by content (ld.so, dlopen) is decided by the hash rule, never by a comm rule", () => {
  const sha = "feed".repeat(16);
  const rs = rules(V + `[deny_binary_hash]\nsha256:${sha}\n[deny_comm]\ncopy-of-nc\n`);
  const mapBlock = (hook: string, digest: string) =>
    fileBlock(556, { hook, path: "copy-of-nc", rule_id: 3, rule_type: "hash", sha256: digest });
  for (const hook of ["mmap_file_hash", "file_mprotect_hash"]) {
    const x = explainEvent(rs, mapBlock(hook, sha));
    strictEqual(x.event.surface, "exec", hook);
    deepStrictEqual([x.decision.outcome, x.decision.rule_type, x.decision.hook, x.agrees], [
      "block",
      "hash",
      hook,
      true,
    ]);
    // another content under the name a comm rule denies: a mapping gives no comm
    const other = explainEvent(rs, mapBlock(hook, "0".repeat(64)));
    strictEqual(other.decision.outcome, "no_match", hook);
    ok(!other.decision.chain.some((s) => s.step === "deny_comm"), JSON.stringify(other.decision));
  }
});

Deno.test("explain: a mprotect record of a file never verified is decided by [deny_binary_hash] (fail closed)", () => {
  const sha = "feed".repeat(16);
  const rs = rules(V + `[deny_binary_hash]\nsha256:${sha}\n`);
  const mp = fileBlock(558, {
    hook: "file_mprotect_hash",
    path: "loader-payload",
    rule_id: 0,
    rule_type: "hash_unverified",
    sha256: "0".repeat(64),
  });
  const x = explainEvent(rs, mp);
  strictEqual(x.event.surface, "exec");
  ok(x.event.summary.includes("not verified"), x.event.summary);
  deepStrictEqual([x.recorded_rule.kind, x.recorded_rule.exists, x.agrees], ["flag", true, true]);
  ok(/^not verified: .*p\.conf:3/.test(x.recorded_rule.message), x.recorded_rule.message);
  deepStrictEqual([x.decision.outcome, x.decision.rule_type, x.decision.hook], [
    "block",
    "hash_unverified",
    "file_mprotect_hash",
  ]);
  ok(x.decision.audit.includes("AUDIT"), x.decision.audit);
  // no deny_binary_hash any more: the mprotect program checks nothing
  const gone = explainEvent(rules(V + "[deny_path]\n/usr/bin/nc\n"), mp);
  deepStrictEqual([gone.recorded_rule.exists, gone.decision.outcome, gone.agrees], [
    false,
    "no_match",
    false,
  ]);
});

Deno.test("explain: under [protect_runtime_deps] an allow or trusted list alone makes mprotect check (the kernel's aegis_id_lists)", () => {
  const sha = "a1".repeat(32);
  const mp = fileBlock(559, {
    hook: "file_mprotect_hash",
    path: "plugin.so",
    rule_id: 0,
    rule_type: "hash_unverified",
    sha256: "0".repeat(64),
  });
  const P = "[protect_path]\n/etc/shadow\n";
  for (const list of ["allow_binary_hash", "trusted_exec_hash"]) {
    // no deny_binary_hash: the check is on because of protect_runtime_deps
    const rs = rules(V + `[${list}]\nsha256:${sha}\n[protect_runtime_deps]\n` + P);
    const x = explainEvent(rs, mp);
    deepStrictEqual([x.recorded_rule.exists, x.agrees], [true, true], list);
    ok(
      /^not verified: .*\[protect_runtime_deps\] \(p\.conf:4\)/.test(x.recorded_rule.message),
      x.recorded_rule.message,
    );
    deepStrictEqual([x.decision.outcome, x.decision.rule_type, x.decision.hook], [
      "block",
      "hash_unverified",
      "file_mprotect_hash",
    ], list);
    strictEqual(x.decision.chain.find((s) => s.result === "match")?.step, "protect_runtime_deps");
    // the same list without protect_runtime_deps: mappings are not checked, so mprotect is not
    const off = explainEvent(rules(V + `[${list}]\nsha256:${sha}\n` + P), mp);
    deepStrictEqual([off.recorded_rule.exists, off.decision.outcome, off.agrees], [
      false,
      "no_match",
      false,
    ], list);
    ok(off.recorded_rule.message.includes("protect_runtime_deps"), off.recorded_rule.message);
  }
  // with a deny list too, the record names [deny_binary_hash] (the kernel checks for both)
  const both = rules(
    V + `[deny_binary_hash]\nsha256:${"f0".repeat(32)}\n[allow_binary_hash]\nsha256:${sha}\n` +
      "[protect_runtime_deps]\n" + P,
  );
  strictEqual(
    explainEvent(both, mp).decision.chain.find((s) => s.result === "match")?.step,
    "deny_binary_hash",
  );
});

Deno.test("explain: an allow_binary_hash record (not on the allowlist) is explained; a listed content is not denied by it", () => {
  const listed = "a1".repeat(32);
  const other = "b2".repeat(32);
  const rs = rules(V + `[allow_binary_hash]\nsha256:${listed}\n`);
  const unlisted = (digest: string, extra: Record<string, unknown> = {}) =>
    fileBlock(557, {
      hook: "bprm_check_hash",
      path: "/tmp/unknown-tool",
      rule_id: 0,
      rule_type: "hash_allowlist",
      sha256: digest,
      ...extra,
    });
  const x = explainEvent(rs, unlisted(other));
  strictEqual(x.event.surface, "exec");
  ok(x.event.summary.includes("not on the allowlist"), x.event.summary);
  deepStrictEqual([x.recorded_rule.kind, x.recorded_rule.exists, x.agrees], ["flag", true, true]);
  ok(
    /^not on the allowlist: .*p\.conf:3, 1 listed/.test(x.recorded_rule.message),
    x.recorded_rule.message,
  );
  deepStrictEqual([x.decision.outcome, x.decision.rule_type, x.decision.hook], [
    "block",
    "hash_allowlist",
    "bprm_check_hash",
  ]);
  const step = x.decision.chain.find((s) => s.step === "allow_binary_hash");
  strictEqual(step?.result, "match");
  ok(/is not on the allowlist/.test(step!.detail), step!.detail);
  ok(x.decision.enforce.startsWith("denied"), x.decision.enforce);
  ok(x.decision.audit.includes("AUDIT"), x.decision.audit);

  // unknown identity (sha256 all zero): denied, fail closed
  const u = explainEvent(rs, unlisted("0".repeat(64)));
  deepStrictEqual([u.decision.outcome, u.agrees], ["block", true]);
  ok(u.decision.chain.some((s) => /unknown identity/.test(s.detail)), JSON.stringify(u.decision));

  // the content listed since: the rules now let it run
  const now = explainEvent(
    rules(V + `[allow_binary_hash]\nsha256:${listed}\nsha256:${other}\n`),
    unlisted(other),
  );
  deepStrictEqual([now.decision.outcome, now.agrees], ["no_match", false]);
  ok(now.notes.some((n) => /would be allowed/.test(n)), JSON.stringify(now.notes));

  // no allowlist any more: said plainly
  const gone = explainEvent(rules(V + "[deny_path]\n/usr/bin/nc\n"), unlisted(other));
  strictEqual(gone.recorded_rule.exists, false);
  ok(/allowlist that blocked this no longer exists/.test(gone.recorded_rule.message));

  // a denied content that is also unlisted: the deny rule decides (its line)
  const both = rules(
    V + `[deny_binary_hash]\nsha256:${other}\n[allow_binary_hash]\nsha256:${listed}\n`,
  );
  const d = explainEvent(
    both,
    unlisted(other, { rule_id: 3, rule_type: "hash" }),
  );
  deepStrictEqual([d.decision.outcome, d.decision.rule_type, d.agrees], ["block", "hash", true]);

  // the mapping hooks keep only the deny list: no allowlist decision there
  const m = explainEvent(rs, unlisted(other, { hook: "mmap_file_hash" }));
  strictEqual(m.decision.outcome, "no_match");
  ok(!m.decision.chain.some((s) => s.step === "allow_binary_hash"));

  // an exec event (no digest) under an allowlist: depends on the content
  const e = explainEvent(rs, ev({ type: "exec", comm: "tool", cgroup_path: "/x" }));
  strictEqual(e.decision.outcome, "undetermined");
  ok(e.decision.unknown.some((k) => k.fact === "allowlisted"), JSON.stringify(e.decision.unknown));
});

Deno.test("explain: a trusted_exec_hash record (not trusted) is explained; fail open and fail closed; mappings under protect_runtime_deps", () => {
  const trusted = "c1".repeat(32);
  const other = "d2".repeat(32);
  const T = `[trusted_exec_hash]\nsha256:${trusted}\n`;
  const untrusted = (digest: string, extra: Record<string, unknown> = {}) =>
    fileBlock(558, {
      hook: "bprm_check_hash",
      path: "/tmp/tool",
      rule_id: 0,
      rule_type: "hash_trusted",
      sha256: digest,
      ...extra,
    });
  const rs = rules(V + T);
  const x = explainEvent(rs, untrusted(other));
  ok(x.event.summary.includes("not trusted"), x.event.summary);
  deepStrictEqual([x.recorded_rule.kind, x.recorded_rule.exists, x.agrees], ["flag", true, true]);
  ok(
    /^not trusted: .*p\.conf:3, 1 trusted\)/.test(x.recorded_rule.message),
    x.recorded_rule.message,
  );
  deepStrictEqual([x.decision.outcome, x.decision.rule_type, x.decision.hook], [
    "block",
    "hash_trusted",
    "bprm_check_hash",
  ]);
  strictEqual(x.decision.chain.find((s) => s.step === "trusted_exec_hash")?.result, "match");
  // the content trusted since: allowed now
  const now = explainEvent(rules(V + T + `sha256:${other}\n`), untrusted(other));
  deepStrictEqual([now.decision.outcome, now.agrees], ["no_match", false]);
  // no SHA-256: denied only with ima_fail_closed (the record exists only then)
  const zero = "0".repeat(64);
  const open = explainEvent(rs, untrusted(zero));
  deepStrictEqual([open.decision.outcome, open.agrees], ["no_match", false]);
  ok(open.decision.chain.some((s) => /fail open/.test(s.detail)), JSON.stringify(open.decision));
  const closed = explainEvent(rules(V + T + "[ima_fail_closed]\n"), untrusted(zero));
  deepStrictEqual([closed.decision.outcome, closed.agrees], ["block", true]);
  ok(/ima_fail_closed/.test(closed.recorded_rule.message), closed.recorded_rule.message);
  // both lists: the allowlist is asked first, the trusted list still refuses
  const both = rules(V + `[allow_binary_hash]\nsha256:${other}\n` + T);
  const b = explainEvent(both, untrusted(other));
  deepStrictEqual([b.decision.outcome, b.decision.rule_type], ["block", "hash_trusted"]);
  // a mapping: only under protect_runtime_deps
  const map = untrusted(other, { hook: "mmap_file_hash" });
  strictEqual(explainEvent(rs, map).decision.outcome, "no_match", "mappings: deny list only");
  const deps = rules(V + T + "[protect_connect]\n[protect_runtime_deps]\n");
  const m = explainEvent(deps, map);
  deepStrictEqual([m.decision.outcome, m.decision.hook, m.agrees], [
    "block",
    "mmap_file_hash",
    true,
  ]);
  // no trusted list any more
  const gone = explainEvent(rules(V + "[deny_path]\n/x\n"), untrusted(other));
  ok(/trusted list that blocked this no longer exists/.test(gone.recorded_rule.message));
});
