/**
 * Host tier: the posture contract on this host, whose kernel lists bpf as
 * an LSM but refuses to load LSM programs (EPERM): no BPF LSM.
 *
 * `run` exits non-zero with BPF_LSM_DISABLED and attaches nothing;
 * audit-fallback serves /health 200 and /health?require_enforce=1 503,
 * emits state_change CAPABILITY_AUDIT_ONLY and writes a report that
 * validates against the schema with enforce_capable false; `health
 * --require-enforce` exits 1 (with and without a daemon); the signal
 * fallback reports ENFORCE_SIGNAL and still lists BPF_LSM_DISABLED;
 * --strict-degrade exits; a port in use is a startup error naming
 * --http-listen.
 */
import { deepStrictEqual, match, ok, strictEqual } from "node:assert/strict";
import { CapabilitiesReport } from "../../src/posture/report.ts";
import { capsBeyond, keepMask, parseThreadCaps } from "../../src/daemon/caps.ts";
import { AGENT, Agent, agentEnv, cleanupAgent, denyInPins, httpGet } from "../lib/agent.ts";
import { run } from "../lib/helpers.ts";
import { cppSchema, validate } from "../lib/json_schema.ts";

/** The C++ agent's schemas (tests/artifacts/contracts_test.ts); null when ../shared is absent. */
const CPP = {
  capabilities: cppSchema("capabilities_v1.json"),
  health: cppSchema("health.json"),
  doctor: cppSchema("doctor.json"),
};
const RELAX = { additionalProperties: true };

