import { rejects, strictEqual, throws } from "node:assert/strict";
import { Command } from "@commander-js/extra-typings";
import type { DaemonOptions } from "../daemon/daemon.ts";
import { AegisError } from "../errors.ts";
import { addRunCommand, parseDedupWindow, parseProofInterval, parseSampleRate } from "./run.ts";

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
