/**
 * The rule-verification probe (ffi/aegis_probe.c through
 * src/native/probe_open.ts) on the host kernel, as root: the child moves
 * into a cgroup of ours, opens regular files and directories only, reports
 * the stat() identity of each path, and never opens a FIFO or a device.
 * (Whether the kernel denies is the VM tier's question: tests/vm/proof_vmtest.ts.)
 */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { openEmbeddedShim } from "../../src/assets/mod.ts";
import { cgroup2MountFrom } from "../../src/bpf/self_cgroup.ts";
import { probeOpenPaths, S_IFDIR, S_IFREG } from "../../src/native/probe_open.ts";

const root = Deno.uid() === 0;

Deno.test({
  name: "probe_open: regular files and directories are opened from the given cgroup; " +
    "FIFOs and devices only looked up; missing paths say ENOENT",
  ignore: !root,
  async fn() {
    const cgRoot = cgroup2MountFrom(Deno.readTextFileSync("/proc/self/mountinfo"));
    ok(cgRoot, "cgroup v2 is mounted");
    const cg = `${cgRoot}/aegisbpf-test-probe-${Deno.pid}`;
    Deno.mkdirSync(cg);
    const dir = Deno.makeTempDirSync({ prefix: "aegis-probe-" });
    using shim = await openEmbeddedShim(`${dir}/rt`);
    try {
      Deno.writeTextFileSync(`${dir}/file`, "x");
      Deno.symlinkSync(`${dir}/file`, `${dir}/link`);
      Deno.mkdirSync(`${dir}/sub`);
      new Deno.Command("mkfifo", { args: [`${dir}/fifo`] }).outputSync();
      const paths = [
        `${dir}/file`,
        `${dir}/link`,
        `${dir}/sub`,
        `${dir}/fifo`,
        "/dev/null",
        `${dir}/none`,
      ];
      const r = await probeOpenPaths(shim, `${cg}/cgroup.procs`, paths, 5000);
      strictEqual(r.cgroupErrno, 0);
      strictEqual(r.done, paths.length);
      strictEqual(r.timedOut, false);
      const st = Deno.statSync(`${dir}/file`);
      const [file, link, sub, fifo, devnull, none] = r.paths;
      deepStrictEqual(file, {
        lookupErrno: 0,
        openErrno: 0,
        dev: st.dev,
        ino: BigInt(st.ino!),
        type: S_IFREG,
      });
      deepStrictEqual(link, file, "a symlink is followed to the file it names");
      strictEqual(sub.openErrno, 0);
      strictEqual(sub.type, S_IFDIR);
      // a FIFO open with no writer would block, a device open can have effects: never tried
      strictEqual(fifo.openErrno, null);
      strictEqual(fifo.type, 0o010000);
      strictEqual(devnull.openErrno, null);
      strictEqual(devnull.type, 0o020000);
      deepStrictEqual(none, { lookupErrno: 2, openErrno: null, dev: null, ino: null, type: null });
      // the child left, the cgroup is empty again
      strictEqual(Deno.readTextFileSync(`${cg}/cgroup.procs`), "");

      // a cgroup it cannot enter: the move's errno, no path tried
      const bad = await probeOpenPaths(shim, `${dir}/no-such-cgroup/cgroup.procs`, paths, 5000);
      strictEqual(bad.cgroupErrno, 2);
      strictEqual(bad.paths.length, 0);
    } finally {
      Deno.removeSync(cg);
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
