/**
 * The proof's probes (ffi/aegis_probe.c through src/native/probe.ts) on the
 * host kernel, as root. Rule verification: the child moves
 * into a cgroup of ours, opens regular files and directories only, reports
 * the stat() identity of each path, and never opens a FIFO or a device.
 * The network canary: one connect from the cgroup, its errno reported.
 * (Whether the kernel denies is the VM tier's question: tests/vm/proof_vmtest.ts.)
 */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { openEmbeddedShim } from "../../src/assets/mod.ts";
import type { Shim } from "../../src/native/shim.ts";
import { cgroup2MountFrom } from "../../src/util/mountinfo.ts";
import {
  probeConnect,
  probeKernel,
  probeOpenPaths,
  S_IFDIR,
  S_IFREG,
} from "../../src/native/probe.ts";

const root = Deno.uid() === 0;

/**
 * A cgroup of this test's own below the cgroup v2 root (its cgroup.procs
 * path), a temporary directory and the embedded shim, all removed after `f`.
 */
async function withProbeEnv(
  name: string,
  f: (e: { procs: string; dir: string; shim: Shim }) => Promise<void>,
): Promise<void> {
  const cgRoot = cgroup2MountFrom(Deno.readTextFileSync("/proc/self/mountinfo"));
  ok(cgRoot, "cgroup v2 is mounted");
  const cg = `${cgRoot}/aegisbpf-test-${name}-${Deno.pid}`;
  Deno.mkdirSync(cg);
  const dir = Deno.makeTempDirSync({ prefix: "aegis-probe-" });
  try {
    using shim = await openEmbeddedShim(`${dir}/rt`);
    await f({ procs: `${cg}/cgroup.procs`, dir, shim });
    strictEqual(Deno.readTextFileSync(`${cg}/cgroup.procs`), "", "every probe process is gone");
  } finally {
    Deno.removeSync(cg);
    Deno.removeSync(dir, { recursive: true });
  }
}

Deno.test({
  name: "probe_open: regular files and directories are opened from the given cgroup; " +
    "FIFOs and devices only looked up; missing paths say ENOENT",
  ignore: !root,
  fn: () =>
    withProbeEnv("probe", async ({ procs, dir, shim }) => {
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
      const r = await probeOpenPaths(shim, procs, paths, 5000);
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
      // a cgroup it cannot enter: the move's errno, no path tried
      const bad = await probeOpenPaths(shim, `${dir}/no-such-cgroup/cgroup.procs`, paths, 5000);
      strictEqual(bad.cgroupErrno, 2);
      strictEqual(bad.paths.length, 0);
    }),
});

Deno.test({
  name: "probe_connect: one connect from the given cgroup; its errno (refused, connected) reported",
  ignore: !root,
  fn: () =>
    withProbeEnv("connect", async ({ procs, dir, shim }) => {
      const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const port = (l.addr as Deno.NetAddr).port;
      try {
        const up = await probeConnect(shim, procs, "127.0.0.1", port, 5000);
        strictEqual(up.cgroupErrno, 0);
        ok([0, 115].includes(up.connectErrno!), `connected or in progress: ${JSON.stringify(up)}`);
      } finally {
        l.close();
      }
      const down = await probeConnect(shim, procs, "127.0.0.1", port, 5000);
      ok(
        [111, 115].includes(down.connectErrno!),
        `refused or in progress: ${JSON.stringify(down)}`,
      );
      strictEqual(down.timedOut, false);
      const bad = await probeConnect(shim, `${dir}/none/cgroup.procs`, "127.0.0.1", port, 5000);
      strictEqual(bad.cgroupErrno, 2);
      strictEqual(bad.connectErrno, 0, "never tried (the child left before the connect)");
    }),
});

Deno.test({
  name: "probe_kernel: ptrace, module and bpf attempts from the given cgroup; harmless answers",
  ignore: !root,
  fn: () =>
    withProbeEnv("kernel", async ({ procs, shim }) => {
      const r = await probeKernel(shim, procs, ["ptrace", "module", "bpf"], 5000);
      strictEqual(r.cgroupErrno, 0);
      strictEqual(r.timedOut, false);
      // no BPF LSM here: nothing denies. ptrace of its own grandchild works (or Yama says
      // EPERM at scope 3); 64 zero bytes are no module (ENOEXEC; EPERM if modules are
      // disabled; ENOSYS where a seccomp filter hides init_module, as on this dev host);
      // map type 0 is EINVAL
      ok([0, 1].includes(r.results.ptrace!), `ptrace: ${r.results.ptrace}`);
      ok([8, 1, 38].includes(r.results.module!), `module: ${r.results.module}`);
      strictEqual(r.results.bpf, 22);
      const one = await probeKernel(shim, procs, ["bpf"], 5000);
      deepStrictEqual(Object.keys(one.results), ["bpf"], "only what was asked");
    }),
});
