/**
 * Host tier (root): kill -9 during live rule edits, many times, at random
 * points — the process editing the pinned maps itself (as `block add`
 * without a daemon does), and the daemon doing edits asked over its control
 * socket. After every kill:
 *
 * - live_rules.json parses and passes its schema (it is replaced atomically);
 * - every disagreement between the maps and the store belongs to an edit the
 *   store marks as in progress (`state`), and nothing else;
 * - the documented recovery (the next rule command's sweep; the restarted
 *   daemon's) makes them agree exactly (LiveRules.consistency() is empty).
 *
 * The numbers of kills that landed inside an edit are printed. Rounds:
 * AEGIS_KILL_ROUNDS (default 20), AEGIS_KILL_DAEMON_ROUNDS (default 6).
 */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { openEmbeddedShim } from "../../src/assets/mod.ts";
import { PinnedMaps } from "../../src/bpf/pins.ts";
import { daemonRequest } from "../../src/control/client.ts";
import { LiveRules } from "../../src/policy/live.ts";
import { Agent, type AgentEnv, agentEnv, cleanupAgent } from "../lib/agent.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const KILLS_DIRECT = Number(Deno.env.get("AEGIS_KILL_ROUNDS") ?? 20);
const KILLS_DAEMON = Number(Deno.env.get("AEGIS_KILL_DAEMON_ROUNDS") ?? 6);
/** Enforcing with pins on any host: the signal fallback when BPF LSM cannot load. */
const AGENT_ARGS = ["--enforce-fallback=signal"];

/** Edits the pinned maps in a loop, add or del at random, until killed. */
const EDITOR = `
import { openLocal } from "${ROOT}src/cli/policy.ts";
const files = Deno.args;
using local = await openLocal();
Deno.stdout.writeSync(new TextEncoder().encode("ready\\n"));
for (;;) {
  const f = files[Math.floor(Math.random() * files.length)];
  const have = local.live.rules().some((r) => r.spec.kind === "path" && r.spec.path === f);
  try {
    if (have) local.live.del({ kind: "path", path: f });
    else local.live.add({ kind: "path", path: f }, Math.random() < 0.3 ? 1 : null);
  } catch (e) {
    console.error(String(e));
  }
}
`;

