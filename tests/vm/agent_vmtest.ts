/**
 * VM tier: aegisbpf run the way an operator runs it (the development
 * launcher; the compiled binary when AEGIS_VM_AGENT points at it).
 *
 * lsm-on: `run` enforces: a rule written into the pinned maps denies with
 * EPERM and a block event; SIGKILL of the agent leaves the file denied; a
 * restarted agent re-adopts the pins while a concurrent opener never gets
 * through; `uninstall` ends enforcement.
 * lsm-off: `run` refuses (fail-closed) with BPF_LSM_DISABLED.
 */
import { match, ok, strictEqual } from "node:assert/strict";
import { EMBEDDED, openEmbeddedShim } from "../../src/assets/mod.ts";
import { AEGIS_POL_FILE_RULES, AEGIS_RT_INODE, AEGIS_RULE_DENY } from "../../src/bpf/abi_gen.ts";
import { BpfMap } from "../../src/bpf/map.ts";
import { inodeKey, kernelDev, policyValue, ruleValue, u32Key } from "../../src/bpf/rule_codec.ts";
import { eventually, LAUNCHER, run, tryOpen } from "../lib/helpers.ts";

const AGENT = Deno.env.get("AEGIS_VM_AGENT") || LAUNCHER;
const LSM_ON = Deno.env.get("AEGIS_VM_LSM") === "on";

Deno.test("aegisbpf version --json loads the embedded shim in the guest", async () => {
  const r = await run(AGENT, ["version", "--json"]);
  strictEqual(r.code, 0, r.stderr);
  const v = JSON.parse(r.stdout);
  strictEqual(v.shim.loaded, true, v.shim.error);
  strictEqual(v.shim.sha256, EMBEDDED.shim.sha256);
  strictEqual(v.bpf_object.sha256, EMBEDDED.bpfObject.sha256);
});

Deno.test({
  name: "aegisbpf run without bpf in lsm= refuses (fail-closed) and leaves no pins",
  ignore: LSM_ON,
  fn: async () => {
    const root = `/sys/fs/bpf/aegis-agent-${crypto.randomUUID().slice(0, 8)}`;
    const r = await run(AGENT, ["run"], { ...Deno.env.toObject(), AEGIS_PIN_ROOT: root });
    strictEqual(r.code, 1, r.stderr);
    match(r.stderr, /Refusing to start in enforce mode \(gate fail-closed\)/);
    match(r.stderr, /BPF_LSM_DISABLED: bpf is not in the active LSM list/);
    let exists = true;
    try {
      Deno.statSync(root);
    } catch {
      exists = false;
    }
    strictEqual(exists, false, "no pins");
  },
});

/** A running agent whose stdout (events) and stderr (logs) are collected. */
class Agent {
  readonly proc: Deno.ChildProcess;
  out = "";
  err = "";
  #done: Promise<void>;

  constructor(env: Record<string, string>) {
    this.proc = new Deno.Command(AGENT, {
      args: ["run"],
      env,
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const pump = async (s: ReadableStream<Uint8Array>, add: (t: string) => void) => {
      for await (const t of s.pipeThrough(new TextDecoderStream())) add(t);
    };
    this.#done = Promise.all([
      pump(this.proc.stdout, (t) => this.out += t),
      pump(this.proc.stderr, (t) => this.err += t),
    ]).then(() => {});
  }

