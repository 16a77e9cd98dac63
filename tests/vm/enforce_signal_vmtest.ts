/**
 * VM tier: `run --enforce-signal` and `--kill-escalation` (docs/engine.md,
 * "A signal with the deny").
 *
 * lsm-on, one agent with `--enforce-signal term --kill-escalation
 * --kill-escalation-threshold 3`: a child that opens a denied file is
 * terminated by SIGTERM (block event action TERM); a child that ignores
 * SIGTERM and keeps trying gets EPERM twice and is SIGKILLed at its third
 * deny (actions TERM, TERM, KILL); other files open; emergency disable
 * signals nothing (AUDIT); the signals are counted; the enforcement proof
 * (its probes are denied, never signalled) keeps the agent in ENFORCE and
 * /health?require_enforce=1 at 200. Then the same pins under an agent
 * started without the options (the default, none): EPERM only, nothing
 * signalled.
 *
 * The test process itself never opens the denied file: it would be signalled.
 */
import { deepStrictEqual, match, ok, strictEqual } from "node:assert/strict";
import { openEmbeddedShim } from "../../src/assets/mod.ts";
import { AEGIS_CFG_EMERGENCY_DISABLE } from "../../src/bpf/abi_gen.ts";
import { PinnedMaps } from "../../src/bpf/pins.ts";
import { Agent, agentEnv, cleanupAgent, httpGet, type Json } from "../lib/agent.ts";

const LSM_ON = Deno.env.get("AEGIS_VM_LSM") === "on";

/** Opens argv[1] argv[2] times, one line per try: "ok" or the errno's name. */
const OPENER = `
import errno, os, signal, sys
if sys.argv[3] == "1":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
for _ in range(int(sys.argv[2])):
    try:
        os.close(os.open(sys.argv[1], os.O_RDONLY))
        print("ok", flush=True)
    except OSError as e:
        print(errno.errorcode.get(e.errno, str(e.errno)), flush=True)
`;

interface Opened {
  pid: number;
  lines: string[];
  signal: Deno.Signal | null;
  code: number;
}

