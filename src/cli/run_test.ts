import { deepStrictEqual, rejects, strictEqual, throws } from "node:assert/strict";
import { Command } from "@commander-js/extra-typings";
import type { DaemonOptions } from "../daemon/daemon.ts";
import { AegisError } from "../errors.ts";
import { signalSlots } from "../daemon/engine_start.ts";
import {
  addRunCommand,
  parseDedupWindow,
  parseProofInterval,
  parseSampleRate,
  parseTamperThreshold,
} from "./run.ts";

Deno.test("--proof-interval: whole seconds 0..86400, anything else a usage error naming the flag", () => {
  strictEqual(parseProofInterval("30"), 30);
  strictEqual(parseProofInterval("0"), 0);
  strictEqual(parseProofInterval("86400"), 86400);
  for (
    const bad of ["-1", "1.5", "86401", "abc", "", "1e3", "0x10", "constructor", "9".repeat(400)]
  ) {
    throws(
      () => parseProofInterval(bad),
      (e: unknown) =>
        e instanceof AegisError && e.code === "USAGE" && e.message.includes("--proof-interval"),
      JSON.stringify(bad),
    );
  }
});

/** `aegisbpf run ARGS` parsed with the daemon replaced: the options it would get. */
async function runOptions(args: string[]): Promise<DaemonOptions> {
  let got: DaemonOptions | null = null;
  const program = new Command().exitOverride().configureOutput({ writeErr: () => {} });
  addRunCommand(program, (o) => {
    got = o;
    return Promise.resolve();
  });
  await program.parseAsync(["run", ...args], { from: "user" });
  if (!got) throw new Error("the daemon was not started");
  return got;
}

Deno.test("run --log-file-mode/--log-file-group and AEGIS_EVENT_LOG_FILE_MODE/_GROUP reach the daemon; bad values are refused", async () => {
  const log = ["--log", "file:/var/log/aegisbpf/events.jsonl"];
  let o = await runOptions(log);
  strictEqual(o.logFileMode, undefined, "default: the sink's 0600");
  strictEqual(o.logFileGid, undefined, "default: the group is left alone");
  o = await runOptions([...log, "--log-file-mode", "0640", "--log-file-group", "root"]);
  strictEqual(o.logFileMode, 0o640);
  strictEqual(o.logFileGid, 0);
  o = await runOptions([...log, "--log-file-group", "4242"]);
  strictEqual(o.logFileGid, 4242);
  const prev = [
    Deno.env.get("AEGIS_EVENT_LOG_FILE_MODE"),
    Deno.env.get("AEGIS_EVENT_LOG_FILE_GROUP"),
  ];
  try {
    Deno.env.set("AEGIS_EVENT_LOG_FILE_MODE", "0660");
    Deno.env.set("AEGIS_EVENT_LOG_FILE_GROUP", "0");
    o = await runOptions(log);
    strictEqual(o.logFileMode, 0o660);
    strictEqual(o.logFileGid, 0);
    // the flag wins over the environment
    o = await runOptions([...log, "--log-file-mode", "0640"]);
    strictEqual(o.logFileMode, 0o640);
    Deno.env.set("AEGIS_EVENT_LOG_FILE_MODE", "0644");
    await rejects(
      () => runOptions(log),
      (e: unknown) =>
        e instanceof AegisError && e.code === "USAGE" &&
        e.message.includes('--log-file-mode "0644"'),
    );
  } finally {
    for (const [i, k] of ["AEGIS_EVENT_LOG_FILE_MODE", "AEGIS_EVENT_LOG_FILE_GROUP"].entries()) {
      if (prev[i] === undefined) Deno.env.delete(k);
      else Deno.env.set(k, prev[i]!);
    }
  }
  for (
    const [args, what] of [
      [["--log-file-mode", "0666"], '--log-file-mode "0666": world-writable'],
      [["--log-file-mode", "4640"], "setuid"],
      [["--log-file-group", "no-such-group-aegis"], "no such group in /etc/group"],
    ] as const
  ) {
    await rejects(
      () => runOptions([...log, ...args]),
      (e: unknown) => e instanceof AegisError && e.code === "USAGE" && e.message.includes(what),
      args.join(" "),
    );
  }
});

