/**
 * A running `aegisbpf run` for host and VM tests: stdout (events, JSON
 * lines) and stderr (logs) collected, with a private state directory,
 * capabilities report, control socket and HTTP port so tests never share
 * the operator's paths.
 *
 * @module
 */
import { openEmbeddedShim } from "../../src/assets/mod.ts";
import { AEGIS_POL_FILE_RULES, AEGIS_RT_INODE, AEGIS_RULE_DENY } from "../../src/bpf/abi_gen.ts";
import { PinnedMaps } from "../../src/bpf/pins.ts";
import { inodeKey, kernelDev, policyValue, ruleValue, u32Key } from "../../src/bpf/rule_codec.ts";
import { LAUNCHER, run } from "./helpers.ts";

export const AGENT = Deno.env.get("AEGIS_VM_AGENT") || LAUNCHER;

/**
 * The agent with AEGIS_TEST_* faults injected (tests/lib/agent_main.ts);
 * bundled in VM guests like the agent (scripts/vm/test_vm.sh).
 */
export const FAULT_AGENT = Deno.env.get("AEGIS_VM_FAULT_AGENT") ||
  new URL("./agent_faults", import.meta.url).pathname;

/** The launcher for an agent environment: the fault entry when it names a fault. */
export function agentFor(env: Record<string, string>): string {
  return Object.keys(env).some((k) => k.startsWith("AEGIS_TEST_")) ? FAULT_AGENT : AGENT;
}

/**
 * The kernel whose VM cell runs the daemon-and-CLI flow tests (emergency
 * control, policy apply, live rules). What they drive in the kernel (the
 * rule maps, the kill-switch flag, the hooks) is proven on every kernel by
 * the other VM tests; the flows themselves are user-space logic that costs
 * minutes of CLI calls under TCG, so they run once, on Debian 12's own
 * kernel (docs/vm.md).
 */
export const FLOW_KERNEL = "6.1";

/** True in the cell that runs the flow tests (and outside a VM). */
export const ON_FLOW_KERNEL = onFlowKernel(FLOW_KERNEL);

/**
 * True when this cell runs the flow tests placed on `kernel` (and outside a
 * VM). A few flow files go to the other kernel to balance the two cells'
 * wall time (docs/vm.md).
 */
export function onFlowKernel(kernel: string): boolean {
  return (Deno.env.get("AEGIS_VM_KERNEL") ?? kernel) === kernel;
}

/** A flow test's name; elsewhere it says where it runs instead. */
export function flowTestName(name: string, kernel = FLOW_KERNEL): string {
  return onFlowKernel(kernel)
    ? name
    : `${name} (SKIPPED here: a kernel-independent flow, run on ${kernel})`;
}

/** Private paths for one agent. */
export interface AgentEnv {
  dir: string;
  stateDir: string;
  report: string;
  socket: string;
  port: number;
  pinRoot: string;
  env: Record<string, string>;
}

/** A free loopback TCP port (bound and released). */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** Fresh private paths and the environment that points the agent and CLI at them. */
export function agentEnv(extra: Record<string, string> = {}): AgentEnv {
  const dir = Deno.makeTempDirSync({ dir: "/tmp", prefix: "aegis-agent-" });
  const id = dir.split("-").pop();
  const stateDir = `${dir}/state`;
  Deno.mkdirSync(stateDir, { mode: 0o700 });
  const port = freePort();
  const e = {
    dir,
    stateDir,
    report: `${stateDir}/capabilities.json`,
    socket: `${dir}/run/control.sock`,
    port,
    pinRoot: `/sys/fs/bpf/aegis-t-${id}`,
    env: {} as Record<string, string>,
  };
  e.env = {
    ...Deno.env.toObject(),
    AEGIS_STATE_DIR: stateDir,
    AEGIS_CAPABILITIES_REPORT_PATH: e.report,
    AEGIS_RUNTIME_DIR: `${dir}/run`,
    AEGIS_CONTROL_SOCKET: e.socket,
    AEGIS_HTTP_LISTEN: `127.0.0.1:${port}`,
    AEGIS_PIN_ROOT: e.pinRoot,
    ...extra,
  };
  return e;
}