/** A python child that opens `path` `n` times (ignoring SIGTERM when asked). */
async function opener(path: string, n: number, ignoreTerm = false): Promise<Opened> {
  const child = new Deno.Command("/usr/bin/python3", {
    args: ["-c", OPENER, path, String(n), ignoreTerm ? "1" : "0"],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const out = await child.output();
  const lines = new TextDecoder().decode(out.stdout).split("\n").filter((l) => l !== "");
  return { pid: child.pid, lines, signal: out.signal, code: out.code };
}

/** The block events of process `pid`, in order. */
function blocksOf(agent: Agent, pid: number): Json[] {
  return agent.events().filter((e) => e.type === "block" && e.pid === pid);
}

/** One sample of the agent's /metrics?detailed=1. */
async function metric(port: number, name: string): Promise<number> {
  const r = await httpGet(port, "/metrics?detailed=1");
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+)$`, "m").exec(String(r.body));
  if (!m) throw new Error(`${name} not in /metrics`);
  return Number(m[1]);
}

async function setEmergency(pinRoot: string, on: boolean): Promise<void> {
  using shim = await openEmbeddedShim();
  using pins = new PinnedMaps(shim, pinRoot);
  pins.map("aegis_config").setU64(AEGIS_CFG_EMERGENCY_DISABLE, on ? 1n : 0n);
}

Deno.test({
  name: "run --enforce-signal term with kill escalation: TERM, then KILL at the 3rd deny; " +
    "the proof stays ENFORCE; the default (none) only denies",
  ignore: !LSM_ON,
  fn: async () => {
    const e = agentEnv();
    const { dir, env, port, pinRoot } = e;
    const secret = `${dir}/secret`;
    const other = `${dir}/other`;
    Deno.writeTextFileSync(secret, "secret");
    Deno.writeTextFileSync(other, "other");
    const pol = `${dir}/p.pol`;
    Deno.writeTextFileSync(pol, `version=1\n[deny_path]\n${secret}\n`);
    let agent: Agent | null = new Agent([
      "--policy",
      pol,
      "--enforce-signal",
      "term",
      "--kill-escalation",
      "--kill-escalation-threshold",
      "3",
      "--proof-interval",
      "5",
    ], env);
    try {
      await agent.ready();
      match(agent.err, /agent started, ENFORCE/);
      match(
        agent.err,
        /a denied process is also sent SIGTERM; SIGKILL instead at its deny number 3 within 30 s/,
      );

      // 1. a plain child: EPERM, and SIGTERM ends it before it returns to user space
      const t = await opener(secret, 1);
      strictEqual(t.signal, "SIGTERM", `terminated by SIGTERM: ${JSON.stringify(t)}`);
      deepStrictEqual(t.lines, [], "it never saw the open's answer");
      const a = agent;
      await a.event((ev) => ev.type === "block" && ev.pid === t.pid, "the TERM child's event");
      const tEv = blocksOf(a, t.pid);
      deepStrictEqual(tEv.map((ev) => ev.action), ["TERM"]);
      strictEqual(tEv[0].hook, "file_open");

      // 2. a child that ignores SIGTERM and keeps trying: EPERM twice, SIGKILL at the 3rd deny
      const k = await opener(secret, 6, true);
      deepStrictEqual(k.lines, ["EPERM", "EPERM"], `two EPERMs: ${JSON.stringify(k)}`);
      strictEqual(k.signal, "SIGKILL", "killed at the third deny");
      await a.waitFor(() => blocksOf(a, k.pid).length >= 3, "the escalation's events", 10_000);
      deepStrictEqual(blocksOf(a, k.pid).map((ev) => ev.action), ["TERM", "TERM", "KILL"]);

      // 3. another file is not touched
      const o = await opener(other, 1);
      deepStrictEqual([o.lines, o.signal, o.code], [["ok"], null, 0]);

      // 4. emergency disable: the hooks only report, and nothing is signalled
      await setEmergency(pinRoot, true);
      let em: Opened;
      try {
        em = await opener(secret, 1);
      } finally {
        await setEmergency(pinRoot, false);
      }
      deepStrictEqual([em.lines, em.signal], [["ok"], null], "emergency disable: let through");
      await a.event((ev) => ev.type === "block" && ev.pid === em.pid, "the AUDIT event");
      deepStrictEqual(blocksOf(a, em.pid).map((ev) => ev.action), ["AUDIT"]);

      // 5. counted: 1 + 3 signals, one of them an escalation
      strictEqual(await metric(port, "aegisbpf_signals_sent_total"), 4);
      strictEqual(await metric(port, "aegisbpf_kill_escalations_total"), 1);
      strictEqual(await metric(port, "aegisbpf_signals_failed_total"), 0);

      // 6. the proof's probes are denied, never signalled: ENFORCE holds over later rounds
      const selfTests = () => a.events().filter((ev) => ev.type === "self_test");
      const before = selfTests().length;
      await a.waitFor(() => selfTests().length >= before + 2, "two more proof denies", 60_000);
      // (AUDIT only for a probe that ran during the emergency window above)
      for (const ev of selfTests()) match(ev.action, /^(BLOCK|AUDIT)$/, JSON.stringify(ev));
      ok(selfTests().some((ev) => ev.action === "BLOCK"), "the probes were denied");
      const h = await httpGet(port, "/health?require_enforce=1");
      strictEqual(h.status, 200, JSON.stringify(h.body));
      const changes = await a.stateChanges();
      strictEqual(changes.at(-1).to, "ENFORCE", JSON.stringify(changes));
      ok(!changes.some((s) => s.to === "DEGRADED"), JSON.stringify(changes));

      // 7. the same pins under an agent without the options (none): EPERM only
      await a.stop();
      agent = null;
      const b = new Agent(["--proof-interval", "5"], env);
      agent = b;
      await b.ready();
      match(b.err, /agent started, ENFORCE/);
      const n = await opener(secret, 3);
      deepStrictEqual(
        [n.lines, n.signal, n.code],
        [["EPERM", "EPERM", "EPERM"], null, 0],
        "none: EPERM, no signal",
      );
      await b.waitFor(() => blocksOf(b, n.pid).length >= 3, "the none child's events", 10_000);
      deepStrictEqual(blocksOf(b, n.pid).map((ev) => ev.action), ["BLOCK", "BLOCK", "BLOCK"]);
      strictEqual(await metric(port, "aegisbpf_signals_sent_total"), 4, "nothing more sent");
    } finally {
      await cleanupAgent(agent, e);
    }
  },
});