Deno.test("run --enforce-signal: none by default; term/int/kill reach the daemon; AEGIS_ENFORCE_SIGNAL", async () => {
  let o = await runOptions([]);
  strictEqual(o.enforceSignal, undefined, "default: none, nothing signalled");
  strictEqual(o.killEscalation, undefined);
  for (const s of ["term", "int", "kill"] as const) {
    o = await runOptions(["--enforce-signal", s]);
    strictEqual(o.enforceSignal, s);
    strictEqual(o.killEscalation, undefined, "escalation is opt-in");
  }
  o = await runOptions(["--enforce-signal", "none"]);
  strictEqual(o.enforceSignal, undefined);
  const prev = Deno.env.get("AEGIS_ENFORCE_SIGNAL");
  try {
    Deno.env.set("AEGIS_ENFORCE_SIGNAL", "term");
    o = await runOptions([]);
    strictEqual(o.enforceSignal, "term");
  } finally {
    if (prev === undefined) Deno.env.delete("AEGIS_ENFORCE_SIGNAL");
    else Deno.env.set("AEGIS_ENFORCE_SIGNAL", prev);
  }
  await rejects(() => runOptions(["--enforce-signal", "hup"]));
});

Deno.test("run: capabilities are dropped by default; --no-drop-caps keeps them", async () => {
  strictEqual((await runOptions([])).dropCaps, undefined, "absent: dropped");
  strictEqual((await runOptions(["--drop-caps"])).dropCaps, undefined);
  strictEqual((await runOptions(["--no-drop-caps"])).dropCaps, false);
});

Deno.test("run: --seccomp is enforce by default; log and off are accepted; anything else is a usage error", async () => {
  strictEqual((await runOptions([])).seccomp, "enforce");
  strictEqual((await runOptions(["--seccomp", "log"])).seccomp, "log");
  strictEqual((await runOptions(["--seccomp", "off"])).seccomp, "off");
  await rejects(() => runOptions(["--seccomp", "strict"]));
});

Deno.test("run: self-protection on by default, --self-protect accepted, --no-self-protect turns it off", async () => {
  strictEqual((await runOptions([])).selfProtect, true);
  strictEqual((await runOptions(["--self-protect"])).selfProtect, true);
  strictEqual((await runOptions(["--no-self-protect"])).selfProtect, undefined);
  // the last one given wins, as for every commander flag pair
  strictEqual((await runOptions(["--self-protect", "--no-self-protect"])).selfProtect, undefined);
});

Deno.test("run --kill-escalation: the C++ agent's 5 denies in 30 s by default, tunable, only above term or int", async () => {
  let o = await runOptions(["--enforce-signal", "term", "--kill-escalation"]);
  deepStrictEqual(o.killEscalation, { threshold: 5, windowMs: 30_000 });
  o = await runOptions([
    "--enforce-signal",
    "int",
    "--kill-escalation",
    "--kill-escalation-threshold",
    "3",
    "--kill-escalation-window",
    "2m",
  ]);
  strictEqual(o.enforceSignal, "int");
  deepStrictEqual(o.killEscalation, { threshold: 3, windowMs: 120_000 });
  for (
    const [args, what] of [
      [["--kill-escalation"], "needs --enforce-signal term or int (got none)"],
      [["--enforce-signal", "kill", "--kill-escalation"], "every deny sends SIGKILL already"],
      [["--enforce-signal", "term", "--kill-escalation-threshold", "3"], "need --kill-escalation"],
      [["--enforce-signal", "term", "--kill-escalation-window", "10s"], "need --kill-escalation"],
      [
        ["--enforce-signal", "term", "--kill-escalation", "--kill-escalation-threshold", "1"],
        "from 2 to 1000",
      ],
      [
        ["--enforce-signal", "term", "--kill-escalation", "--kill-escalation-window", "2h"],
        '--kill-escalation-window "2h"',
      ],
    ] as const
  ) {
    await rejects(
      () => runOptions([...args]),
      (e: unknown) => e instanceof AegisError && e.code === "USAGE" && e.message.includes(what),
      args.join(" "),
    );
  }
});

