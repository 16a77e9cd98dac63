import { deepStrictEqual, match, ok, strictEqual } from "node:assert/strict";
import { encodeBase64 } from "../util/bytes.ts";
import type { PolicyApplyReport } from "../policy/apply.ts";
import { fakeApplyDeps, fakeMaps, fakeResolvePath } from "../policy/fake_maps_testing.ts";
import { type LiveRule, LiveRules } from "../policy/live.ts";
import type { RuleVerification } from "../proof/verify.ts";
import { createPolicyRoutes } from "./policy_routes.ts";
import { createRuleRoutes } from "./rule_routes.ts";

function setup(verify?: () => Promise<RuleVerification | null>) {
  const dir = Deno.makeTempDirSync();
  const fm = fakeMaps();
  let now = 0;
  const resolvePath = fakeResolvePath();
  const live = new LiveRules({
    maps: fm.maps,
    storePath: `${dir}/live_rules.json`,
    now: () => now,
    resolvePath,
    resolveCgroup: () => null,
    ownerUid: Deno.statSync(dir).uid!,
  });
  const changes: string[] = [];
  const callers: unknown[] = [];
  const expired: LiveRule[] = [];
  const rules = createRuleRoutes({
    live,
    policyText: () => "",
    onChange: (c) => {
      changes.push(`${c.action} ${c.rule.id}`);
      callers.push(c.caller);
    },
    onExpired: (r) => expired.push(...r),
    verify,
  });
  const applied: PolicyApplyReport[] = [];
  const policy = createPolicyRoutes({
    apply: {
      maps: fm.maps,
      stateDir: dir,
      keysDir: `${dir}/keys`,
      compileEnv: { resolvePath, resolveCgroup: () => null },
      live,
    },
    onApplied: (r, caller) => {
      applied.push(r);
      callers.push(caller);
    },
    verify,
  });
  return {
    fm,
    rules,
    policy,
    changes,
    callers,
    expired,
    applied,
    tick: (ms: number) => (now += ms),
  };
}

const json = (method: string, body: unknown) => ({
  method,
  headers: { "content-type": "application/json" },
  body: JSON.stringify(body),
});

Deno.test("rule routes: add, list, TTL sweep reported, del, errors as {error, code}", async () => {
  const s = setup();
  let r = await s.rules.request(
    "/",
    json("POST", { rule: { kind: "ip", ip: "10.0.0.1" }, ttl_seconds: 2 }),
  );
  strictEqual(r.status, 200);
  const added = await r.json();
  strictEqual(added.rule.spec.ip, "10.0.0.1");
  r = await s.rules.request("/", json("POST", { rule: { kind: "port", port: 22 } }));
  strictEqual(r.status, 200);
  r = await s.rules.request("/?group=network");
  deepStrictEqual((await r.json()).rules.map((x: { rule: string }) => x.rule), [
    "ip 10.0.0.1",
    "port 22:any:egress",
  ]);
  s.tick(2000);
  r = await s.rules.request("/?group=network");
  const listed = await r.json();
  deepStrictEqual(listed.expired.map((x: LiveRule) => x.id), [added.rule.id]);
  deepStrictEqual(s.expired.map((x) => x.id), [added.rule.id]);
  strictEqual(listed.rules.length, 1);
  r = await s.rules.request("/", json("DELETE", { rule: { kind: "port", port: 22 } }));
  strictEqual(r.status, 200);
  strictEqual(s.fm.get("aegis_deny_port").data.size, 0);
  strictEqual(s.changes.length, 3);
  // errors
  r = await s.rules.request("/", json("DELETE", { rule: { kind: "port", port: 22 } }));
  strictEqual(r.status, 404);
  strictEqual((await r.json()).code, "NOT_FOUND");
  r = await s.rules.request("/", json("POST", { rule: { kind: "ip", ip: "10.0.0.300" } }));
  strictEqual(r.status, 400);
  const bad = await r.json();
  strictEqual(bad.code, "USAGE");
  match(bad.error, /10\.0\.0\.300/);
  r = await s.rules.request("/", json("POST", { rule: { kind: "nope" } }));
  strictEqual(r.status, 400);
  r = await s.rules.request("/", json("POST", { rule: { kind: "ip", ip: "1.1.1.1" }, extra: 1 }));
  strictEqual(r.status, 400);
  r = await s.rules.request("/?group=everything");
  strictEqual(r.status, 400);
});

Deno.test("policy routes: apply (base64), rejected policy with issues, show", async () => {
  const s = setup();
  const b64 = (t: string) => encodeBase64(new TextEncoder().encode(t));
  let r = await s.policy.request(
    "/apply",
    json("POST", { file: "p.pol", policy_b64: b64("version=1\n[deny_path]\n/a\n/missing/z\n") }),
  );
  strictEqual(r.status, 200);
  const rep = await r.json();
  deepStrictEqual(rep.unresolved.map((u: { what: string }) => u.what), ["/missing/z"]);
  strictEqual(s.applied.length, 1);
  r = await s.policy.request(
    "/apply",
    json("POST", { file: "bad.pol", policy_b64: b64("version=9\n") }),
  );
  strictEqual(r.status, 400);
  const bad = await r.json();
  strictEqual(bad.code, "POLICY_INVALID");
  match(bad.issues[0], /^bad\.pol:1: error: unsupported version/);
  strictEqual(s.applied.length, 1);
  r = await s.policy.request("/show");
  const show = await r.json();
  strictEqual(show.rule_entries.aegis_deny_inode, 1);
  ok(show.policy.includes("/missing/z"));
});

