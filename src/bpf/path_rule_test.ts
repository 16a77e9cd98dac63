import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { UsageError } from "../errors.ts";
import { btrfsBtfPresent } from "./engine.ts";
import {
  checkRulePath,
  mountOf,
  mountsOfDev,
  PATH_MAX,
  resolveRulePath,
  setBtrfsIdentity,
  unsupportedFsReason,
} from "./path_rule.ts";
import { kernelDev } from "./rule_codec.ts";

Deno.test("path rules: bad forms are refused with the value and the reason", () => {
  throws(() => checkRulePath("etc/shadow"), /Invalid path "etc\/shadow": must be absolute/);
  throws(() => checkRulePath("./x"), /must be absolute/);
  throws(() => checkRulePath("/etc/\0shadow"), /contains a NUL byte/);
  throws(() => checkRulePath("/" + "a/".repeat(PATH_MAX / 2)), /bytes, the limit is 4095/);
  throws(() => checkRulePath(`/tmp/${"x".repeat(256)}`), /component is longer than 255 bytes/);
  checkRulePath("/etc/shadow");
  checkRulePath(`/tmp/${"é".repeat(127)}`); // 254 bytes: fine
});

Deno.test("path rules: symlinks resolve to the target's inode; missing files are unresolved", () => {
  const dir = Deno.makeTempDirSync({ prefix: "aegis-path-" });
  try {
    Deno.writeTextFileSync(`${dir}/target`, "x");
    Deno.symlinkSync(`${dir}/target`, `${dir}/link`);
    const st = Deno.statSync(`${dir}/target`);
    // the unit tier has no --allow-all, which Deno 2 needs for /proc/self:
    // the mount table is given (the agent reads /proc/self/mountinfo)
    const r = resolveRulePath(`${dir}/link`, fakeMountinfo(dir, "ext4", kernelDev(st.dev)));
    strictEqual(r.status, "resolved");
    if (r.status === "resolved") {
      strictEqual(r.canonical, Deno.realPathSync(`${dir}/target`));
      deepStrictEqual([r.dev, r.ino], [kernelDev(st.dev), st.ino]);
    }
    deepStrictEqual(resolveRulePath(`${dir}/missing`, fakeMountinfo(dir, "ext4", 0)), {
      status: "unresolved",
      path: `${dir}/missing`,
      reason: "does not exist (yet)",
    });
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("path rules: canonical path through symlinked directories, dot components, a symlink last", async () => {
  const base = Deno.makeTempDirSync({ prefix: "aegis-path-" });
  try {
    const real = Deno.realPathSync(base);
    Deno.mkdirSync(`${base}/d/e`, { recursive: true });
    Deno.writeTextFileSync(`${base}/d/e/f`, "x");
    Deno.symlinkSync(`${base}/d`, `${base}/dl`); // a symlinked parent
    Deno.symlinkSync("e/f", `${base}/d/fl`); // a relative symlink as the last component
    const st = Deno.statSync(`${base}/d/e/f`);
    const mi = fakeMountinfo(real, "ext4", kernelDev(st.dev));
    for (
      const p of [
        `${base}/d/e/f`,
        `${base}/dl/e/f`,
        `${base}/dl/fl`,
        `${base}/d/./e/f`,
        `${base}/d/e/../e/f`,
        `${base}//d/e/f`,
        `${base}/dl/e`,
      ]
    ) {
      const r = resolveRulePath(p, mi);
      strictEqual(r.status, "resolved", p);
      if (r.status !== "resolved") continue;
      strictEqual(r.canonical, Deno.realPathSync(p), p);
      strictEqual(r.ino, Deno.statSync(p).ino, p);
    }
    // the directories' realpaths are kept for one synchronous run only: a
    // symlinked directory pointed elsewhere is seen by the next resolve
    const before = resolveRulePath(`${base}/dl/e/f`, mi);
    await Promise.resolve();
    Deno.removeSync(`${base}/dl`);
    Deno.mkdirSync(`${base}/d2/e`, { recursive: true });
    Deno.writeTextFileSync(`${base}/d2/e/f`, "y");
    Deno.symlinkSync(`${base}/d2`, `${base}/dl`);
    const after = resolveRulePath(`${base}/dl/e/f`, mi);
    deepStrictEqual(
      [
        before.status === "resolved" && before.canonical,
        after.status === "resolved" && after.canonical,
      ],
      [`${real}/d/e/f`, `${real}/d2/e/f`],
    );
  } finally {
    Deno.removeSync(base, { recursive: true });
  }
});

Deno.test("kernelDev: glibc st_dev encoding to the kernel's major << 20 | minor", () => {
  strictEqual(kernelDev(0x0801), (8 << 20) | 1); // sda1
  strictEqual(kernelDev(0x00fe00 + 0x12), (0xfe << 20) | 0x12);
  strictEqual(kernelDev(0x10300 | 0x5), (0x103 << 20) | 0x5); // major > 255
  strictEqual(kernelDev(0x100000 | 0x0800), (8 << 20) | 0x100); // minor > 255
});

/** A mount table with `dir` mounted as `fsType` on device `dev` (kernel encoding). */
function fakeMountinfo(dir: string, fsType: string, dev: number): () => string {
  const d = `${dev >>> 20}:${dev & 0xfffff}`;
  return () => `1 0 ${d} / / rw - ext4 /dev/x rw\n2 1 ${d} / ${dir} rw - ${fsType} src rw\n`;
}

const MI = [
  "22 1 0:27 / / rw,relatime - overlay overlay rw,lowerdir=/lower,upperdir=/rw/upper",
  "23 22 0:5 / /dev rw - devtmpfs devtmpfs rw",
  "30 22 7:0 / /mnt/ext4 rw - ext4 /dev/loop0 rw",
  "31 22 0:37 /sub /mnt/bind rw - btrfs /dev/loop2 rw",
  "32 22 0:40 / /mnt/with\\040space rw shared:5 - fuse.sshfs host: rw",
  "33 22 0:41 / /mnt/ext4 rw - tmpfs tmpfs rw", // stacked on /mnt/ext4: the top one
  "34 22 259:3 / /mnt/ext4x rw - xfs /dev/nvme0n1p3 rw",
  "garbage line",
].join("\n");

Deno.test("mountOf: longest mount point, the top of a stack, escapes, kernel dev encoding", () => {
  deepStrictEqual(mountOf(MI, "/etc/passwd"), {
    mountPoint: "/",
    dev: 27,
    fsType: "overlay",
    source: "overlay",
  });
  deepStrictEqual(mountOf(MI, "/mnt/ext4/a"), {
    mountPoint: "/mnt/ext4",
    dev: 41,
    fsType: "tmpfs",
    source: "tmpfs",
  });
  // a sibling whose name extends a mount point is not inside it
  deepStrictEqual(mountOf(MI, "/mnt/ext4x/f"), {
    mountPoint: "/mnt/ext4x",
    dev: (259 << 20) | 3,
    fsType: "xfs",
    source: "/dev/nvme0n1p3",
  });
  strictEqual(mountOf(MI, "/mnt/with space/f")?.fsType, "fuse.sshfs");
  strictEqual(mountOf(MI, "/mnt/with space/f")?.source, "host:");
  strictEqual(mountOf(MI, "/mnt/bind")?.dev, 37);
  strictEqual(mountOf("garbage\n", "/x"), null);
});

Deno.test("unsupportedFsReason: network, FUSE and btrfs are refused; local file systems are not", () => {
  for (
    const t of ["9p", "nfs", "nfs4", "cifs", "fuse", "fuseblk", "fuse.sshfs", "btrfs", "virtiofs"]
  ) {
    strictEqual(typeof unsupportedFsReason(t), "string", t);
  }
  for (const t of ["ext4", "xfs", "tmpfs", "overlay", "constructor", "__proto__", "toString"]) {
    strictEqual(unsupportedFsReason(t), null, t);
  }
});

Deno.test("path rules: a file on an unsupported file system is refused naming the path and the fs", () => {
  const dir = Deno.makeTempDirSync({ prefix: "aegis-path-" });
  try {
    Deno.writeTextFileSync(`${dir}/f`, "x");
    const canonical = Deno.realPathSync(`${dir}/f`);
    const dev = kernelDev(Deno.statSync(canonical).dev);
    const mi = (t: string, d = dev) => fakeMountinfo(dir, t, d);
    throws(
      () => resolveRulePath(`${dir}/f`, mi("9p")),
      (e: Error) =>
        e instanceof UsageError && e.message.includes(JSON.stringify(`${dir}/f`)) &&
        e.message.includes("it is on 9p (mounted at") && e.message.includes("network"),
    );
    throws(() => resolveRulePath(`${dir}/f`, mi("fuse.sshfs")), /it is on fuse\.sshfs .*FUSE/);
    throws(() => resolveRulePath(`${dir}/f`, mi("btrfs")), /it is on btrfs .*subvolume/);
    // a mount whose device is not the file's: refused, never a wrong key
    throws(() => resolveRulePath(`${dir}/f`, mi("ext4", dev ^ 1)), /is not that of the ext4 mount/);
    const ok = resolveRulePath(`${dir}/f`, mi("ext4"));
    strictEqual(ok.status === "resolved" && ok.dev, dev);
    strictEqual(ok.status === "resolved" && ok.fsType, "ext4");
    // missing files stay unresolved whatever the file system
    strictEqual(resolveRulePath(`${dir}/missing`, mi("9p")).status, "unresolved");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("btrfs: refused unless the loaded programs key it by subvolume; mountsOfDev; BTF check", () => {
  setBtrfsIdentity(false);
  strictEqual(
    unsupportedFsReason("btrfs")?.includes("restart the agent once the btrfs module is loaded"),
    true,
  );
  setBtrfsIdentity(true);
  try {
    strictEqual(unsupportedFsReason("btrfs"), null);
    strictEqual(typeof unsupportedFsReason("9p"), "string", "only btrfs changes");
  } finally {
    setBtrfsIdentity(false);
  }
  deepStrictEqual(mountsOfDev(MI, 37).map((m) => m.mountPoint), ["/mnt/bind"]);
  deepStrictEqual(mountsOfDev(MI, 999), []);
  const dir = Deno.makeTempDirSync();
  try {
    strictEqual(btrfsBtfPresent(dir), false);
    Deno.writeTextFileSync(`${dir}/btrfs`, "");
    strictEqual(btrfsBtfPresent(dir), true);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