Deno.test("the signal config slots: armed only for enforcing LSM programs; threshold and window packed", () => {
  deepStrictEqual(signalSlots({}, true), { signal: 0n, escalation: 0n });
  deepStrictEqual(signalSlots({ enforceSignal: "term" }, true), { signal: 15n, escalation: 0n });
  deepStrictEqual(signalSlots({ enforceSignal: "int" }, true).signal, 2n);
  deepStrictEqual(signalSlots({ enforceSignal: "kill" }, true).signal, 9n);
  deepStrictEqual(
    signalSlots(
      { enforceSignal: "term", killEscalation: { threshold: 5, windowMs: 30_000 } },
      true,
    ),
    { signal: 15n, escalation: (30_000n << 32n) | 5n },
  );
  // audit or the fallback: written as 0, so re-adopted pins are disarmed
  deepStrictEqual(
    signalSlots({ enforceSignal: "term", killEscalation: { threshold: 5, windowMs: 1000 } }, false),
    { signal: 0n, escalation: 0n },
  );
});

Deno.test("run --event-sample-rate/--event-dedup-window and their variables reach the daemon; bad values are usage errors", async () => {
  let o = await runOptions([]);
  strictEqual(o.eventSampleRate, 1, "default: every event");
  strictEqual(o.eventDedupWindowSeconds, undefined, "default: no dedup");
  o = await runOptions(["--event-sample-rate", "10", "--event-dedup-window", "1s"]);
  strictEqual(o.eventSampleRate, 10);
  strictEqual(o.eventDedupWindowSeconds, 1);
  o = await runOptions(["--event-dedup-window", "2m"]);
  strictEqual(o.eventDedupWindowSeconds, 120);
  o = await runOptions(["--event-dedup-window", "off"]);
  strictEqual(o.eventDedupWindowSeconds, undefined);
  const prev = [Deno.env.get("AEGIS_EVENT_SAMPLE_RATE"), Deno.env.get("AEGIS_EVENT_DEDUP_WINDOW")];
  try {
    Deno.env.set("AEGIS_EVENT_SAMPLE_RATE", "5");
    Deno.env.set("AEGIS_EVENT_DEDUP_WINDOW", "30s");
    o = await runOptions([]);
    strictEqual(o.eventSampleRate, 5);
    strictEqual(o.eventDedupWindowSeconds, 30);
    Deno.env.set("AEGIS_EVENT_SAMPLE_RATE", "0");
    await rejects(
      () => runOptions([]),
      (e: unknown) => e instanceof AegisError && e.code === "USAGE",
    );
  } finally {
    for (const [i, k] of ["AEGIS_EVENT_SAMPLE_RATE", "AEGIS_EVENT_DEDUP_WINDOW"].entries()) {
      if (prev[i] === undefined) Deno.env.delete(k);
      else Deno.env.set(k, prev[i]!);
    }
  }
  const usage = (flag: string) => (e: unknown) =>
    e instanceof AegisError && e.code === "USAGE" && e.message.includes(flag);
  for (
    const bad of [
      "0",
      "-1",
      "1.5",
      "1e309",
      "1e3",
      "2000000",
      "99999999999",
      "__proto__",
      "",
      "0x10",
    ]
  ) {
    throws(() => parseSampleRate(bad), usage("--event-sample-rate"), JSON.stringify(bad));
  }
  strictEqual(parseSampleRate("1"), 1);
  strictEqual(parseSampleRate("1000000"), 1_000_000);
  for (const bad of ["0", "-1s", "1.5s", "1e309", "2h", "__proto__", "", "500ms", "constructor"]) {
    throws(() => parseDedupWindow(bad), usage("--event-dedup-window"), JSON.stringify(bad));
  }
  strictEqual(parseDedupWindow("1h"), 3600);
  await rejects(
    () => runOptions(["--event-sample-rate", "__proto__"]),
    usage("--event-sample-rate"),
  );
});

Deno.test("--tamper-degrade-threshold: whole attempts 0..1000000; absent unless given", async () => {
  strictEqual(parseTamperThreshold("3"), 3);
  strictEqual(parseTamperThreshold("0"), 0);
  for (const bad of ["-1", "2.5", "1000001", "x", "", "__proto__", "1e2"]) {
    throws(
      () => parseTamperThreshold(bad),
      (e: unknown) =>
        e instanceof AegisError && e.code === "USAGE" &&
        e.message.includes("--tamper-degrade-threshold"),
      JSON.stringify(bad),
    );
  }
  strictEqual((await runOptions(["--self-protect"])).tamperDegradeThreshold, undefined);
  strictEqual(
    (await runOptions(["--self-protect", "--tamper-degrade-threshold", "0"]))
      .tamperDegradeThreshold,
    0,
  );
});
