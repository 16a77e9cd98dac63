/**
 * VM tier: a policy naming a file that does not exist yet is applied
 * (reported unresolved); the running agent watches the parent directory
 * and enforces the rule when the file appears. Measures the window
 * between the file's creation and the first EPERM (a tight open loop in a
 * separate process) and asserts it is under 10 s.
 *
 * Needs the daemon wiring (UnresolvedWatcher constructed from the applied
 * policy's unresolved list, policy apply through the control socket).
 */
import { match, ok, strictEqual } from "node:assert/strict";
import { writeStdout } from "../../src/log.ts";
import { LAUNCHER, run, tryOpen } from "../lib/helpers.ts";

const LSM_ON = Deno.env.get("AEGIS_VM_LSM") === "on";

Deno.test({
  name: "unresolved path: enforced once the file appears; creation-to-EPERM window measured",
  ignore: !LSM_ON,
  fn: async () => {
    const id = crypto.randomUUID().slice(0, 8);
    const dir = Deno.makeTempDirSync({ dir: "/tmp", prefix: "aegis-unres-" });
    const env = {
      ...Deno.env.toObject(),
      AEGIS_PIN_ROOT: `/sys/fs/bpf/aegis-unres-${id}`,
      AEGIS_STATE_DIR: `${dir}/state`,
      AEGIS_RUNTIME_DIR: `${dir}/run`,
    };
    const later = `${dir}/later.bin`;
    const agent = new Deno.Command(LAUNCHER, {
      args: ["run"],
      env,
      stdout: "null",
      stderr: "piped",
    })
      .spawn();
    const err = agent.stderr.pipeThrough(new TextDecoderStream()).getReader();
    try {
      let log = "";
      while (!log.includes("agent started")) {
        const { value, done } = await err.read();
        if (done) break;
        log += value;
      }
      match(log, /agent started, ENFORCE/);
      Deno.writeTextFileSync(`${dir}/p.pol`, `version=1\n[deny_path]\n${later}\n`);
      const a = await run(LAUNCHER, ["policy", "apply", `${dir}/p.pol`], env);
      strictEqual(a.code, 0, a.stderr);
      match(a.stdout, /unresolved deny_path line 3: .*later\.bin: does not exist/);

      // create the file, then open it in a tight loop until the first EPERM
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
          later,
        ],
        stdout: "piped",
      }).output();
      const outText = new TextDecoder().decode(probe.stdout).trim();
      ok(!outText.startsWith("timeout"), `never enforced within 30 s (${outText})`);
      const [secs, opens] = outText.split(" ").map(Number);
      writeStdout(
        `unresolved window: ${(secs * 1000).toFixed(1)} ms from creation to the first EPERM ` +
          `(${opens} opens succeeded meanwhile; kernel ${Deno.env.get("AEGIS_VM_KERNEL")})` + "\n",
      );
      ok(secs < 10, `enforced ${secs} s after creation (bound 10 s)`);
      strictEqual(tryOpen(later), "EPERM/EACCES");
    } finally {
      agent.kill("SIGTERM");
      await agent.status;
      await err.cancel().catch(() => {});
      await run(LAUNCHER, ["uninstall"], env);
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
