/**
 * Host tier (root): kill -9 of the daemon while it applies a large policy.
 * An agent (signal fallback: it pins on any host) enforces a small policy A;
 * `policy apply B` (20,000 paths) is sent and the daemon is killed at points
 * spread over the apply's measured duration. After each kill the restarted
 * agent — which compares the re-adopted maps with its stored state — holds
 * exactly A or exactly B, and `policy show` and capabilities.json name the
 * same one. A CLI that got its reply (exit 0) saw B become the stored state;
 * one whose connection broke says OUTCOME_UNKNOWN (exit 3) and never falls
 * back to a local apply.
 */
import { ok, strictEqual } from "node:assert/strict";
import { AGENT, Agent, agentEnv, cleanupAgent, type Json } from "../lib/agent.ts";
import { run } from "../lib/helpers.ts";

const AGENT_ARGS = ["--enforce-fallback=signal"];
const BIG = 20_000;

function note(text: string): void {
  Deno.stderr.writeSync(new TextEncoder().encode(`  ${text}\n`));
}

async function sha256(path: string): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", Deno.readFileSync(path)));
  return Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test({
  name:
    "kill -9 of the daemon during a large policy apply: the restart holds exactly the old or the new policy, and says which",
  fn: async () => {
    const e = agentEnv();
    const f = (n: string) => `${e.dir}/${n}`;
    let agent: Agent | null = null;
    try {
      Deno.mkdirSync(f("big"));
      const big = ["version=1", "[deny_path]"];
      for (let i = 0; i < BIG; i++) {
        Deno.writeTextFileSync(f(`big/${i}`), "");
        big.push(f(`big/${i}`));
      }
      Deno.writeTextFileSync(f("B.conf"), big.join("\n") + "\n");
      for (const n of ["a1", "a2", "a3"]) Deno.writeTextFileSync(f(n), n);
      Deno.writeTextFileSync(
        f("A.conf"),
        `version=1\n[deny_path]\n${f("a1")}\n${f("a2")}\n${f("a3")}\n`,
      );
      const shaA = await sha256(f("A.conf"));
      const shaB = await sha256(f("B.conf"));
      const cli = (...args: string[]) => run(AGENT, args, e.env);
      const applyA = async () => strictEqual((await cli("policy", "apply", f("A.conf"))).code, 0);
      /** What the restarted agent holds, by every account; they must agree. */
      const holds = async (): Promise<"A" | "B"> => {
        const show = await cli("policy", "show", "--json");
        strictEqual(show.code, 0, show.stderr);
        const n = JSON.parse(show.stdout).rule_entries.aegis_deny_inode;
        ok(n === 3 || n === BIG, `the maps hold exactly A (3) or B (${BIG}) entries, not ${n}`);
        const which = n === 3 ? "A" : "B";
        const report: Json = JSON.parse(Deno.readTextFileSync(e.report));
        strictEqual(report.policy.sha256, which === "A" ? shaA : shaB, "capabilities.json agrees");
        strictEqual(await sha256(`${e.stateDir}/policy.applied`), which === "A" ? shaA : shaB);
        return which;
      };

      agent = new Agent(AGENT_ARGS, e.env);
      await agent.ready();
      await applyA();
      // how long B takes here: the kills are spread over it
      const t0 = performance.now();
      strictEqual((await cli("policy", "apply", f("B.conf"))).code, 0);
      const applyMs = performance.now() - t0;
      await applyA();
      const outcomes: string[] = [];
      for (const frac of [0.15, 0.4, 0.65, 0.9, 1.2]) {
        const a: Agent = agent!;
        const sending = cli("policy", "apply", f("B.conf"));
        await new Promise((r) => setTimeout(r, applyMs * frac));
        a.proc.kill("SIGKILL");
        await a.exit();
        const sent = await sending;
        agent = new Agent(AGENT_ARGS, e.env);
        await agent.ready();
        const which = await holds();
        if (sent.code === 0) strictEqual(which, "B", "a CLI told 'applied' means B is kept");
        else if (/DAEMON_GONE/.test(sent.stderr)) {
          // killed while the CLI connected: nothing was sent, so A must still hold
          strictEqual(sent.code, 1, sent.stderr);
          strictEqual(which, "A", "a request never sent changed nothing");
          ok(!/NOT_RUNNING/.test(sent.stderr + sent.stdout), "no local fallback");
        } else {
          strictEqual(sent.code, 3, `a broken apply is "outcome unknown": ${sent.stderr}`);
          ok(/OUTCOME_UNKNOWN.*Nothing was tried locally/s.test(sent.stderr), sent.stderr);
          ok(!/NOT_RUNNING/.test(sent.stderr + sent.stdout), "no local fallback");
        }
        if (/repaired/.test(agent.err)) outcomes.push(`${frac}: ${which}, repaired`);
        else outcomes.push(`${frac}: ${which}`);
        if (which === "B") await applyA();
      }
      note(
        `apply of ${BIG} paths: ${Math.round(applyMs)} ms; kill at fraction → held: ${
          outcomes.join("; ")
        }`,
      );
    } finally {
      await cleanupAgent(agent, e);
    }
  },
});