Deno.test("routes: the caller is the kernel peer from env, unknown without it; headers are ignored", async () => {
  const s = setup();
  const b64 = (t: string) => encodeBase64(new TextEncoder().encode(t));
  const peer = { uid: 0, pid: 777, gid: 0 };
  const claim = { "x-aegis-caller-uid": "1000", "x-aegis-caller-pid": "1" };
  const withClaim = (init: RequestInit) => ({
    ...init,
    headers: { ...init.headers as Record<string, string>, ...claim },
  });
  let r = await s.rules.request(
    "/",
    withClaim(json("POST", { rule: { kind: "port", port: 22 } })),
    { peer, remote: "unix" },
  );
  strictEqual(r.status, 200);
  r = await s.rules.request("/", withClaim(json("DELETE", { rule: { kind: "port", port: 22 } })));
  strictEqual(r.status, 200);
  r = await s.policy.request(
    "/apply",
    json("POST", { file: "p.pol", policy_b64: b64("version=1\n[deny_path]\n/a\n") }),
    { peer: { uid: 0, pid: 778, gid: 0 } },
  );
  strictEqual(r.status, 200);
  deepStrictEqual(s.callers, [
    { uid: 0, pid: 777, gid: 0, source: "kernel" },
    { uid: -1, pid: -1, gid: -1, source: "unknown" },
    { uid: 0, pid: 778, gid: 0, source: "kernel" },
  ]);
});

Deno.test("policy apply: a 10 MB, 5M-deep JSON body is 400 JSON_TOO_DEEP before parsing", async () => {
  const s = setup();
  const n = 5_000_000;
  const body = new Uint8Array(2 * n);
  body.fill(0x5b, 0, n);
  body.fill(0x5d, n);
  const r = await s.policy.request("/apply", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body,
  });
  strictEqual(r.status, 400);
  const e = await r.json();
  strictEqual(e.code, "JSON_TOO_DEEP");
  match(e.error, /limit is 64/);
  strictEqual(s.applied.length, 0);
});

Deno.test("verified apply: apply and block add reply after verify(), with its result; dry run and no verifier", async () => {
  const calls: string[] = [];
  const result: RuleVerification = {
    round: { tried: 1, fresh: 1, denied: 0, unenforced: 1, skipped: 0, inconclusive: 0, rules: 1 },
    unenforced: [{ rule_id: 3, surface: "file", target: "/a", reason: "opened" }],
    error: null,
  };
  const s = setup(() => {
    calls.push(`verify after ${s.applied.length} apply(s), ${s.changes.length} change(s)`);
    return Promise.resolve(result);
  });
  const b64 = (t: string) => encodeBase64(new TextEncoder().encode(t));
  const r = await s.policy.request(
    "/apply",
    json("POST", { file: "p.pol", policy_b64: b64("version=1\n[deny_path]\n/a\n") }),
  );
  strictEqual(r.status, 200);
  deepStrictEqual((await r.json()).verification, result);
  const dry = await s.policy.request(
    "/apply",
    json("POST", { file: "p.pol", policy_b64: b64("version=1\n"), dry_run: true }),
  );
  strictEqual((await dry.json()).verification, undefined, "a dry run proves nothing");
  const add = await s.rules.request("/", json("POST", { rule: { kind: "path", path: "/b" } }));
  strictEqual(add.status, 200);
  deepStrictEqual((await add.json()).verification, result);
  deepStrictEqual(calls, [
    "verify after 1 apply(s), 0 change(s)",
    "verify after 1 apply(s), 1 change(s)",
  ]);
  const plain = setup();
  const r2 = await plain.policy.request(
    "/apply",
    json("POST", { file: "p.pol", policy_b64: b64("version=1\n[deny_path]\n/a\n") }),
  );
  strictEqual((await r2.json()).verification, null, "no verifier: null");
});

Deno.test("POST /policy/apply with canary: watched, rolled back, announced; bad canary bodies are 400", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const { fm, deps: apply } = fakeApplyDeps(dir);
    let n = 0;
    const outcomes: string[] = [];
    const applied: string[] = [];
    const app = createPolicyRoutes({
      apply,
      canaryCount: () => (n += 500),
      onCanary: (c) => outcomes.push(c.outcome),
      onApplied: (r) => applied.push(r.file),
    });
    const post = (body: Record<string, unknown>, a = app) =>
      a.request("/apply", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          file: "p.conf",
          policy_b64: encodeBase64(new TextEncoder().encode("version=1\n[deny_path]\n/a\n")),
          ...body,
        }),
      });
    const r = await post({ canary: { window_s: 1, threshold_per_s: 10 } });
    strictEqual(r.status, 200);
    const b = await r.json();
    deepStrictEqual([b.canary.outcome, b.canary.crossed, b.verification], [
      "rolled_back",
      true,
      null,
    ]);
    deepStrictEqual(outcomes, ["rolled_back"]);
    deepStrictEqual(applied, ["p.conf", "(no policy: empty)"]);
    strictEqual(fm.get("aegis_deny_inode").data.size, 0);
    for (
      const canary of [
        { window_s: 0, threshold_per_s: 1 },
        { window_s: 3601, threshold_per_s: 1 },
        { window_s: 5, threshold_per_s: -1 },
        JSON.parse('{"window_s":5,"threshold_per_s":1,"__proto__":1}'),
        { window_s: 5 },
        "5s",
      ]
    ) {
      const e = await post({ canary });
      strictEqual(e.status, 400, JSON.stringify(canary));
    }
    const reset = await post({ canary: { window_s: 5, threshold_per_s: 1 }, reset: true });
    strictEqual(reset.status, 400);
    match((await reset.json()).error, /--reset/);
    const noCount = createPolicyRoutes({ apply });
    strictEqual((await post({ canary: { window_s: 1, threshold_per_s: 1 } }, noCount)).status, 400);
    deepStrictEqual(outcomes, ["rolled_back"], "no other canary ran");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
