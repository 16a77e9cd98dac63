/**
 * Tier 2 (root): the agent as an operator runs it, through the launcher.
 */
import { match, ok, strictEqual } from "node:assert/strict";
import { EMBEDDED } from "../../src/assets/mod.ts";
import { ABI_FINGERPRINT } from "../../src/bpf/abi_gen.ts";
import { agentEnv, denyInPins } from "../lib/agent.ts";
import { LAUNCHER, run } from "../lib/helpers.ts";

Deno.test("version --json names every component and the loaded shim", async () => {
  const r = await run(LAUNCHER, ["version", "--json"]);
  strictEqual(r.code, 0, r.stderr);
  const v = JSON.parse(r.stdout);
  strictEqual(v.deno, Deno.version.deno);
  strictEqual(v.v8, Deno.version.v8);
  match(v.libbpf_version, /^1\.\d+$/);
  strictEqual(v.libbpf_version_source, "shim");
  strictEqual(v.abi.fingerprint, ABI_FINGERPRINT);
  strictEqual(v.bpf_object.sha256, EMBEDDED.bpfObject.sha256);
  strictEqual(v.shim.sha256, EMBEDDED.shim.sha256);
  strictEqual(v.shim.loaded, true);
  match(v.shim.loaded_from, /^\/run\/aegisbpf\/lib\/libaegis_shim-[0-9a-f]{16}\.so$/);
});

Deno.test("unknown command and unknown flag: usage on stderr, exit 2", async () => {
  for (
    const args of [["frobnicate"], ["version", "--frobnicate"], [
      "run",
      "--enforce-gate-mode=maybe",
    ]]
  ) {
    const r = await run(LAUNCHER, args);
    strictEqual(r.code, 2, `${args}: ${r.stderr}`);
    strictEqual(r.stdout, "");
    match(r.stderr, /error: .*\n\(run 'aegisbpf --help' for usage\)/);
  }
});

Deno.test("--help lists the commands", async () => {
  const r = await run(LAUNCHER, ["--help"]);
  strictEqual(r.code, 0);
  for (const c of ["run", "version"]) match(r.stdout, new RegExp(`\\n  ${c}\\b`));
});

Deno.test("run --audit streams exec events as JSON lines and stops cleanly on SIGTERM", async () => {
  const paths = agentEnv();
  const p = new Deno.Command(LAUNCHER, {
    args: ["run", "--audit"],
    env: paths.env,
    stdout: "piped",
    stderr: "piped",
  })
    .spawn();
  const reader = p.stdout.pipeThrough(new TextDecoderStream()).getReader();
  // wait for the start log line, then exec a marker program
  const errReader = p.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let err = "";
  while (!err.includes("agent started")) {
    const { value, done } = await errReader.read();
    if (done) break;
    err += value;
  }
  ok(err.includes("agent started"), err);
  const marker = await new Deno.Command("/bin/sleep", { args: ["0"] }).spawn().status;
  ok(marker.success);
  let buf = "";
  let found: Record<string, unknown> | undefined;
  const deadline = Date.now() + 10_000;
  while (!found && Date.now() < deadline) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    for (const line of buf.split("\n").slice(0, -1)) {
      const ev = JSON.parse(line);
      if (ev.type === "exec" && ev.comm === "sleep") found = ev;
    }
    buf = buf.slice(buf.lastIndexOf("\n") + 1);
  }
  p.kill("SIGTERM");
  const status = await p.status;
  await reader.cancel();
  await errReader.cancel();
  Deno.removeSync(paths.dir, { recursive: true });
  ok(found, "no exec event for sleep");
  for (const k of ["pid", "ppid", "uid", "start_time", "exec_id", "cgid", "comm"]) {
    ok(k in found!, k);
  }
  strictEqual(found!.exec_id, `${found!.start_time}-${found!.pid}`);
  strictEqual(status.code, 0);
});

Deno.test("run --enforce-fallback=signal: ENFORCE_SIGNAL kills a process that opens a denied file", async () => {
  const { env, pinRoot: root, dir } = agentEnv();
  const denied = `${dir}/denied`;
  await Deno.writeTextFile(denied, "secret");
  const agent = new Deno.Command(LAUNCHER, {
    args: ["run", "--enforce-fallback=signal"],
    env,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stdout = new Response(agent.stdout).text();
  const errReader = agent.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let log = "";
  try {
    while (!log.includes("agent started")) {
      const { value, done } = await errReader.read();
      if (done) break;
      log += value;
    }
    match(log, /agent started, ENFORCE_SIGNAL/);
    match(log, /BPF_LSM_DISABLED/);
    await denyInPins(root, denied, 5);
    // never open the denied file from this process while the signal is armed
    const cat = await new Deno.Command("/bin/cat", {
      args: [denied],
      stdout: "null",
      stderr: "null",
    })
      .output();
    strictEqual(cat.signal, "SIGKILL", `cat exited ${cat.code}`);
    const other = await new Deno.Command("/bin/cat", { args: ["/etc/hostname"], stdout: "null" })
      .output();
    strictEqual(other.success, true, "a file without a rule is read");
  } finally {
    agent.kill("SIGTERM");
    await agent.status;
    await errReader.cancel().catch(() => {});
    const un = await run(LAUNCHER, ["uninstall"], env);
    strictEqual(un.code, 0, un.stderr);
  }
  const events = (await stdout).split("\n").filter((l) => l.includes(`"type":"block"`)).map((l) =>
    JSON.parse(l)
  );
  ok(
    events.some((e) => e.action === "KILL" && e.comm === "cat" && e.rule_id === 5),
    JSON.stringify(events),
  );
  // the pins are gone: the file can be read again
  let readable = false;
  for (let i = 0; i < 100 && !readable; i++) {
    const r = await new Deno.Command("/bin/cat", { args: [denied], stdout: "null" }).output();
    readable = r.success;
    if (!readable) await new Promise((r) => setTimeout(r, 50));
  }
  ok(readable, "readable after uninstall");
  await Deno.remove(dir, { recursive: true });
});
