import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import type { AegisEvent } from "../contracts.ts";
import { sha256Hex } from "../util/bytes.ts";
import { ControlLog } from "./control_log.ts";
import { EmergencyControl, type EmergencyDeps, STORM_THRESHOLD } from "./emergency.ts";
import { acquireLock } from "./lock.ts";
import { FakeFlag, privateTempDir } from "./control_testing.ts";

const CALLER = { uid: 0, pid: 4242 };
const T0 = 1_700_000_000_000;

function setup(extra: Partial<EmergencyDeps> = {}) {
  const { dir, owner } = privateTempDir();
  const flag = new FakeFlag();
  const events: AegisEvent[] = [];
  let clock = T0;
  const ctl = new EmergencyControl({
    stateDir: `${dir}/state`,
    flag,
    bus: { emit: (e) => events.push(e) },
    nodeName: "node-a",
    now: () => clock,
    ownerUid: owner,
    lockTimeoutMs: 300,
    ...extra,
  });
  return {
    dir,
    owner,
    flag,
    events,
    ctl,
    advance: (ms: number) => clock += ms,
    logLines: () => {
      try {
        return Deno.readTextFileSync(`${dir}/state/control_log.jsonl`).split("\n").filter((l) =>
          l !== ""
        ).map((l) => JSON.parse(l));
      } catch {
        return [];
      }
    },
    cleanup: () => Deno.removeSync(dir, { recursive: true }),
  };
}

Deno.test("emergency: disable flips the flag, logs one line, writes state, emits control_change", async () => {
  const t = setup();
  try {
    const r = await t.ctl.toggle(true, "INC-1: bad rule\nsecond line", CALLER);
    strictEqual(r.changed, true);
    strictEqual(r.active, true);
    strictEqual(r.prev_active, false);
    strictEqual(t.flag.value, true);
    deepStrictEqual(t.flag.sets, [true]);
    const expectSha = await sha256Hex("INC-1: bad rule\nsecond line");
    const lines = t.logLines();
    strictEqual(lines.length, 1);
    deepStrictEqual(lines[0], {
      type: "control_change",
      event_version: 1,
      control: "emergency_disable",
      action: "disable",
      enabled: true,
      prev_enabled: false,
      changed_at_unix: T0 / 1000,
      uid: 0,
      pid: 4242,
      caller_source: "self",
      node_name: "node-a",
      reason: "INC-1: bad rule\uFFFDsecond line",
      reason_sha256: expectSha,
      storm_active: false,
      storm_transitions_60s: 1,
      storm_transitions_in_window: 1,
      storm_threshold: 10,
      storm_window_seconds: 60,
    });
    deepStrictEqual(t.events, lines, "the event is the log line");
    const st = t.ctl.status();
    strictEqual(st.active, true);
    strictEqual(st.since_unix, T0 / 1000);
    strictEqual(st.reason, "INC-1: bad rule\uFFFDsecond line");
    deepStrictEqual(st.changed_by, { uid: 0, pid: 4242, source: "self" });
    strictEqual(st.transitions_total, 1);
    strictEqual(st.state_consistent, true);
    // modes: dir 0700, files 0600
    strictEqual(Deno.statSync(`${t.dir}/state`).mode! & 0o777, 0o700);
    for (const f of ["control_log.jsonl", "control_state.json", "control.lock"]) {
      strictEqual(Deno.statSync(`${t.dir}/state/${f}`).mode! & 0o777, 0o600, f);
    }

    t.advance(1000);
    const e = await t.ctl.toggle(false, "fixed", CALLER);
    strictEqual(e.changed, true);
    strictEqual(e.active, false);
    strictEqual(t.flag.value, false);
    strictEqual(t.logLines().length, 2);
    strictEqual(t.logLines()[1].action, "enable");
    strictEqual(t.logLines()[1].prev_enabled, true);
    strictEqual(t.events.length, 2);
    strictEqual(t.ctl.status().transitions_total, 2);
  } finally {
    t.cleanup();
  }
});

