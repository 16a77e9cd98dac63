import assert from "node:assert/strict";
import {
  FileReadError,
  formatLimit,
  readAllCapped,
  readFileCapped,
  readTextFileCapped,
} from "./read_file.ts";

function refused(fn: () => unknown, problem: string, code = "USAGE"): FileReadError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof FileReadError, `expected FileReadError, got ${caught}`);
  assert.equal(caught.problem, problem, caught.message);
  assert.equal(caught.code, code);
  return caught;
}

Deno.test("readFileCapped: reads a file up to exactly the cap, refuses one byte more", () => {
  const dir = Deno.makeTempDirSync({ prefix: "aegis-read-" });
  try {
    const p = `${dir}/f`;
    Deno.writeFileSync(p, new Uint8Array(100).fill(7));
    assert.deepEqual(readFileCapped(p, { maxBytes: 100 }), new Uint8Array(100).fill(7));
    const e = refused(() => readFileCapped(p, { maxBytes: 99, what: "policy file" }), "too_large");
    assert.equal(e.message, `policy file "${p}" is 100 bytes; the limit is 99 bytes`);
    assert.equal(e.path, p);
    assert.equal(e.limit, 99);
    // empty file, cap 0
    Deno.writeFileSync(p, new Uint8Array());
    assert.equal(readFileCapped(p, { maxBytes: 0 }).length, 0);
    // bigger than the first buffer: the buffer grows
    const big = new Uint8Array(70_000).map((_, i) => i & 0xff);
    Deno.writeFileSync(p, big);
    assert.deepEqual(readFileCapped(p, { maxBytes: 1 << 20 }), big);
    Deno.writeTextFileSync(p, "héllo\n");
    assert.equal(readTextFileCapped(p, { maxBytes: 64 }), "héllo\n");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("readFileCapped: /dev/zero, a directory are refused without reading", () => {
  const dir = Deno.makeTempDirSync({ prefix: "aegis-read-" });
  try {
    let e = refused(
      () => readFileCapped("/dev/zero", { maxBytes: 64, what: "SHA-256 file" }),
      "not_regular",
    );
    assert.match(
      e.message,
      /^SHA-256 file "\/dev\/zero" is a character device; expected a regular/,
    );
    assert.match(e.message, /at most 64 bytes/);
    e = refused(() => readFileCapped(dir, { maxBytes: 64 }), "not_regular");
    assert.match(e.message, /is a directory/);
    // a symlink to /dev/zero is followed and refused the same way
    Deno.symlinkSync("/dev/zero", `${dir}/link`);
    refused(() => readFileCapped(`${dir}/link`, { maxBytes: 64 }), "not_regular");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

const canMkfifo = Deno.permissions.querySync({ name: "run", command: "mkfifo" }).state ===
  "granted";

Deno.test({
  name: canMkfifo
    ? "readFileCapped: a FIFO without a writer is refused, not opened (opening would block)"
    : "readFileCapped: FIFO refusal (skipped: needs --allow-run=mkfifo to create a FIFO)",
  ignore: !canMkfifo,
  fn: async () => {
    const dir = Deno.makeTempDirSync({ prefix: "aegis-read-" });
    try {
      const fifo = `${dir}/fifo`;
      const mk = await new Deno.Command("mkfifo", { args: [fifo] }).output();
      assert.ok(mk.success, "mkfifo");
      const e = refused(() => readFileCapped(fifo, { maxBytes: 64 }), "not_regular");
      assert.match(e.message, /a FIFO \(named pipe\)/);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test("readAllCapped: an endless source (like /dev/zero behind a regular-file stat) costs max + 1 bytes", () => {
  let served = 0;
  const endless = {
    readSync(p: Uint8Array): number {
      p.fill(0);
      served += p.length;
      return p.length;
    },
  };
  assert.equal(readAllCapped(endless, 0, 100_000), null);
  assert.equal(served, 100_001, "read stops one byte past the cap");
  // a source that delivers in small pieces and ends exactly at the cap
  let left = 10_000;
  const trickle = {
    readSync(p: Uint8Array): number | null {
      if (left === 0) return null;
      const n = Math.min(7, left, p.length);
      p.fill(1, 0, n);
      left -= n;
      return n;
    },
  };
  assert.deepEqual(readAllCapped(trickle, 0, 10_000), new Uint8Array(10_000).fill(1));
});

Deno.test("readFileCapped: a missing file names the file; codes can be chosen", () => {
  const e = refused(
    () =>
      readFileCapped("/nonexistent/aegis", {
        maxBytes: 1,
        what: "bundle",
        code: "BUNDLE_FORMAT",
      }),
    "unreadable",
    "BUNDLE_FORMAT",
  );
  assert.match(e.message, /^Cannot read bundle "\/nonexistent\/aegis": /);
  const dir = Deno.makeTempDirSync({ prefix: "aegis-read-" });
  try {
    Deno.writeTextFileSync(`${dir}/f`, "abc");
    refused(
      () => readFileCapped(`${dir}/f`, { maxBytes: 2, code: "USAGE", tooLargeCode: "TOO_BIG" }),
      "too_large",
      "TOO_BIG",
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
  assert.throws(() => readFileCapped("/etc/hostname", { maxBytes: -1 }), RangeError);
  assert.throws(() => readFileCapped("/etc/hostname", { maxBytes: 1.5 }), RangeError);
});

Deno.test("formatLimit: exact binary units only", () => {
  assert.equal(formatLimit(16 << 20), "16777216 bytes (16 MiB)");
  assert.equal(formatLimit(4096), "4096 bytes (4 KiB)");
  assert.equal(formatLimit(4097), "4097 bytes");
  assert.equal(formatLimit(0), "0 bytes");
});
