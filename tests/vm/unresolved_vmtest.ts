/**
 * VM tier: a policy naming a file that does not exist yet is applied
 * (reported unresolved) and the rule is enforced once the file appears.
 * Both tests measure the window between the file's creation and the first
 * EPERM (a tight open loop in another process) and assert it is under
 * 10 s.
 *
 * 1. Library level: UnresolvedWatcher in the test process over the running
 *    agent's pins (what the daemon runs).
 * 2. Final behaviour: `policy apply` to the running agent, the agent
 *    watches. Needs the daemon wiring (UnresolvedWatcher built from the
 *    applied policy's unresolved list at start and after each apply
 *    through the control socket).
 */
import { match, ok, strictEqual } from "node:assert/strict";
import { openEmbeddedShim } from "../../src/assets/mod.ts";
import { PinnedMaps } from "../../src/bpf/pins.ts";
import { writeStderr } from "../../src/log.ts";
import { pathRuleEnforcer, type ResolvedEntry, UnresolvedWatcher } from "../../src/policy/watch.ts";
import { AGENT, Agent, type AgentEnv, agentEnv, cleanupAgent } from "../lib/agent.ts";
import { run, tryOpen } from "../lib/helpers.ts";

const LSM_ON = Deno.env.get("AEGIS_VM_LSM") === "on";

/** Create `path`, then open it in a tight loop (another process) until the first EPERM. */
async function measureWindow(path: string): Promise<{ secs: number; opens: number }> {
  const probe = await new Deno.Command("/usr/bin/python3", {
    args: [
      "-c",
      `
import os, sys, time
p = sys.argv[1]
t0 = time.monotonic()
fd = os.open(p, os.O_CREAT | os.O_WRONLY, 0o644); os.close(fd)
opens = 0
while True:
    try:
        os.close(os.open(p, os.O_RDONLY)); opens += 1
    except PermissionError:
        print("%.6f %d" % (time.monotonic() - t0, opens)); break
    if time.monotonic() - t0 > 30:
        print("timeout %d" % opens); break
`,
      path,
    ],
    stdout: "piped",
  }).output();
  const text = new TextDecoder().decode(probe.stdout).trim();
  ok(!text.startsWith("timeout"), `never enforced within 30 s (${text})`);
  const [secs, opens] = text.split(" ").map(Number);
  return { secs, opens };
}

/** An agent on fresh private paths, enforcing. */
async function startAgent(): Promise<{ agent: Agent; e: AgentEnv }> {
  const e = agentEnv();
  const agent = new Agent([], e.env);
  try {
    await agent.ready();
    match(agent.err, /agent started, ENFORCE/);
  } catch (err) {
    await cleanupAgent(agent, e);
    throw err;
  }
  return { agent, e };
}

/** Print the measurement and append it to the results folder (the TAP run drops test output). */
function report(what: string, m: { secs: number; opens: number }): void {
  const line = `unresolved window (${what}): ${(m.secs * 1000).toFixed(1)} ms from creation to ` +
    `the first EPERM (${m.opens} opens succeeded meanwhile; kernel ` +
    `${Deno.env.get("AEGIS_VM_KERNEL")})\n`;
  writeStderr(line);
  const results = Deno.env.get("AEGIS_VM_RESULTS");
  if (results) Deno.writeTextFileSync(`${results}/unresolved-window.txt`, line, { append: true });
}

Deno.test({
  name: "unresolved path, library level: UnresolvedWatcher over the agent's pins; window measured",
  ignore: !LSM_ON,
  fn: async () => {
    const { agent, e } = await startAgent();
    const dir = e.dir;
    const later = `${dir}/sub/later.bin`;
    const shim = await openEmbeddedShim();
    const pins = new PinnedMaps(shim, e.pinRoot);
    const resolved: ResolvedEntry[] = [];
    const w = new UnresolvedWatcher(
      [{ section: "deny_path", line: 3, what: later, reason: "does not exist (yet)" }],
      { enforce: pathRuleEnforcer((n) => pins.map(n)), onResolved: (r) => resolved.push(r) },
    );
    try {
      w.start();
      strictEqual(w.pendingCount, 1);
      Deno.mkdirSync(`${dir}/sub`);
      for (let i = 0; i < 400 && w.watchedDirs[0] !== `${dir}/sub`; i++) {
        await new Promise((r) => setTimeout(r, 5));
      }
      strictEqual(w.watchedDirs[0], `${dir}/sub`, "the watch moved into the new directory");
      const m = await measureWindow(later);
      report("UnresolvedWatcher, inotify", m);
      ok(m.secs < 10, `enforced ${m.secs} s after creation (bound 10 s)`);
      strictEqual(resolved.length, 1);
      strictEqual(resolved[0].via, "watch");
      strictEqual(tryOpen(later), "EPERM/EACCES");
    } finally {
      w.stop();
      pins.close();
      shim[Symbol.dispose]();
      await cleanupAgent(agent, e);
    }
  },
});

Deno.test({
  name: "unresolved path, daemon: enforced once the file appears; window measured",
  ignore: !LSM_ON,
  fn: async () => {
    const { agent, e } = await startAgent();
    const dir = e.dir;
    const later = `${dir}/later.bin`;
    try {
      Deno.writeTextFileSync(`${dir}/p.pol`, `version=1\n[deny_path]\n${later}\n`);
      const a = await run(AGENT, ["policy", "apply", `${dir}/p.pol`], e.env);
      strictEqual(a.code, 0, a.stderr);
      match(a.stdout, /unresolved deny_path line 3: .*later\.bin: does not exist/);
      const m = await measureWindow(later);
      report("daemon", m);
      ok(m.secs < 10, `enforced ${m.secs} s after creation (bound 10 s)`);
      strictEqual(tryOpen(later), "EPERM/EACCES");
    } finally {
      await cleanupAgent(agent, e);
    }
  },
});