Deno.test("emergency: a no-op toggle is ok, changed false, and writes nothing", async () => {
  const t = setup();
  try {
    const r = await t.ctl.toggle(false, "already on", CALLER);
    strictEqual(r.ok, true);
    strictEqual(r.changed, false);
    deepStrictEqual(t.flag.sets, []);
    strictEqual(t.logLines().length, 0);
    strictEqual(t.events.length, 0);
    await t.ctl.toggle(true, "x", CALLER);
    const again = await t.ctl.toggle(true, "x again", CALLER);
    strictEqual(again.changed, false);
    strictEqual(t.logLines().length, 1);
    strictEqual(t.events.length, 1);
  } finally {
    t.cleanup();
  }
});

Deno.test("emergency: a missing reason is refused and changes nothing", async () => {
  const t = setup();
  try {
    await rejects(t.ctl.toggle(true, "", CALLER), /A reason is required/);
    await rejects(t.ctl.toggle(true, "   ", CALLER), /A reason is required/);
    strictEqual(t.flag.value, false);
    strictEqual(t.logLines().length, 0);
  } finally {
    t.cleanup();
  }
});

Deno.test("emergency: hostile reasons are stored cleaned and capped, hashed raw", async () => {
  const t = setup();
  try {
    const raw = '\x1b]0;pwned\x07\n{"type":"fake"}\0' + "A".repeat(1 << 20);
    await t.ctl.toggle(true, raw, CALLER);
    const [line] = t.logLines();
    // deno-lint-ignore no-control-regex
    ok(!/[\u0000-\u001f]/.test(line.reason), "no control characters in the log");
    strictEqual(new TextEncoder().encode(line.reason).length, 512);
    strictEqual(line.reason_sha256, await sha256Hex(raw));
    const text = Deno.readTextFileSync(`${t.dir}/state/control_log.jsonl`);
    strictEqual(text.split("\n").length, 2, "exactly one line (plus the final newline)");
  } finally {
    t.cleanup();
  }
});

Deno.test("emergency: more than 10 transitions within 60 s is a storm; it ends when the window passes", async () => {
  const t = setup();
  try {
    for (let i = 1; i <= STORM_THRESHOLD; i++) {
      const r = await t.ctl.toggle(i % 2 === 1, `t${i}`, CALLER);
      strictEqual(r.storm_active, false, `transition ${i}: no storm yet`);
      t.advance(1000);
    }
    const r11 = await t.ctl.toggle(true, "t11", CALLER);
    strictEqual(r11.storm_active, true);
    strictEqual(r11.transitions_60s, 11);
    const last = t.logLines().at(-1);
    strictEqual(last.storm_active, true);
    strictEqual(last.storm_transitions_60s, 11);
    strictEqual(t.events.at(-1)!.storm_active, true);
    deepStrictEqual(t.ctl.counters(), { active: true, transitions: 11, stormActive: true });
    t.advance(61_000);
    strictEqual(t.ctl.status().storm_active, false, "window passed");
    strictEqual(t.ctl.status().transitions_60s, 0);
    const r12 = await t.ctl.toggle(false, "t12", CALLER);
    strictEqual(r12.storm_active, false);
    strictEqual(t.ctl.counters().transitions, 12);
  } finally {
    t.cleanup();
  }
});

Deno.test("emergency: storm history is shared by two instances (two CLI runs) on one state dir", async () => {
  const t = setup();
  try {
    const other = new EmergencyControl({
      stateDir: `${t.dir}/state`,
      flag: t.flag,
      nodeName: "node-a",
      now: () => T0,
      ownerUid: t.owner,
    });
    for (let i = 0; i < 11; i++) {
      await (i % 2 ? other : t.ctl).toggle(i % 2 === 0, `r${i}`, CALLER);
    }
    strictEqual(t.ctl.status().storm_active, true);
    strictEqual(t.logLines().length, 11);
  } finally {
    t.cleanup();
  }
});

