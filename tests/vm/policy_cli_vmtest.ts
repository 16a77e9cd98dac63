/**
 * VM tier: policies applied through the CLI to a running agent, the way an
 * operator does it: `policy apply` of a file and of a signed bundle, a
 * rejected policy changing nothing, anti-rollback, `policy show`.
 */
import { match, ok, strictEqual } from "node:assert/strict";
import {
  AGENT,
  Agent,
  agentEnv,
  cleanupAgent,
  flowTestName,
  ON_FLOW_KERNEL,
} from "../lib/agent.ts";
import { run, tryOpen } from "../lib/helpers.ts";

const LSM_ON = Deno.env.get("AEGIS_VM_LSM") === "on";

Deno.test({
  name: flowTestName(
    "policy apply to a running agent: files, bundles, rejection, rollback refusal, rollback, export",
  ),
  ignore: !LSM_ON || !ON_FLOW_KERNEL,
  fn: async () => {
    const e = agentEnv();
    const { dir, stateDir } = e;
    const env = { ...e.env, AEGIS_KEYS_DIR: `${dir}/keys` };
    const f = (n: string) => `${dir}/${n}`;
    for (const n of ["a", "b"]) Deno.writeTextFileSync(f(n), n);
    const agent = new Agent([], env);
    const cli = (...args: string[]) => run(AGENT, args, env);
    try {
      await agent.ready();
      match(agent.err, /agent started, ENFORCE/);

      Deno.writeTextFileSync(f("p1.pol"), `version=1\n[deny_path]\n${f("a")}\n${f("later")}\n`);
      const a1 = await cli("policy", "apply", f("p1.pol"));
      strictEqual(a1.code, 0, a1.stderr);
      match(a1.stdout, /applied \(generation \d -> \d/);
      match(a1.stdout, /unresolved deny_path line 4: .*later: does not exist/);
      strictEqual(tryOpen(f("a")), "EPERM/EACCES", "p1 denies a");
      strictEqual(tryOpen(f("b")), "ok");

      // a policy with an error changes nothing
      Deno.writeTextFileSync(f("bad.pol"), `version=1\n[deny_path]\n${f("b")}\nrelative\n`);
      const bad = await cli("policy", "apply", f("bad.pol"));
      strictEqual(bad.code, 1);
      match(bad.stderr, /bad\.pol:4: error: .*must be absolute/);
      strictEqual(tryOpen(f("a")), "EPERM/EACCES", "p1 still enforcing");
      strictEqual(tryOpen(f("b")), "ok", "nothing of the bad policy applied");

      // signed bundles: keygen, trust, sign, apply with --require-signature
      Deno.mkdirSync(`${dir}/keys`, { mode: 0o755 });
      strictEqual((await cli("keys", "keygen", "--out", f("signer"))).code, 0);
      strictEqual((await cli("keys", "add", f("signer.pub"))).code, 0);
      Deno.writeTextFileSync(f("p2.pol"), `version=1\n[deny_path]\n${f("b")}\n`);
      const unsigned = await cli("policy", "apply", "--require-signature", f("p2.pol"));
      strictEqual(unsigned.code, 1);
      match(unsigned.stderr, /BUNDLE_REQUIRED/);
      for (const [v, out] of [["20", "p2.b20"], ["10", "p2.b10"]]) {
        const s = await cli(
          "policy",
          "sign",
          f("p2.pol"),
          "--key",
          f("signer.key"),
          "--output",
          f(out),
          "--policy-version",
          v,
        );
        strictEqual(s.code, 0, s.stderr);
      }
      const a2 = await cli("policy", "apply", "--require-signature", f("p2.b20"));
      strictEqual(a2.code, 0, a2.stderr);
      strictEqual(tryOpen(f("b")), "EPERM/EACCES", "p2 denies b");
      strictEqual(tryOpen(f("a")), "ok", "p2 replaced p1");
      const old = await cli("policy", "apply", "--require-signature", f("p2.b10"));
      strictEqual(old.code, 1, "an older policy_version is refused");
      match(old.stderr, /BUNDLE_ROLLBACK/);

      const show = await cli("policy", "show");
      strictEqual(show.code, 0, show.stderr);
      match(show.stdout, /aegis_deny_inode: 1/);
      ok(
        Deno.readTextFileSync(`${stateDir}/policy.prev`).includes(f("a")),
        "previous policy kept",
      );

      // rollback: the previous policy (p1) again; export prints the applied one
      const rb = await cli("policy", "rollback");
      strictEqual(rb.code, 0, rb.stderr);
      strictEqual(tryOpen(f("a")), "EPERM/EACCES", "rollback: p1 denies a again");
      strictEqual(tryOpen(f("b")), "ok", "rollback: p2's rule is gone");
      const ex = await cli("policy", "export");
      strictEqual(ex.code, 0, ex.stderr);
      ok(ex.stdout.includes(f("a")) && !ex.stdout.includes(f("b")), ex.stdout);
    } finally {
      await cleanupAgent(agent, e);
    }
  },
});