  async waitFor(what: () => boolean, label: string, ms = 60_000): Promise<void> {
    const end = Date.now() + ms;
    while (!what()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${label}; stderr:\n${this.err}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async stop(signal: Deno.Signal): Promise<Deno.CommandStatus> {
    this.proc.kill(signal);
    const st = await this.proc.status;
    await this.#done;
    return st;
  }
}

Deno.test({
  name: "aegisbpf run enforces, survives SIGKILL, re-adopts with no gap, and uninstall ends it",
  ignore: !LSM_ON,
  fn: async () => {
    const root = `/sys/fs/bpf/aegis-agent-${crypto.randomUUID().slice(0, 8)}`;
    const env = { ...Deno.env.toObject(), AEGIS_PIN_ROOT: root };
    const dir = Deno.makeTempDirSync({ dir: "/tmp", prefix: "aegis-agent-" });
    const denied = `${dir}/denied`;
    Deno.writeTextFileSync(denied, "secret");
    let agent = new Agent(env);
    try {
      await agent.waitFor(() => agent.err.includes("agent started"), "the agent to start");
      match(agent.err, /agent started, ENFORCE: [^\n]*lsm\/file_open/);

      // a rule, written into the pinned maps as a rule edit without the daemon would
      {
        using shim = await openEmbeddedShim();
        const st = Deno.statSync(denied);
        const deny = new BpfMap(shim, "deny", shim.getPinned(`${root}/maps/aegis_deny_inode`));
        const pol = new BpfMap(shim, "pol", shim.getPinned(`${root}/maps/aegis_policy`));
        pol.update(u32Key(0), policyValue(AEGIS_POL_FILE_RULES));
        deny.update(
          inodeKey(kernelDev(st.dev), st.ino!, 0),
          ruleValue(99, AEGIS_RULE_DENY, AEGIS_RT_INODE),
        );
        shim.closeFd(deny.fd);
        shim.closeFd(pol.fd);
      }
      strictEqual(tryOpen(denied), "EPERM/EACCES", "denied by the running agent");
      await agent.waitFor(() => agent.out.includes(`"type":"block"`), "a block event");
      const ev = agent.out.split("\n").filter((l) =>
        l.includes(`"type":"block"`)
      ).map((l) => JSON.parse(l))[0];
      strictEqual(ev.action, "BLOCK");
      strictEqual(ev.pid, Deno.pid);
      strictEqual(ev.rule_id, 99);

      const killed = await agent.stop("SIGKILL");
      strictEqual(killed.signal, "SIGKILL");
      strictEqual(tryOpen(denied), "EPERM/EACCES", "still denied with the agent killed");

      // restart while a concurrent opener hammers the file
      const hammer = new Deno.Command("/usr/bin/python3", {
        args: [
          "-c",
          `
import os, sys, time
allowed = denied = 0
end = time.time() + 120
while time.time() < end and not os.path.exists(sys.argv[2]):
    try:
        os.close(os.open(sys.argv[1], os.O_RDONLY)); allowed += 1
    except PermissionError:
        denied += 1
    if denied + allowed == 1:
        open(sys.argv[3], "w").close()
print(allowed, denied)
`,
          denied,
          `${dir}/stop`,
          `${dir}/started`,
        ],
        stdout: "piped",
      }).spawn();
      await agent.waitFor(() => {
        try {
          return Deno.statSync(`${dir}/started`).isFile;
        } catch {
          return false;
        }
      }, "the opener");
      agent = new Agent(env);
      await agent.waitFor(() =>
        agent.err.includes("agent started"), "the restarted agent");
      match(agent.err, /re-adopted/);
      Deno.writeTextFileSync(`${dir}/stop`, "");
      const [allowed, deniedCount] = new TextDecoder().decode((await hammer.output()).stdout).trim()
        .split(" ").map(Number);
      strictEqual(allowed, 0, `opens allowed across kill and restart (denied ${deniedCount})`);
      ok(deniedCount > 10, `the opener ran (${deniedCount} denials)`);
      strictEqual(tryOpen(denied), "EPERM/EACCES", "denied by the restarted agent");

      const stopped = await agent.stop("SIGTERM");
      strictEqual(stopped.code, 0, agent.err);
      strictEqual(tryOpen(denied), "EPERM/EACCES", "pins keep enforcing after a clean stop");
      const un = await run(AGENT, ["uninstall"], env);
      strictEqual(un.code, 0, un.stderr);
      match(un.stdout, /links\/aegis_file_open/);
      // the kernel frees an unpinned link from a work queue: detach follows shortly
      strictEqual(await eventually(() => tryOpen(denied)), "ok", "allowed after uninstall");
    } finally {
      try {
        agent.proc.kill("SIGKILL");
      } catch { /* already gone */ }
      await run(AGENT, ["uninstall"], env);
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test("aegisbpf run --audit reports an exec in the guest", async () => {
  const root = `/sys/fs/bpf/aegis-audit-${crypto.randomUUID().slice(0, 8)}`;
  const p = new Deno.Command(AGENT, {
    args: ["run", "--audit"],
    env: { ...Deno.env.toObject(), AEGIS_PIN_ROOT: root },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stdout = new Response(p.stdout).text();
  const err = p.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let log = "";
  while (!log.includes("agent started")) {
    const { value, done } = await err.read();
    if (done) break;
    log += value;
  }
  ok(log.includes("agent started"), log);
  if (LSM_ON) match(log, /agent started, AUDIT: [^\n]*lsm\/file_open/);
  await new Deno.Command("/bin/sleep", { args: ["0"] }).output();
  await new Promise((r) => setTimeout(r, 300));
  p.kill("SIGTERM");
  strictEqual((await p.status).code, 0, "clean stop on SIGTERM");
  const out = await stdout;
  await err.cancel().catch(() => {});
  let pinned = true;
  try {
    Deno.statSync(root);
  } catch {
    pinned = false;
  }
  if (pinned) await run(AGENT, ["uninstall"], { ...Deno.env.toObject(), AEGIS_PIN_ROOT: root });
  strictEqual(pinned, false, "audit mode pins nothing of its own");
  const execs = out.split("\n").filter((l) => l).map((l) => JSON.parse(l)).filter((e) =>
    e.type === "exec" && e.comm === "sleep"
  );
  strictEqual(execs.length >= 1, true, out.slice(0, 500));
});