/** Poll `what` every 50 ms until it holds; throws after `ms`. */
export async function waitUntil(what: () => boolean, label: string, ms = 90_000): Promise<void> {
  const end = Date.now() + ms;
  while (!what()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${label}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A running agent whose stdout (events) and stderr (logs) are collected. */
export class Agent {
  readonly proc: Deno.ChildProcess;
  readonly started = Date.now();
  out = "";
  err = "";
  #done: Promise<void>;
  #status: Deno.CommandStatus | null = null;

  constructor(args: string[], env: Record<string, string>) {
    this.proc = new Deno.Command(agentFor(env), {
      args: ["run", ...args],
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
    this.proc.status.then((s) => this.#status = s);
  }

  /** The exit status once the process ended, else null. */
  get exited(): Deno.CommandStatus | null {
    return this.#status;
  }

  /** Events (stdout JSON lines) so far. */
  events(): Json[] {
    return this.out.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
  }

  async waitFor(what: () => boolean, label: string, ms = 90_000): Promise<void> {
    const end = Date.now() + ms;
    while (!what()) {
      if (this.#status !== null && !what()) {
        await this.#done;
        throw new Error(
          `agent exited (${this.#status.code}) before ${label}; stderr:\n${this.err}`,
        );
      }
      if (Date.now() > end) throw new Error(`timed out waiting for ${label}; stderr:\n${this.err}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Wait for an event matching `pred` (events are written by a buffered sink). */
  async event(pred: (e: Json) => boolean, label: string, ms = 10_000): Promise<Json> {
    await this.waitFor(() => this.events().some(pred), label, ms);
    return this.events().find(pred);
  }

  /** The state_change events so far, after waiting for at least one. */
  async stateChanges(): Promise<Json[]> {
    await this.event((e) => e.type === "state_change", "a state_change event");
    return this.events().filter((e) => e.type === "state_change");
  }

  /** Wait until the agent has logged that it started. */
  ready(): Promise<void> {
    return this.waitFor(() => this.err.includes("agent started"), "the agent to start");
  }

  /** Wait for the process to end by itself. */
  async exit(): Promise<Deno.CommandStatus> {
    const st = await this.proc.status;
    await this.#done;
    return st;
  }

  async stop(signal: Deno.Signal = "SIGTERM"): Promise<Deno.CommandStatus> {
    if (this.#status === null) {
      try {
        this.proc.kill(signal);
      } catch { /* already gone */ }
    }
    return await this.exit();
  }
}

/** A parsed JSON body, read by the tests field by field. */
// deno-lint-ignore no-explicit-any
export type Json = any;

/** GET a path on the agent's HTTP listener: status and parsed JSON (or text). */
export async function httpGet(port: number, path: string): Promise<{ status: number; body: Json }> {
  const r = await fetch(`http://127.0.0.1:${port}${path}`);
  const text = await r.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch { /* text */ }
  return { status: r.status, body };
}

/** Stop the agent (when one was started), remove its pins (`aegisbpf uninstall`)
 * and its private directory. For a test's `finally`. */
export async function cleanupAgent(agent: Agent | null, e: AgentEnv): Promise<void> {
  await agent?.stop();
  await run(AGENT, ["uninstall"], e.env);
  Deno.removeSync(e.dir, { recursive: true });
}

/**
 * Deny `path` by inode in an agent's pinned maps (generation 0), the way a
 * rule edit without the daemon writes it.
 */
export async function denyInPins(pinRoot: string, path: string, ruleId: number): Promise<void> {
  using shim = await openEmbeddedShim();
  using pins = new PinnedMaps(shim, pinRoot);
  const st = Deno.statSync(path);
  pins.map("aegis_policy").update(u32Key(0), policyValue(AEGIS_POL_FILE_RULES));
  pins.map("aegis_deny_inode").update(
    inodeKey(kernelDev(st.dev), st.ino!, 0),
    ruleValue(ruleId, AEGIS_RULE_DENY, AEGIS_RT_INODE),
  );
}
