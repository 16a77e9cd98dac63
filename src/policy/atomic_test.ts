import assert from "node:assert/strict";
import { readCounter, syncDir, writeCounter, writeFileAtomic } from "./atomic.ts";

function withTmp(fn: (dir: string) => void): void {
  const dir = Deno.makeTempDirSync({ prefix: "aegis-atomic-" });
  try {
    fn(dir);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

Deno.test("writeFileAtomic creates and replaces a file with the exact mode, no temp left", () => {
  withTmp((dir) => {
    const p = `${dir}/f.txt`;
    writeFileAtomic(p, new TextEncoder().encode("one"), 0o600);
    assert.equal(Deno.readTextFileSync(p), "one");
    assert.equal(Deno.statSync(p).mode! & 0o777, 0o600);
    writeFileAtomic(p, new TextEncoder().encode("two"), 0o644);
    assert.equal(Deno.readTextFileSync(p), "two");
    assert.equal(Deno.statSync(p).mode! & 0o777, 0o644);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["f.txt"]);
  });
});

Deno.test("writeFileAtomic into a missing directory fails with the path and leaves nothing", () => {
  withTmp((dir) => {
    assert.throws(
      () => writeFileAtomic(`${dir}/nope/f`, new Uint8Array([1]), 0o644),
      (e: Error & { code?: string }) =>
        e.code === "ATOMIC_WRITE_FAILED" && e.message.includes(`${dir}/nope/f`),
    );
    assert.deepEqual([...Deno.readDirSync(dir)], []);
  });
});

Deno.test("syncDir works on a directory", () => {
  withTmp((dir) => syncDir(dir));
});

Deno.test("counter: missing is 0, round trip, corrupt is an error (never reset)", () => {
  withTmp((dir) => {
    const p = `${dir}/counter.json`;
    assert.equal(readCounter(p), 0);
    writeCounter(p, 42);
    assert.equal(readCounter(p), 42);
    assert.deepEqual(JSON.parse(Deno.readTextFileSync(p)), { policy_version: 42 });
    assert.equal(Deno.statSync(p).mode! & 0o777, 0o600);
    Deno.writeTextFileSync(p, "{not json");
    assert.throws(
      () => readCounter(p),
      (e: Error & { code?: string }) => e.code === "COUNTER_CORRUPT",
    );
    Deno.writeTextFileSync(p, '{"policy_version": -1}');
    assert.throws(
      () => readCounter(p),
      (e: Error & { code?: string }) => e.code === "COUNTER_CORRUPT",
    );
    Deno.writeTextFileSync(p, '{"policy_version": "7"}');
    assert.throws(
      () => readCounter(p),
      (e: Error & { code?: string }) => e.code === "COUNTER_CORRUPT",
    );
    assert.throws(
      () => writeCounter(p, 1.5),
      (e: Error & { code?: string }) => e.code === "COUNTER_INVALID",
    );
  });
});
