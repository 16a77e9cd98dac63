/**
 * VM tier: live rule edits against a running agent, the way an operator
 * types them: `block add` denies at once, `block del` allows again, a
 * `--ttl 2s` rule expires (swept by the daemon, or by the next rule
 * command when no daemon sweeps), a later `policy apply` keeps live rules,
 * `policy apply --reset` drops them, `network deny add --ip` blocks connect.
 * Works whether the edits go through the daemon's control socket or (not
 * wired yet) straight to the pinned maps.
 */
import { match, strictEqual } from "node:assert/strict";
import { AGENT, Agent, agentEnv, cleanupAgent, flowTestName, onFlowKernel } from "../lib/agent.ts";
import { run, tryOpen } from "../lib/helpers.ts";

const LSM_ON = Deno.env.get("AEGIS_VM_LSM") === "on";
const KERNEL = "6.12"; // a flow test: one cell runs it (balances the 6.1 cell's flows)

async function tryConnect(hostname: string, port: number): Promise<string> {
  try {
    (await Deno.connect({ hostname, port })).close();
    return "ok";
  } catch (e) {
    return /os error 1\)|EPERM|Operation not permitted|PermissionDenied/.test(String(e))
      ? "EPERM"
      : String(e);
  }
}

Deno.test({
  name: flowTestName(
    "live rules: block add/del, TTL expiry, carried by policy apply, dropped by --reset, network deny",
    KERNEL,
  ),
  ignore: !LSM_ON || !onFlowKernel(KERNEL),
  fn: async () => {
    const e = agentEnv();
    const { dir, env } = e;
    const f = (n: string) => `${dir}/${n}`;
    for (const n of ["a", "b", "t"]) Deno.writeTextFileSync(f(n), n);
    const agent = new Agent([], env);
    const cli = async (...args: string[]) => {
      const r = await run(AGENT, args, env);
      strictEqual(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
      return r.stdout;
    };
    // the guest has loopback only (127.0.0.1; no ::1 in every guest)
    const l4 = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const p4 = (l4.addr as Deno.NetAddr).port;
    const accepting = (async () => {
      for await (const c of l4) c.close();
    })();
    try {
      await agent.ready();
      match(agent.err, /agent started, ENFORCE/);

      match(await cli("block", "add", f("a")), /added live rule 2147483648: /);
      strictEqual(tryOpen(f("a")), "EPERM/EACCES", "block add denies at once");
      match(await cli("block", "list"), /live\s+2147483648\s+-\s+.*\/a /);
      await cli("block", "del", f("a"));
      strictEqual(tryOpen(f("a")), "ok", "block del allows again");

      // the reply waits for the rule's verification (a fork under TCG): room for it in the TTL
      match(await cli("block", "add", "--ttl", "6s", f("t")), /expires in 6 s/);
      strictEqual(tryOpen(f("t")), "EPERM/EACCES");
      await new Promise((r) => setTimeout(r, 6500));
      // the daemon sweeps every second once wired; without it the next rule command does
      const listed = await cli("block", "list");
      strictEqual(tryOpen(f("t")), "ok", `the TTL rule expired (list said: ${listed})`);

      // a live rule survives a policy apply, --reset drops it
      await cli("block", "add", f("b"));
      Deno.writeTextFileSync(f("p.pol"), `version=1\n[deny_path]\n${f("a")}\n`);
      match(await cli("policy", "apply", f("p.pol")), /1 live rule\(s\) carried over/);
      strictEqual(tryOpen(f("a")), "EPERM/EACCES", "policy denies a");
      strictEqual(tryOpen(f("b")), "EPERM/EACCES", "live rule kept across apply");
      match(await cli("block", "list"), /policy\s+3\s+-\s+line 3: /);
      match(
        await cli("policy", "apply", "--reset", f("p.pol")),
        /--reset: 1 live rule\(s\) dropped/,
      );
      strictEqual(tryOpen(f("b")), "ok", "--reset dropped the live rule");
      strictEqual(tryOpen(f("a")), "EPERM/EACCES", "the policy still denies a");

      // network: --ip blocks connect to that address only
      await cli("network", "deny", "add", "--ip", "192.0.2.7");
      strictEqual(await tryConnect("127.0.0.1", p4), "ok", "another address is unaffected");
      await cli("network", "deny", "add", "--ip", "127.0.0.1", "--ttl", "10m");
      strictEqual(await tryConnect("127.0.0.1", p4), "EPERM", "network deny --ip blocks");
      match(await cli("network", "deny", "list"), /live\s+\d+\s+\d+s\s+ip 127\.0\.0\.1/);
      await cli("network", "deny", "del", "--ip", "127.0.0.1");
      strictEqual(await tryConnect("127.0.0.1", p4), "ok", "network deny del allows again");
      await cli("network", "deny", "del", "--ip", "192.0.2.7");
    } finally {
      l4.close();
      await accepting.catch(() => {});
      await cleanupAgent(agent, e);
    }
  },
});
