/**
 * The fuzz harness's own checks: its oracle fails on what it must fail on
 * (a TypeError, a Finding, a hang, a slow input), accepts AegisError, and a
 * seed replays the same inputs.
 *
 * @module
 */
import assert from "node:assert/strict";
import { UsageError } from "../../src/errors.ts";
import { encodeBase64 } from "../../src/util/bytes.ts";
import { Finding, fuzz, loadCorpus, mutate, Rng } from "./lib.ts";

const enc = new TextEncoder();
const seeds = [enc.encode("version=1\n[deny_path]\n/bin/x\n"), enc.encode("GET /health\n\n")];

Deno.test("fuzz lib: a TypeError, a Finding and a hang are failures with seed and input", async () => {
  const r = await fuzz({
    target: "selftest",
    print: false,
    seeds,
    seed: 7,
    budgetMs: 300,
    inputMs: 50,
    run: (input) => {
      if (input[0] === 0x76) throw new TypeError("boom"); // "v": the policy seed
      if (input.length === seeds[1].length) throw new Finding("bad answer");
      if (input.length > 40) return new Promise(() => {}); // never settles
      return "ok";
    },
  });
  assert.ok(r.failures.some((f) => /^FAILURE fuzz selftest \(seed 0\): TypeError: boom/.test(f)));
  assert.ok(r.failures.some((f) => /Finding: bad answer/.test(f)));
  assert.ok(r.failures.some((f) => /Hang: no answer within 50 ms/.test(f)));
  for (const f of r.failures) {
    assert.match(f, /AEGIS_FUZZ_SEED=7/);
    assert.match(f, /base64: /);
  }
});

Deno.test("fuzz lib: AegisError is an accepted answer; known findings are reported apart", async () => {
  const r = await fuzz({
    target: "selftest",
    print: false,
    seeds,
    seed: 8,
    budgetMs: 100,
    run: (input) => {
      if (input.length % 2 === 0) throw new UsageError("refused");
      throw new Finding("forgery: known one");
    },
    known: [{ note: "being fixed", match: /forgery/ }],
  });
  assert.deepEqual(r.failures, []);
  assert.equal(r.known.length, 1);
  assert.match(r.known[0], /^KNOWN FINDING fuzz selftest .*\n {2}known: being fixed/);
  assert.ok((r.outcomes.get("threw USAGE") ?? 0) > 0);
});

Deno.test("fuzz lib: a slow input is a failure", async () => {
  const r = await fuzz({
    target: "selftest",
    print: false,
    seeds: [seeds[0]],
    seed: 9,
    budgetMs: 0,
    inputMs: 5,
    run: () => {
      const end = performance.now() + 20;
      while (performance.now() < end) { /* busy: a sync hang cannot be interrupted */ }
    },
  });
  assert.equal(r.failures.length, 1);
  assert.match(r.failures[0], /Slow: one input took \d+ ms \(limit 5\)/);
});

Deno.test("fuzz lib: the same seed gives the same mutants", () => {
  const run = (seed: number) => {
    const rng = new Rng(seed);
    const out: string[] = [];
    let b: Uint8Array = seeds[0];
    for (let i = 0; i < 200; i++) {
      b = mutate(rng, b, seeds);
      if (b.length > 10000) b = b.subarray(0, 10000);
      out.push(Array.from(b.subarray(0, 64)).join(","));
    }
    return out;
  };
  assert.deepEqual(run(42), run(42));
  assert.notDeepEqual(run(42), run(43));
});

Deno.test("fuzz lib: a corpus folder's files load sorted; .b64 files (saved failures) are decoded", () => {
  const dir = Deno.makeTempDirSync({ prefix: "aegis-fuzz-corpus-" });
  try {
    Deno.writeFileSync(`${dir}/b.conf`, enc.encode("version=1\n"));
    Deno.writeTextFileSync(`${dir}/a-crash.b64`, encodeBase64(Uint8Array.of(0, 0xff, 10)) + "\n");
    Deno.mkdirSync(`${dir}/sub`);
    const c = loadCorpus("x", new URL(`file://${dir}/`));
    assert.deepEqual(c.map((e) => e.name), ["a-crash.b64", "b.conf"]);
    assert.deepEqual(Array.from(c[0].bytes), [0, 0xff, 10]);
    assert.equal(new TextDecoder().decode(c[1].bytes), "version=1\n");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("fuzz lib: every target has committed seeds", () => {
  for (const t of ["policy", "bundle", "decode", "control", "http", "httpd"]) {
    assert.ok(loadCorpus(t).length >= 4, t);
  }
});
