/**
 * Fuzz target "policy": the policy parser, lint, canonical form and
 * compiler (src/policy/parse.ts, lint.ts, compile.ts) on mutated policy
 * files. Oracle beyond "no exception other than AegisError":
 *
 * - no issue says "internal error" (a parser bug, not bad input);
 * - every issue names the file and a line within the input;
 * - an accepted policy lints and compiles, and its canonical text
 *   (formatPolicy) parses without errors to the same canonical text.
 *
 * @module
 */
import { compilePolicy } from "../../src/policy/compile.ts";
import { dedupePolicy, formatPolicy, lintPolicy } from "../../src/policy/lint.ts";
import { parsePolicy } from "../../src/policy/parse.ts";
import { fakeResolvePath } from "../../src/policy/fake_maps_testing.ts";
import { assertClean, DICTIONARY, expect, fuzz, loadCorpus, type Rng } from "./lib.ts";

const FILE = "fuzz.conf";
const env = {
  resolvePath: fakeResolvePath(),
  resolveCgroup: (p: string) => p.startsWith("/missing") ? null : BigInt(p.length),
};

function countLines(b: Uint8Array): number {
  let n = 1;
  for (const c of b) if (c === 0x0a) n++;
  return n;
}

/** Checks one policy input; exported for the regression tests of findings. */
export function runPolicy(input: Uint8Array): string {
  const r = parsePolicy(input, FILE);
  const maxLine = countLines(input) + 1;
  for (const i of [...r.errors, ...r.warnings]) {
    expect(!/internal error/i.test(i.message), `parsePolicy: ${i.message.slice(0, 500)}`);
    expect(i.file === FILE, `issue names file ${JSON.stringify(i.file)}`);
    expect(
      Number.isInteger(i.line) && i.line >= 0 && i.line <= maxLine,
      `issue at line ${i.line} of a ${maxLine - 1}-line input: ${i.message.slice(0, 200)}`,
    );
  }
  expect((r.policy === undefined) === (r.errors.length > 0), "policy present with errors");
  if (!r.policy) return "rejected";
  lintPolicy(r.policy, FILE);
  compilePolicy(r.policy, env);
  const text = formatPolicy(dedupePolicy(r.policy));
  const again = parsePolicy(text, "canonical.conf");
  expect(
    again.policy !== undefined,
    `canonical text does not parse: ${again.errors.map((e) => e.message).join("; ").slice(0, 500)}`,
  );
  expect(formatPolicy(dedupePolicy(again.policy)) === text, "canonical text is not stable");
  return "accepted";
}

const enc = new TextEncoder();
const dec = new TextDecoder();

/**
 * Line-level mutation that keeps inputs mostly valid: lines (entries,
 * section headers) moved between seeds, a version changed, a token put
 * into an entry. Most byte mutants are rejected at once; these reach
 * lint, the canonical form and the compiler.
 */
function mutateLines(rng: Rng, input: Uint8Array, pool: string[]): Uint8Array {
  const lines = dec.decode(input).split("\n");
  const at = Math.min(rng.int(lines.length + 1), lines.length - 1);
  const token = () => rng.oneIn(2) ? rng.pick(KEYWORDS) : rng.pick(DICTIONARY);
  switch (rng.int(7)) {
    case 0:
      lines.splice(at, 0, rng.pick(pool));
      break;
    case 1:
      lines[at] = rng.pick(pool);
      break;
    case 2:
      lines[0] = `version=${rng.int(8)}`;
      break;
    case 3: // a whole entry or flag value
      lines[at] = token();
      break;
    case 4: { // one field of an entry (fields split at ':', '/' or spaces)
      const parts = lines[at].split(/([:/ ]+)/);
      const k = rng.int(parts.length);
      parts[k] = token();
      lines[at] = parts.join("");
      break;
    }
    case 5: // a field added
      lines[at] += rng.pick([":", " ", "/"]) + token();
      break;
    default: {
      const l = lines[at];
      const cut = rng.int(l.length + 1);
      lines[at] = l.slice(0, cut) + token() + l.slice(rng.oneIn(2) ? cut : l.length);
    }
  }
  return enc.encode(lines.join("\n"));
}

/** Words that name properties of every plain object. */
const KEYWORDS = ["constructor", "__proto__", "toString", "hasOwnProperty", "valueOf", "prototype"];

Deno.test("fuzz policy: parse, lint, canonical form and compile never crash", async () => {
  const seeds = loadCorpus("policy").map((c) => c.bytes);
  const pool = [...new Set(seeds.flatMap((b) => dec.decode(b).split(/\r?\n/)))];
  const r = await fuzz({
    target: "policy",
    seeds,
    run: runPolicy,
    mutate: (rng, input) => mutateLines(rng, input, pool),
    maxInput: 256 * 1024,
  });
  assertClean(r);
});