Deno.test("control log: rotated by size, kept files bounded, every line whole", async () => {
  const { dir, owner } = privateTempDir();
  try {
    const flag = new FakeFlag();
    const ctl = new EmergencyControl({
      stateDir: dir,
      flag,
      nodeName: "n",
      now: () => T0,
      ownerUid: owner,
      logOptions: { maxBytes: 1200, keep: 3 },
    });
    for (let i = 0; i < 40; i++) await ctl.toggle(i % 2 === 0, `rotation ${i}`, CALLER);
    const names = [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) =>
      n.startsWith("control_log")
    ).sort();
    deepStrictEqual(names, [
      "control_log.jsonl",
      "control_log.jsonl.1",
      "control_log.jsonl.2",
      "control_log.jsonl.3",
    ]);
    for (const n of names) {
      ok(Deno.statSync(`${dir}/${n}`).size <= 1200, `${n} within the size`);
      for (const l of Deno.readTextFileSync(`${dir}/${n}`).split("\n").filter(Boolean)) {
        strictEqual(JSON.parse(l).type, "control_change");
      }
    }
    const all = ctl.log.readAll();
    strictEqual(all.at(-1)!.reason, "rotation 39", "newest line last");
    ok(all.length < 40, "oldest files were dropped");
    const reasons = all.map((r) => Number(String(r.reason).split(" ")[1]));
    deepStrictEqual(reasons, reasons.toSorted((a, b) => a - b), "in order across files");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("emergency: an unwritable log refuses the toggle before the flag changes", async () => {
  const t = setup();
  try {
    Deno.mkdirSync(`${t.dir}/state`, { mode: 0o700 });
    Deno.mkdirSync(`${t.dir}/state/control_log.jsonl`); // a directory: cannot be appended to
    await rejects(t.ctl.toggle(true, "x", CALLER), /control log/);
    strictEqual(t.flag.value, false);
    deepStrictEqual(t.flag.sets, []);
    strictEqual(t.events.length, 0);
  } finally {
    t.cleanup();
  }
});

class FailingLog extends ControlLog {
  override append(): void {
    throw new Error("disk full (test)");
  }
}

Deno.test("emergency: a log write failing after the flip reverts the flag and fails", async () => {
  const { dir, owner } = privateTempDir();
  try {
    const flag = new FakeFlag();
    const events: AegisEvent[] = [];
    const ctl = new EmergencyControl({
      stateDir: dir,
      flag,
      bus: { emit: (e) => events.push(e) },
      nodeName: "n",
      ownerUid: owner,
      controlLog: new FailingLog(`${dir}/control_log.jsonl`, { ownerUid: owner }),
    });
    await rejects(ctl.toggle(true, "x", CALLER), /disk full/);
    deepStrictEqual(flag.sets, [true, false], "flipped, then put back");
    strictEqual(flag.value, false, "enforcement stays on");
    strictEqual(events.length, 0, "no control_change for a toggle that did not happen");
    let stateExists = true;
    try {
      Deno.statSync(`${dir}/control_state.json`);
    } catch {
      stateExists = false;
    }
    strictEqual(stateExists, false);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("emergency: a failing kernel flag update changes nothing and writes nothing", async () => {
  const t = setup();
  try {
    t.flag.failSet = true;
    await rejects(t.ctl.toggle(true, "x", CALLER), /map update failed/);
    strictEqual(t.logLines().length, 0);
    strictEqual(t.events.length, 0);
  } finally {
    t.cleanup();
  }
});

Deno.test("emergency: a second instance waits for the lock and times out with a clear error", async () => {
  const t = setup();
  try {
    await t.ctl.toggle(true, "create the dir", CALLER);
    const held = await acquireLock(`${t.dir}/state/control.lock`, 1000, t.owner);
    const other = new EmergencyControl({
      stateDir: `${t.dir}/state`,
      flag: t.flag,
      nodeName: "n",
      ownerUid: t.owner,
      lockTimeoutMs: 200,
    });
    const t0 = performance.now();
    await rejects(other.toggle(false, "y", CALLER), /another operator holds the emergency lock/);
    ok(performance.now() - t0 >= 190, "it waited for the timeout");
    strictEqual(t.flag.value, true, "nothing changed");
    held.release();
    // the abandoned wait is granted now and let go at once: a new toggle gets the lock
    const r = await other.toggle(false, "y", CALLER);
    strictEqual(r.changed, true);
  } finally {
    t.cleanup();
  }
});

Deno.test("emergency: a waiting toggle proceeds once the holder releases within the timeout", async () => {
  const t = setup({ lockTimeoutMs: 5000 });
  try {
    await t.ctl.toggle(true, "create", CALLER);
    const held = await acquireLock(`${t.dir}/state/control.lock`, 1000, t.owner);
    const pending = t.ctl.toggle(false, "after the holder", CALLER);
    await new Promise((r) => setTimeout(r, 100));
    strictEqual(t.flag.value, true, "still waiting");
    held.release();
    strictEqual((await pending).changed, true);
    strictEqual(t.flag.value, false);
  } finally {
    t.cleanup();
  }
});

const canRun = (await Deno.permissions.query({ name: "run" })).state === "granted";

Deno.test({
  name: canRun
    ? "emergency: the lock excludes another process (a child deno holding it)"
    : "emergency: cross-process lock (SKIPPED: needs --allow-run to start a child; tests/host/control_test.ts covers two processes)",
  ignore: !canRun,
  fn: async () => {
    const t = setup();
    try {
      await t.ctl.toggle(true, "create", CALLER);
      const lockPath = `${t.dir}/state/control.lock`;
      const child = new Deno.Command(Deno.execPath(), {
        args: [
          "eval",
          `const f = Deno.openSync(${JSON.stringify(lockPath)}, {read: true, write: true});
           await f.lock(true);
           await Deno.stdout.write(new TextEncoder().encode("locked\\n"));
           for await (const _ of Deno.stdin.readable) {}`,
        ],
        stdin: "piped",
        stdout: "piped",
      }).spawn();
      const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
      strictEqual((await reader.read()).value?.trim(), "locked");
      await rejects(t.ctl.toggle(false, "x", CALLER), /another operator holds the emergency lock/);
      strictEqual(t.flag.value, true);
      await child.stdin.close();
      await child.status;
      await reader.cancel();
      strictEqual(
        (await t.ctl.toggle(false, "x", CALLER)).changed,
        true,
        "free after the child exits",
      );
    } finally {
      t.cleanup();
    }
  },
});
if (!canRun) {
  Deno.stderr.writeSync(
    new TextEncoder().encode(
      "note: the cross-process lock test is skipped without --allow-run " +
        "(deno test -A src/control runs it; tests/host/control_test.ts covers processes too)\n",
    ),
  );
}

Deno.test("emergency: an unsafe state directory is refused before anything changes", async () => {
  const t = setup();
  try {
    Deno.mkdirSync(`${t.dir}/state`, { mode: 0o700 });
    Deno.chmodSync(`${t.dir}/state`, 0o777);
    await rejects(
      t.ctl.toggle(true, "x", CALLER),
      /state directory .* mode 0777.*not writable by group or others/s,
    );
    strictEqual(t.flag.value, false);
    Deno.chmodSync(`${t.dir}/state`, 0o700);
    const wrongOwner = new EmergencyControl({
      stateDir: `${t.dir}/state`,
      flag: t.flag,
      nodeName: "n",
      ownerUid: t.owner + 1,
    });
    await rejects(wrongOwner.toggle(true, "x", CALLER), /owned by uid \d+ .*must be owned by uid/s);
    strictEqual(t.flag.value, false);
    // a symlinked state dir is refused too
    Deno.symlinkSync(`${t.dir}/state`, `${t.dir}/link`);
    const viaLink = new EmergencyControl({
      stateDir: `${t.dir}/link`,
      flag: t.flag,
      nodeName: "n",
      ownerUid: t.owner,
    });
    await rejects(viaLink.toggle(true, "x", CALLER), /symbolic link/);
    strictEqual(t.flag.value, false);
  } finally {
    t.cleanup();
  }
});

Deno.test("emergency: unsafe state files are refused (group-writable log, symlinked state)", async () => {
  const t = setup();
  try {
    await t.ctl.toggle(true, "create", CALLER);
    Deno.chmodSync(`${t.dir}/state/control_log.jsonl`, 0o666);
    await rejects(t.ctl.toggle(false, "x", CALLER), /control log .* mode 0666/s);
    strictEqual(t.flag.value, true);
    Deno.chmodSync(`${t.dir}/state/control_log.jsonl`, 0o600);
    Deno.renameSync(`${t.dir}/state/control_state.json`, `${t.dir}/elsewhere.json`);
    Deno.symlinkSync(`${t.dir}/elsewhere.json`, `${t.dir}/state/control_state.json`);
    await rejects(t.ctl.toggle(false, "x", CALLER), /control state file .* symbolic link/s);
    strictEqual(t.flag.value, true);
  } finally {
    t.cleanup();
  }
});

Deno.test("emergency: a corrupt state file does not jam the kill switch; status reports it", async () => {
  const t = setup();
  try {
    await t.ctl.toggle(true, "create", CALLER);
    Deno.writeTextFileSync(`${t.dir}/state/control_state.json`, "{not json");
    const st = t.ctl.status();
    strictEqual(st.active, true, "the kernel flag is still read");
    ok(st.state_error?.includes("not JSON"), st.state_error ?? "");
    strictEqual(st.state_consistent, false);
    const r = await t.ctl.toggle(false, "recover", CALLER);
    strictEqual(r.changed, true);
    strictEqual(t.ctl.status().state_error, null, "rewritten");
  } finally {
    t.cleanup();
  }
});

Deno.test("emergency: status without any state file", () => {
  const t = setup();
  try {
    t.flag.value = true; // e.g. set before this node kept a state file
    const st = t.ctl.status();
    strictEqual(st.active, true);
    strictEqual(st.reason, null);
    strictEqual(st.transitions_total, 0);
    strictEqual(st.state_consistent, false);
  } finally {
    t.cleanup();
  }
});

Deno.test("emergency: at start the kernel flag follows control_state.json, loudly", async () => {
  const t = setup();
  try {
    strictEqual(t.ctl.reconcileAtStart(), null, "no file, flag off: they agree");
    await t.ctl.toggle(true, "INC-7", CALLER);
    strictEqual(t.ctl.reconcileAtStart(), null, "file and flag agree");
    // fresh maps after a reboot: the flag is off again, the file says active
    t.flag.value = false;
    const events = t.events.length;
    deepStrictEqual(t.ctl.reconcileAtStart(), { active: true, prevActive: false });
    strictEqual(t.flag.value, true);
    const ev = t.events.slice(events);
    strictEqual(ev.length, 1);
    strictEqual(ev[0].action, "disable");
    strictEqual(ev[0].reconciled_at_start, true);
    strictEqual(ev[0].enabled, true);
    strictEqual(ev[0].reason, "INC-7");
    strictEqual(t.ctl.status().state_consistent, true);
    strictEqual(t.logLines().length, 1, "not a transition of the audit trail");
    // a flag left on without a record: the record wins
    await t.ctl.toggle(false, "resolved", CALLER);
    t.flag.value = true;
    deepStrictEqual(t.ctl.reconcileAtStart(), { active: false, prevActive: true });
    strictEqual(t.flag.value, false);
    // an unusable file changes nothing
    Deno.writeTextFileSync(t.ctl.statePath, "{not json");
    t.flag.value = true;
    strictEqual(t.ctl.reconcileAtStart(), null);
    strictEqual(t.flag.value, true);
  } finally {
    t.cleanup();
  }
});