function exists(p: string): boolean {
  try {
    Deno.lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

/** Ids of the loaded BPF programs named aegis_*. */
async function aegisProgIds(): Promise<number[]> {
  const progs = await run("bpftool", ["-j", "prog", "show"]);
  return (JSON.parse(progs.stdout) as { id: number; name?: string }[])
    .filter((p) => p.name?.startsWith("aegis_")).map((p) => p.id);
}

async function withEnv(
  fn: (e: ReturnType<typeof agentEnv>) => Promise<void>,
  extra: Record<string, string> = {},
): Promise<void> {
  const e = agentEnv(extra);
  try {
    await fn(e);
  } finally {
    await cleanupAgent(null, e);
  }
}

Deno.test("run fails closed with every blocker and its remedy; nothing attached, no report of ENFORCE", () =>
  withEnv(async (e) => {
    const before = new Set(await aegisProgIds());
    const a = new Agent([], e.env);
    const st = await a.exit();
    strictEqual(st.code, 1, a.err);
    match(a.err, /Refusing to start in enforce mode \(gate fail-closed\)/);
    match(a.err, /BPF_LSM_DISABLED: .*\n\s+remedy: /);
    strictEqual(exists(e.pinRoot), false, "no pins");
    strictEqual(exists(e.socket), false, "control socket removed");
    // nothing of ours is left loaded: no aegis_ program appeared while the agent ran and
    // outlived it (ids, not owners: this bpftool shows no pids, and other agents on the
    // host may hold aegis_ programs of their own)
    deepStrictEqual((await aegisProgIds()).filter((id) => !before.has(id)), []);
    // the refusal is reported too, never as enforcing
    if (exists(e.report)) {
      const r = CapabilitiesReport.parse(JSON.parse(Deno.readTextFileSync(e.report)));
      strictEqual(r.enforce_capable, false);
      ok(r.runtime_state !== "ENFORCE");
    }
    const h = await run(AGENT, ["health", "--require-enforce", "--json"], e.env);
    strictEqual(h.code, 1, `no daemon, probes say not enforcing: ${h.stdout}`);
    ok(h.stdout.includes("BPF_LSM_DISABLED"), h.stdout);
  }));

Deno.test("run --enforce-gate-mode=audit-fallback: AUDIT_FALLBACK, 200 / 503, report, state_change", () =>
  withEnv(async (e) => {
    const a = new Agent(["--enforce-gate-mode=audit-fallback"], e.env);
    try {
      await a.ready();
      match(a.err, /agent started, AUDIT_FALLBACK/);
      const sc = await a.stateChanges();
      strictEqual(sc.length, 1, a.out.slice(0, 2000));
      strictEqual(sc[0].transition_id, 1);
      strictEqual(sc[0].to, "AUDIT_FALLBACK");
      strictEqual(sc[0].reason_code, "CAPABILITY_AUDIT_ONLY");
      strictEqual(typeof sc[0].degradation_count, "number");
      strictEqual(sc[0].strict_mode, false);

      // no_new_privs: set at every start; the report says what the kernel holds
      const status = Deno.readTextFileSync(`/proc/${a.proc.pid}/status`);
      match(status, /^NoNewPrivs:\s+1$/m, "the daemon's main thread has no_new_privs");
      const caps = CapabilitiesReport.parse(JSON.parse(Deno.readTextFileSync(e.report)));
      strictEqual(caps.self_protection.no_new_privs, true);
      // seccomp (the default, enforce): the kernel holds the filter on every
      // thread (TSYNC), which also gave every thread no_new_privs
      const tasks = [...Deno.readDirSync(`/proc/${a.proc.pid}/task`)].map((t) => t.name);
      ok(tasks.length > 1, `threads: ${tasks.length}`);
      for (const t of tasks) {
        const st = Deno.readTextFileSync(`/proc/${a.proc.pid}/task/${t}/status`);
        match(st, /^Seccomp:\s+2$/m, `thread ${t} runs under a seccomp filter`);
        match(st, /^NoNewPrivs:\s+1$/m, `thread ${t} has no_new_privs`);
      }
      // capabilities: every thread holds only the kept ones, in every set
      const keep = keepMask();
      for (const t of tasks) {
        const st = Deno.readTextFileSync(`/proc/${a.proc.pid}/task/${t}/status`);
        const held = parseThreadCaps(t, st);
        ok(held !== null, st);
        deepStrictEqual(capsBeyond([held], keep), [], `thread ${t}`);
        strictEqual((held.eff >> 39n) & 1n, 1n, `thread ${t} keeps CAP_BPF`);
      }
      strictEqual(
        caps.self_protection.capabilities.limited,
        true,
        caps.self_protection.capabilities.detail,
      );
      ok(caps.self_protection.capabilities.dropped.includes("CAP_SETUID"));
      strictEqual(caps.self_protection.seccomp.mode, "enforce");
      strictEqual(
        caps.self_protection.seccomp.installed,
        true,
        caps.self_protection.seccomp.detail,
      );
      ok(caps.self_protection.seccomp.syscalls > 100, caps.self_protection.seccomp.detail);

      const ok200 = await httpGet(e.port, "/health");
      strictEqual(ok200.status, 200, JSON.stringify(ok200.body));
      const enf = await httpGet(e.port, "/health?require_enforce=1");
      strictEqual(enf.status, 503);
      strictEqual(enf.body.runtime_state, "AUDIT_FALLBACK");
      ok(JSON.stringify(enf.body).includes("BPF_LSM_DISABLED"), JSON.stringify(enf.body));

      const report = CapabilitiesReport.parse(JSON.parse(Deno.readTextFileSync(e.report)));
      strictEqual(report.runtime_state, "AUDIT_FALLBACK");
      strictEqual(report.enforce_capable, false);
      ok(report.enforce_blockers.includes("BPF_LSM_DISABLED"));
      strictEqual(report.state_transitions.total, 1);
      strictEqual(report.state_transitions.enforce_requested, true);
      const fromHttp = await httpGet(e.port, "/capabilities");
      strictEqual(fromHttp.status, 200);
      CapabilitiesReport.parse(fromHttp.body);

      const h = await run(AGENT, ["health", "--require-enforce"], e.env);
      strictEqual(h.code, 1, "the running daemon is not enforcing");
      const plain = await run(AGENT, ["health"], e.env);
      strictEqual(plain.code, 0, `the daemon runs and is healthy: ${plain.stdout}`);

      // the running agent's own answers against the C++ contracts (docs/posture.md)
      const hj = await run(AGENT, ["health", "--json"], e.env);
      strictEqual(hj.code, 0, hj.stderr);
      const hb = JSON.parse(hj.stdout);
      strictEqual(hb.engine_mode, "tracepoint_audit", "no BPF LSM here: the fallback programs");
      strictEqual(hb.checks.bpf_load, true, "the agent loaded the object");
      deepStrictEqual(hb.undetermined_fields, [], "an agent knows all of it here");
      // `health` alone is answered before the argument parser loads (cli/readiness.ts);
      // a global option in front takes the full CLI: both print the same verdict
      const full = await run(AGENT, ["--log-level", "warning", "health", "--json"], e.env);
      strictEqual(full.code, 0, full.stderr);
      deepStrictEqual(JSON.parse(full.stdout), hb, "the fast and the full path agree");
      const fullText = await run(
        AGENT,
        ["--log-level", "warning", "health", "--require-enforce"],
        e.env,
      );
      strictEqual(fullText.code, h.code);
      strictEqual(fullText.stdout, h.stdout, "the same text verdict");
      const dj = await run(AGENT, ["doctor", "--json"], e.env);
      strictEqual(dj.code, 1, "not enforcing");
      if (CPP.capabilities && CPP.health && CPP.doctor) {
        deepStrictEqual(validate(CPP.capabilities, report, RELAX), [], "capabilities.json");
        deepStrictEqual(validate(CPP.health, hb, RELAX), [], "health --json");
        deepStrictEqual(validate(CPP.health, enf.body, RELAX), [], "GET /health (503)");
        deepStrictEqual(validate(CPP.doctor, JSON.parse(dj.stdout), RELAX), [], "doctor --json");
      } else {
        // deno-lint-ignore no-console -- a skipped check says so
        console.log(
          "C++ contract checks SKIPPED: ../shared/reference/aegisbpf-cpp-schemas is absent",
        );
      }
    } finally {
      strictEqual((await a.stop("SIGTERM")).code, 0, a.err);
    }
  }));

Deno.test("run --enforce-fallback=signal: ENFORCE_SIGNAL, BPF_LSM_DISABLED still listed, not enforce_capable", () =>
  withEnv(async (e) => {
    const a = new Agent(["--enforce-fallback=signal"], e.env);
    try {
      await a.ready();
      const sc = await a.stateChanges();
      strictEqual(sc.at(-1).to, "ENFORCE_SIGNAL");
      strictEqual(sc.at(-1).reason_code, "ENFORCE_SIGNAL_FALLBACK");
      const report = CapabilitiesReport.parse(JSON.parse(Deno.readTextFileSync(e.report)));
      strictEqual(report.runtime_state, "ENFORCE_SIGNAL");
      strictEqual(report.enforce_capable, false);
      ok(report.enforce_blockers.includes("BPF_LSM_DISABLED"));
      strictEqual((await httpGet(e.port, "/health?require_enforce=1")).status, 503);
    } finally {
      await a.stop("SIGTERM");
    }
  }));

Deno.test("run --strict-degrade exits non-zero when an enforce request ends in AUDIT_FALLBACK", () =>
  withEnv(async (e) => {
    const a = new Agent(["--enforce-gate-mode=audit-fallback", "--strict-degrade"], e.env);
    const st = await a.exit();
    strictEqual(st.code, 1, a.err);
    match(a.err, /strict-degrade/);
    const sc = await a.stateChanges();
    strictEqual(sc.at(-1)?.strict_mode, true);
  }));

Deno.test("run: an HTTP port in use is a startup error naming --http-listen; nothing attached", () =>
  withEnv(async (e) => {
    using busy = Deno.listen({ hostname: "127.0.0.1", port: e.port });
    const a = new Agent(["--audit"], e.env);
    const st = await a.exit();
    strictEqual(st.code, 1, a.err);
    match(a.err, /--http-listen/);
    match(a.err, new RegExp(`127\\.0\\.0\\.1:${e.port}`));
    strictEqual(exists(e.pinRoot), false);
    deepStrictEqual(a.events().filter((ev) => ev.type === "state_change"), []);
    busy.close();
  }));

Deno.test("break-glass marker at start: forced audit, AUDIT_FALLBACK with BREAK_GLASS_ACTIVE", () =>
  withEnv(async (e) => {
    const etc = `${e.dir}/etc`;
    Deno.mkdirSync(etc, { mode: 0o700 });
    Deno.writeTextFileSync(`${etc}/break_glass`, "incident 42\n", { mode: 0o600 });
    const a = new Agent(["--enforce-fallback=signal"], { ...e.env, AEGIS_ETC_DIR: etc });
    try {
      await a.ready();
      match(a.err, /BREAK-GLASS active \(marker\)/);
      const sc = await a.stateChanges();
      strictEqual(sc.at(-1).to, "AUDIT_FALLBACK");
      strictEqual(sc.at(-1).reason_code, "BREAK_GLASS_ACTIVE");
      const report = CapabilitiesReport.parse(JSON.parse(Deno.readTextFileSync(e.report)));
      strictEqual(report.runtime_state, "AUDIT_FALLBACK");
      strictEqual((await httpGet(e.port, "/health?require_enforce=1")).status, 503);
    } finally {
      await a.stop("SIGTERM");
    }
  }));

Deno.test("runtime checks: ring-buffer drops degrade ENFORCE_SIGNAL to DEGRADED, then RECOVERED", () =>
  withEnv(async (e) => {
    const a = new Agent(["--enforce-fallback=signal", "--ringbuf-bytes", "4096"], e.env);
    try {
      await a.ready();
      await a.stateChanges();
      // stop the consumer, fill the ring with exec records, let it run again
      Deno.kill(a.proc.pid, "SIGSTOP");
      try {
        for (let i = 0; i < 200; i++) await new Deno.Command("/bin/true").output();
      } finally {
        Deno.kill(a.proc.pid, "SIGCONT");
      }
      const degraded = await a.event(
        (ev) => ev.type === "state_change" && ev.to === "DEGRADED",
        "a DEGRADED state_change",
      );
      strictEqual(degraded.reason_code, "PRIORITY_RINGBUF_DROPS");
      strictEqual(degraded.from, "ENFORCE_SIGNAL");
      const mid = CapabilitiesReport.parse(JSON.parse(Deno.readTextFileSync(e.report)));
      strictEqual(mid.runtime_state, "DEGRADED", "the report follows the state");
      // drops stop: back to the start state once the drop window is clean (10 checks)
      const back = await a.event(
        (ev) => ev.type === "state_change" && ev.reason_code === "RECOVERED",
        "a RECOVERED state_change",
        30_000,
      );
      strictEqual(back.to, "ENFORCE_SIGNAL");
      ok(back.transition_id > degraded.transition_id);
      const after = CapabilitiesReport.parse(JSON.parse(Deno.readTextFileSync(e.report)));
      strictEqual(after.runtime_state, "ENFORCE_SIGNAL");
      strictEqual(after.state_transitions.total, back.transition_id);
    } finally {
      await a.stop("SIGTERM");
    }
  }));

Deno.test("runtime checks: --deny-rate-threshold degrades to DENY_RATE_THRESHOLD_EXCEEDED", () =>
  withEnv(async (e) => {
    const denied = `${e.dir}/denied`;
    Deno.writeTextFileSync(denied, "secret");
    const a = new Agent(["--enforce-fallback=signal", "--deny-rate-threshold", "0.5"], e.env);
    try {
      await a.ready();
      await a.stateChanges();
      await denyInPins(e.pinRoot, denied, 7);
      // 10 offenders within the 10 s window: 1 deny/s on average > 0.5
      for (let i = 0; i < 10; i++) {
        const cat = await new Deno.Command("/bin/cat", { args: [denied], stdout: "null" })
          .output();
        strictEqual(cat.signal, "SIGKILL");
      }
      const ev = await a.event(
        (x) => x.type === "state_change" && x.to === "DEGRADED",
        "a DEGRADED state_change",
      );
      strictEqual(ev.reason_code, "DENY_RATE_THRESHOLD_EXCEEDED");
      match(ev.detail, /denies\/s exceeds 0\.5\/s/);
    } finally {
      await a.stop("SIGTERM");
    }
  }));

Deno.test("SIGHUP reopens the event file (logrotate) and never ends the agent", () =>
  withEnv(async (e) => {
    const log = `${e.dir}/events.jsonl`;
    const a = new Agent(["--enforce-gate-mode=audit-fallback", "--log", `file:${log}`], e.env);
    try {
      await a.ready();
      await Deno.rename(log, `${log}.1`);
      a.proc.kill("SIGHUP");
      await new Promise((r) => setTimeout(r, 300));
      strictEqual(a.exited, null, `the agent ended on SIGHUP:\n${a.err}`);
      match(a.err, /SIGHUP: reopening /);
      // new exec events land in the new file
      const deadline = Date.now() + 15_000;
      while (!exists(log) || !Deno.readTextFileSync(log).includes('"type":"exec"')) {
        ok(Date.now() < deadline, "no exec event in the reopened file within 15 s");
        await new Deno.Command("/bin/true").output();
        await new Promise((r) => setTimeout(r, 100));
      }
      strictEqual(Deno.statSync(log).mode! & 0o777, 0o600);
      ok(
        (Deno.readTextFileSync(`${log}.1`) + Deno.readTextFileSync(log)).includes(
          '"type":"state_change"',
        ),
        "no line lost across the reopen",
      );
      strictEqual((await httpGet(e.port, "/health")).status, 200);
    } finally {
      await a.stop();
    }
  }));

/** A datagram receiver at `path` (python3): every message, NUL-separated, into `out`. */
function notifyReceiver(path: string, out: string): Deno.ChildProcess {
  const py = [
    "import socket,sys",
    "s=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)",
    "s.bind(sys.argv[1])",
    "f=open(sys.argv[2],'ab',buffering=0)",
    "while True: f.write(s.recv(4096)+b'\\0')",
  ].join("\n");
  return new Deno.Command("python3", {
    args: ["-c", py, path, out],
    stdout: "null",
    stderr: "piped",
  })
    .spawn();
}

Deno.test("systemd notify: READY=1 once started (after the state is decided), STATUS, STOPPING=1 on SIGTERM", () =>
  withEnv(async (e) => {
    const dir = Deno.makeTempDirSync({ prefix: "aegis-notify-" });
    const sock = `${dir}/notify`, got = `${dir}/got`;
    const rx = notifyReceiver(sock, got);
    const read = () => {
      try {
        return Deno.readTextFileSync(got).split("\0").filter((m) => m !== "");
      } catch {
        return [];
      }
    };
    try {
      for (let i = 0; i < 100 && !exists(sock); i++) await new Promise((r) => setTimeout(r, 50));
      ok(exists(sock), "receiver bound");
      const a = new Agent(["--enforce-gate-mode=audit-fallback"], {
        ...e.env,
        NOTIFY_SOCKET: sock,
        WATCHDOG_USEC: "3000000",
      });
      try {
        await a.ready();
        for (let i = 0; i < 100 && !read().some((m) => m.startsWith("READY=1")); i++) {
          await new Promise((r) => setTimeout(r, 50));
        }
        const ready = read().find((m) => m.startsWith("READY=1"));
        ok(ready, `READY=1 sent: ${JSON.stringify(read())}`);
        match(ready!, /\nSTATUS=AUDIT_FALLBACK: \d+ hooks\nMAINPID=\d+$/);
        ok(read().indexOf(ready!) > 0, "the posture's STATUS came before READY");
        match(read()[0], /^STATUS=AUDIT_FALLBACK \(CAPABILITY_AUDIT_ONLY\)$/);
        // the 1 s checks ping the watchdog
        for (let i = 0; i < 60 && !read().includes("WATCHDOG=1"); i++) {
          await new Promise((r) => setTimeout(r, 50));
        }
        ok(read().includes("WATCHDOG=1"), `watchdog pinged: ${JSON.stringify(read())}`);
      } finally {
        const st = await a.stop();
        strictEqual(st.code, 0, a.err);
      }
      const msgs = read();
      strictEqual(msgs.at(-1), "STOPPING=1\nSTATUS=stopping", JSON.stringify(msgs));
    } finally {
      rx.kill();
      await rx.status;
      Deno.removeSync(dir, { recursive: true });
    }
  }));

Deno.test("emergency-enable on a node that does not enforce says so (not 'enforcement is ON')", () =>
  withEnv(async (e) => {
    const a = new Agent(["--enforce-gate-mode=audit-fallback"], e.env);
    try {
      await a.ready();
      const d = await run(AGENT, ["emergency-disable", "--reason", "host test"], e.env);
      strictEqual(d.code, 0, d.stderr);
      const en = await run(AGENT, ["emergency-enable", "--reason", "host test done"], e.env);
      strictEqual(en.code, 0, en.stderr);
      match(en.stdout, /enforcement is NOT active on this node: AUDIT_FALLBACK/);
      ok(!en.stdout.includes("ON again"), en.stdout);
    } finally {
      await a.stop();
    }
  }));