function note(text: string): void {
  Deno.stderr.writeSync(new TextEncoder().encode(`  ${text}\n`));
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** The store and maps as the next process sees them, checked; then recovered and checked. */
async function checkAfterKill(e: AgentEnv, recover: () => Promise<void>): Promise<boolean> {
  using shim = await openEmbeddedShim();
  using pins = new PinnedMaps(shim, e.pinRoot);
  const live = new LiveRules({
    maps: (n) => pins.map(n),
    storePath: `${e.stateDir}/live_rules.json`,
    resolveCgroup: () => null,
  });
  const rules = live.rules(); // throws LIVE_STORE_INVALID if it does not parse
  const pending = rules.filter((r) => r.state !== undefined).map((r) => String(r.id));
  const problems = live.consistency();
  for (const p of problems) {
    ok(
      pending.some((id) => p.includes(id)),
      `after kill -9, "${p}" is not covered by an edit in progress (${pending.join(", ")})`,
    );
  }
  await recover();
  deepStrictEqual(live.consistency(), [], "maps and store agree after recovery");
  ok(live.rules().every((r) => r.state === undefined));
  return pending.length > 0;
}

function makeFiles(e: AgentEnv, n: number): string[] {
  const files = [];
  for (let i = 0; i < n; i++) {
    const f = `${e.dir}/f${i}`;
    Deno.writeTextFileSync(f, String(i));
    files.push(f);
  }
  return files;
}

Deno.test({
  name: "kill -9 of a process editing the pinned maps: the store parses, the next command recovers",
  sanitizeResources: false,
  fn: async () => {
    const e = agentEnv();
    let agent: Agent | null = new Agent(AGENT_ARGS, e.env);
    try {
      await agent.ready();
      await agent.stop(); // the pins stay; edits now go to them directly
      agent = null;
      const files = makeFiles(e, 6);
      const script = `${e.dir}/editor.ts`;
      Deno.writeTextFileSync(script, EDITOR);
      let midEdit = 0;
      for (let i = 0; i < KILLS_DIRECT; i++) {
        const child = new Deno.Command(Deno.execPath(), {
          args: ["run", "-A", "--no-check", "--config", `${ROOT}deno.json`, script, ...files],
          env: e.env,
          stdout: "piped",
          stderr: "piped",
        }).spawn();
        const reader = child.stdout.getReader();
        const first = await reader.read();
        if (new TextDecoder().decode(first.value) !== "ready\n") {
          const err = await new Response(child.stderr).text();
          throw new Error(`the editor did not start: ${err}`);
        }
        void child.stderr.cancel();
        await sleep(Math.random() * 150);
        child.kill("SIGKILL");
        reader.releaseLock();
        await child.stdout.cancel();
        strictEqual((await child.status).signal, "SIGKILL");
        // recovery: what the next `block add|del|list` does first (sweep)
        const hit = await checkAfterKill(e, async () => {
          const r = await new Deno.Command(`${ROOT}scripts/aegisbpf`, {
            args: ["block", "list", "--json"],
            env: e.env,
            stdout: "piped",
            stderr: "piped",
          }).output();
          strictEqual(r.code, 0, new TextDecoder().decode(r.stderr));
        });
        if (hit) midEdit++;
      }
      note(`${midEdit} of ${KILLS_DIRECT} kills left an edit in progress`);
    } finally {
      await cleanupAgent(agent, e);
    }
  },
});

Deno.test({
  name: "kill -9 of the daemon during live edits over the socket: the restarted daemon recovers",
  fn: async () => {
    const e = agentEnv();
    let agent: Agent | null = null;
    try {
      const files = makeFiles(e, 6);
      let midEdit = 0;
      let edits = 0;
      for (let i = 0; i < KILLS_DAEMON; i++) {
        agent = new Agent(AGENT_ARGS, e.env);
        await agent.ready();
        const a = agent;
        let stop = false;
        const listed = await daemonRequest("GET", "/rules?group=block", undefined, e.socket);
        const present = new Set<string>();
        for (const r of (listed?.body as { rules: { rule: string }[] }).rules) {
          for (const f of files) if (r.rule.startsWith(`${f} `)) present.add(f);
        }
        // three clients at once, each on its own two files: the daemon is busy editing
        const editor = async (mine: string[]) => {
          while (!stop) {
            const f = mine[Math.floor(Math.random() * mine.length)];
            const del = present.has(f);
            let r;
            try {
              r = await daemonRequest(del ? "DELETE" : "POST", "/rules", {
                rule: { kind: "path", path: f },
              }, e.socket);
            } catch {
              return; // the daemon died mid-reply
            }
            if (r === null) return;
            if (r.status === 200) {
              edits++;
              if (del) present.delete(f);
              else present.add(f);
            }
          }
        };
        const editing = Promise.all([0, 2, 4].map((k) => editor(files.slice(k, k + 2))));
        await sleep(50 + Math.random() * 300);
        a.proc.kill("SIGKILL");
        strictEqual((await a.exit()).signal, "SIGKILL");
        stop = true;
        await editing;
        agent = null;
        const hit = await checkAfterKill(e, async () => {
          // the restarted daemon recovers at its first sweep; a rule request sweeps first
          agent = new Agent(AGENT_ARGS, e.env);
          await agent.ready();
          const r = await daemonRequest("GET", "/rules?group=block", undefined, e.socket);
          strictEqual(r?.status, 200);
          await agent.stop();
          agent = null;
        });
        if (hit) midEdit++;
      }
      note(`${midEdit} of ${KILLS_DAEMON} daemon kills left an edit in progress (${edits} edits)`);
    } finally {
      await cleanupAgent(agent, e);
    }
  },
});
