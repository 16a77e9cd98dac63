/**
 * VM tier: aegisbpf run the way an operator runs it (the development
 * launcher; the compiled binary when AEGIS_VM_AGENT points at it).
 */
import { match, ok, strictEqual } from "node:assert/strict";
import { EMBEDDED } from "../../src/assets/mod.ts";
import { LAUNCHER, run } from "../lib/helpers.ts";

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

Deno.test("aegisbpf run (enforce, fail-closed) never pretends: it exits 1 and says why", async () => {
  const r = await run(AGENT, ["run"]);
  strictEqual(r.code, 1, r.stderr);
  match(r.stderr, /Refusing to start in enforce mode \(gate fail-closed\)/);
  if (LSM_ON) match(r.stderr, /kernel enforcement programs are not part of this version/);
  else match(r.stderr, /BPF_LSM_DISABLED: bpf is not in the active LSM list/);
});

Deno.test("aegisbpf run --audit reports an exec in the guest", async () => {
  const p = new Deno.Command(AGENT, { args: ["run", "--audit"], stdout: "piped", stderr: "piped" })
    .spawn();
  const stdout = new Response(p.stdout).text();
  const err = p.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let log = "";
  while (!log.includes("agent started")) {
    const { value, done } = await err.read();
    if (done) break;
    log += value;
  }
  ok(log.includes("agent started"), log);
  await new Deno.Command("/bin/sleep", { args: ["0"] }).output();
  await new Promise((r) => setTimeout(r, 300));
  p.kill("SIGTERM");
  strictEqual((await p.status).code, 0, "clean stop on SIGTERM");
  const out = await stdout;
  await err.cancel().catch(() => {});
  const execs = out.split("\n").filter((l) => l).map((l) => JSON.parse(l)).filter((e) =>
    e.type === "exec" && e.comm === "sleep"
  );
  strictEqual(execs.length >= 1, true, out.slice(0, 500));
});
