// VM harness self-test: runs INSIDE the guest (scripts/vm/test_vm.sh), once per
// matrix cell. Proves the environment every other *_vmtest.ts relies on.
import assert from "node:assert/strict";

const env = (name: string): string => {
  const v = Deno.env.get(name);
  assert.ok(v !== undefined && v !== "", `${name} must be set by scripts/vm/run.sh`);
  return v;
};
const kernel = env("AEGIS_VM_KERNEL"); // "6.1" | "6.12"
const lsmOn = env("AEGIS_VM_LSM") === "on";
const repo = env("AEGIS_VM_REPO");

function fsMagic(path: string): string {
  const out = new Deno.Command("stat", { args: ["-f", "-c", "%t", path] }).outputSync();
  assert.equal(out.code, 0, `stat -f ${path}: ${new TextDecoder().decode(out.stderr)}`);
  return new TextDecoder().decode(out.stdout).trim();
}
function mountType(path: string): string | undefined {
  const lines = Deno.readTextFileSync("/proc/self/mounts").trim().split("\n");
  let type: string | undefined;
  for (const l of lines) {
    const f = l.split(" ");
    if (f[1] === path) type = f[2]; // last mount on a path wins
  }
  return type;
}

Deno.test("kernel release matches the cell", () => {
  const rel = Deno.osRelease();
  assert.ok(rel.startsWith(`${kernel}.`), `uname -r ${rel} is not a ${kernel}.x kernel`);
  assert.equal(rel, env("AEGIS_VM_KERNEL_RELEASE"));
});

Deno.test("bpf is an active LSM exactly when the cell is lsm-on", () => {
  const lsms = Deno.readTextFileSync("/sys/kernel/security/lsm").trim().split(",");
  assert.equal(lsms.includes("bpf"), lsmOn, `active LSMs: ${lsms.join(",")}`);
  assert.ok(lsms.includes("capability"), `active LSMs: ${lsms.join(",")}`);
});

Deno.test("kernel file systems are mounted (bpffs, cgroup2, securityfs, tracefs, tmpfs)", () => {
  assert.equal(fsMagic("/sys/fs/bpf"), "cafe4a11"); // BPF_FS_MAGIC
  assert.equal(fsMagic("/sys/fs/cgroup"), "63677270"); // CGROUP2_SUPER_MAGIC
  assert.equal(mountType("/sys/fs/cgroup"), "cgroup2");
  assert.ok(Deno.statSync("/sys/fs/cgroup/cgroup.controllers").isFile);
  assert.equal(fsMagic("/sys/kernel/security"), "73636673"); // SECURITYFS_MAGIC
  assert.equal(fsMagic("/sys/kernel/tracing"), "74726163"); // TRACEFS_MAGIC
  assert.equal(fsMagic("/tmp"), "1021994"); // TMPFS_MAGIC
  assert.equal(fsMagic("/run"), "1021994");
});

Deno.test("BTF for the running kernel is present", () => {
  const st = Deno.statSync("/sys/kernel/btf/vmlinux");
  assert.ok(st.isFile && st.size > 1_000_000, `size ${st.size}`);
});

Deno.test("running as root in the repository", () => {
  assert.equal(Deno.uid(), 0);
  assert.equal(Deno.cwd(), repo);
  assert.ok(Deno.statSync(`${repo}/deno.json`).isFile);
  assert.ok(Deno.statSync(`${repo}/tests/vm/harness_vmtest.ts`).isFile);
});

Deno.test("root file system is a writable overlay; writes stay in the guest", () => {
  assert.equal(mountType("/"), "overlay");
  assert.equal(fsMagic("/"), "794c7630"); // OVERLAYFS_SUPER_MAGIC
  // The runner checks on the host, after the boot, that this file does NOT exist there.
  const probe = `${repo}/.cache/vm/overlay-probe-${env("AEGIS_VM_RUN_ID")}`;
  Deno.mkdirSync(`${repo}/.cache/vm`, { recursive: true });
  Deno.writeTextFileSync(probe, "written inside the guest\n");
  assert.equal(Deno.readTextFileSync(probe), "written inside the guest\n");
  Deno.writeTextFileSync("/etc/aegis-vm-probe", "x"); // even system paths are writable
  Deno.removeSync("/etc/aegis-vm-probe");
});

Deno.test("results folder is writable and reaches the host", () => {
  const results = env("AEGIS_VM_RESULTS");
  assert.equal(mountType(results), "9p");
  Deno.writeTextFileSync(`${results}/harness-${kernel}-lsm-${lsmOn ? "on" : "off"}.txt`, "ok\n");
});

Deno.test("no network inside the guest (only loopback)", () => {
  const ifs = Deno.networkInterfaces().map((i) => i.name).filter((n) => n !== "lo");
  assert.deepEqual(ifs, []);
});

Deno.test("npm imports resolve offline from the host's DENO_DIR (shared via the overlay)", async () => {
  const { z } = await import("zod");
  assert.equal(z.string().parse("aegis"), "aegis");
});
