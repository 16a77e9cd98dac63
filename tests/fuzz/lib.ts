/**
 * A small mutation fuzzer for the fuzz tier (docs/testing.md, "Fuzz tier").
 *
 * - Seeded PRNG: the seed is printed on every run and on every failure;
 *   `AEGIS_FUZZ_SEED=<n>` replays the same input sequence.
 * - Mutators over bytes: bit flips, byte insert/delete/overwrite, chunk
 *   duplication, splice between corpus entries, dictionary tokens (section
 *   names, `constructor`, `__proto__`, huge numbers, unicode, NUL, CR, very
 *   long lines, deep JSON nesting), number-boundary shifts.
 * - Budget: `AEGIS_FUZZ_SECONDS` (default {@link DEFAULT_SECONDS}) for the
 *   whole tier, split evenly over {@link TARGET_COUNT} targets.
 * - Oracle: a target may return or throw an {@link AegisError} (the agent's
 *   documented error types); anything else — a TypeError, a RangeError, a
 *   {@link Finding} raised by the target's own checks (a 500, an "internal
 *   error", a broken invariant), a promise that does not settle within
 *   `AEGIS_FUZZ_INPUT_MS` or an input that took longer than that — is a
 *   failure, printed with the seed, the iteration and the input in base64.
 *
 * @module
 */
import { AegisError } from "../../src/errors.ts";
import { decodeBase64, encodeBase64 } from "../../src/util/bytes.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Total seconds of the tier when AEGIS_FUZZ_SECONDS is not set. */
export const DEFAULT_SECONDS = 40;
/** Number of fuzz targets sharing the budget (one *_fuzz.ts file each). */
export const TARGET_COUNT = 7;
/** Per-input time limit when AEGIS_FUZZ_INPUT_MS is not set. */
export const DEFAULT_INPUT_MS = 5000;
/** Distinct failures collected before a target stops early. */
const MAX_FINDINGS = 8;

/** A broken invariant found by a target's own checks (never thrown by the agent). */
export class Finding extends Error {
  constructor(message: string) {
    super(message);
    this.name = "Finding";
  }
}

/** Throw a {@link Finding} unless `cond`. */
export function expect(cond: unknown, message: string): asserts cond {
  if (!cond) throw new Finding(message);
}

/** A line on stdout (the tier's log; the project's lint keeps console out). */
function sayLine(text: string): void {
  const b = enc.encode(text + "\n");
  for (let off = 0; off < b.length;) off += Deno.stdout.writeSync(b.subarray(off));
}

function envNumber(name: string, fallback: number): number {
  const v = Deno.env.get(name);
  if (v === undefined || v === "") return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name}=${JSON.stringify(v)} is not a number`);
  return n;
}

/** The seed of this run: AEGIS_FUZZ_SEED or a fresh random one. */
export function runSeed(): number {
  const v = Deno.env.get("AEGIS_FUZZ_SEED");
  if (v !== undefined && v !== "") {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 0 || n > 0xffffffff) {
      throw new Error(`AEGIS_FUZZ_SEED=${JSON.stringify(v)}: expected an integer 0..4294967295`);
    }
    return n;
  }
  return crypto.getRandomValues(new Uint32Array(1))[0];
}

/** Deterministic PRNG (sfc32 seeded through splitmix32). */
export class Rng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;
  constructor(seed: number) {
    let s = seed >>> 0;
    const next = () => {
      s = (s + 0x9e3779b9) | 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.#a = next();
    this.#b = next();
    this.#c = next();
    this.#d = next();
  }
  /** Uniform 32-bit unsigned integer. */
  u32(): number {
    const t = (((this.#a + this.#b) | 0) + this.#d) | 0;
    this.#d = (this.#d + 1) | 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) | 0;
    this.#c = (this.#c << 21) | (this.#c >>> 11);
    this.#c = (this.#c + t) | 0;
    return t >>> 0;
  }
  /** Integer in [0, n). */
  int(n: number): number {
    return n <= 0 ? 0 : this.u32() % n;
  }
  /** true with probability 1/n. */
  oneIn(n: number): boolean {
    return this.int(n) === 0;
  }
  pick<T>(a: readonly T[]): T {
    return a[this.int(a.length)];
  }
  bytes(n: number): Uint8Array {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = this.u32() & 0xff;
    return b;
  }
}

/** Tokens worth inserting into any text input. */
export const DICTIONARY: readonly string[] = [
  "constructor",
  "__proto__",
  "prototype",
  "toString",
  "hasOwnProperty",
  "valueOf",
  "__defineGetter__",
  "0",
  "-1",
  "-0",
  "1e309",
  "NaN",
  "Infinity",
  "4294967295",
  "4294967296",
  "18446744073709551615",
  "18446744073709551616",
  "9007199254740993",
  "99999999999999999999999999999999",
  "0x10",
  "00",
  "\0",
  "\r",
  "\r\n",
  "\n",
  "\t",
  " ",
  "\u00e9",
  "\u{1F600}",
  "\uFEFF",
  "\u202E",
  "\uD800",
  "\xff\xfe",
  ":",
  "::",
  "/",
  "//",
  "/..",
  "[",
  "]",
  "[]",
  "=",
  "#",
  "%",
  "%00",
  "%zz",
  "?",
  "&",
  '"',
  "\\",
  "{}",
  "null",
  "true",
  "false",
  "[deny_path]",
  "[deny_inode]",
  "[allow_cgroup]",
  "[deny_ip]",
  "[deny_cidr]",
  "[deny_port]",
  "[deny_ip_port]",
  "[deny_comm]",
  "[deny_ptrace]",
  "[deny_module_load]",
  "[deny_bpf]",
  "[deny_binary_hash]",
  "[allow_binary_hash]",
  "[trusted_exec_hash]",
  "[ima_fail_closed]",
  "[require_ima_appraisal]",
  "[protect_runtime_deps]",
  "[protect_path]",
  "[protect_connect]",
  "[cgroup_deny_inode]",
  "[cgroup_deny_ip]",
  "[cgroup_deny_port]",
  "[constructor]",
  "[__proto__]",
  "version=",
  "version=6\n",
  "tcp",
  "udp",
  "any",
  "bind",
  "both",
  "egress",
  "cgid:",
  "/32",
  "/0",
  "/129",
  "::ffff:1.2.3.4",
  "255.255.255.255",
  "65535",
  "65536",
  "---\n",
  ": ",
];

/** Extra tokens made at run time (too long to list). */
function bigToken(rng: Rng): string {
  switch (rng.int(5)) {
    case 0:
      return "A".repeat(4097 + rng.int(2000)); // past the policy line limit
    case 1:
      return "[".repeat(2000 + rng.int(3000)) + "]".repeat(rng.int(2000)); // deep JSON nesting
    case 2:
      return '{"a":'.repeat(1000 + rng.int(2000)) + "1" + "}".repeat(rng.int(3000));
    case 3:
      return "9".repeat(300 + rng.int(1000)); // beyond any number type
    default:
      return "/x".repeat(2100 + rng.int(500)); // a path past PATH_MAX
  }
}

/** One random mutation of `b`; `corpus` feeds splices. */
export function mutate(rng: Rng, b: Uint8Array, corpus: readonly Uint8Array[]): Uint8Array {
  const at = (extra = 0) => rng.int(b.length + extra);
  switch (rng.int(12)) {
    case 0: { // bit flip
      if (b.length === 0) return rng.bytes(1);
      const o = b.slice();
      o[at()] ^= 1 << rng.int(8);
      return o;
    }
    case 1: { // random byte overwrite (interesting values often)
      if (b.length === 0) return rng.bytes(1);
      const o = b.slice();
      o[at()] = rng.oneIn(2)
        ? rng.pick([0, 0xff, 0x7f, 0x80, 0x0a, 0x0d, 0x20, 0x3a])
        : rng.int(256);
      return o;
    }
    case 2: { // insert random bytes
      const i = at(1);
      return concat(b.subarray(0, i), rng.bytes(1 + rng.int(8)), b.subarray(i));
    }
    case 3: { // delete a range
      if (b.length === 0) return b;
      const i = at();
      const n = 1 + rng.int(Math.min(32, b.length - i));
      return concat(b.subarray(0, i), b.subarray(i + n));
    }
    case 4: { // duplicate a chunk (repeated lines, repeated fields)
      if (b.length === 0) return b;
      const i = at();
      const n = 1 + rng.int(Math.min(256, b.length - i));
      const times = rng.oneIn(8) ? 50 + rng.int(500) : 1;
      const chunk = b.subarray(i, i + n);
      const parts = [b.subarray(0, i + n)];
      for (let k = 0; k < times; k++) parts.push(chunk);
      parts.push(b.subarray(i + n));
      return concat(...parts);
    }
    case 5: { // splice with another corpus entry
      const other = rng.pick(corpus);
      if (other === undefined) return b;
      const i = at(1);
      const j = rng.int(other.length + 1);
      return concat(b.subarray(0, i), other.subarray(j));
    }
    case 6:
    case 7: { // dictionary token inserted or replacing a word
      const tok = enc.encode(rng.oneIn(10) ? bigToken(rng) : rng.pick(DICTIONARY));
      const i = at(1);
      if (rng.oneIn(2)) return concat(b.subarray(0, i), tok, b.subarray(i));
      let j = i;
      while (j < b.length && isWordByte(b[j])) j++;
      return concat(b.subarray(0, i), tok, b.subarray(j));
    }
    case 8: { // change a number in place
      const digits = findDigits(b, at());
      if (!digits) return mutate(rng, b, corpus);
      const [s, e] = digits;
      const n = enc.encode(
        rng.pick(["0", "1", "65535", "4294967295", "18446744073709551616", "-1"]),
      );
      return concat(b.subarray(0, s), n, b.subarray(e));
    }
    case 9: { // move a digit from one number to the next (field-boundary confusion)
      const first = findDigits(b, at());
      if (!first) return mutate(rng, b, corpus);
      const second = findDigits(b, first[1]);
      if (!second) return mutate(rng, b, corpus);
      const e1 = first[1], s2 = second[0];
      if (rng.oneIn(2)) { // last digit of the first number becomes the first of the next
        const moved = Uint8Array.of(b[e1 - 1]);
        return concat(b.subarray(0, e1 - 1), b.subarray(e1, s2), moved, b.subarray(s2));
      } // first digit of the next number becomes the last of the first
      const moved = Uint8Array.of(b[s2]);
      return concat(b.subarray(0, e1), moved, b.subarray(e1, s2), b.subarray(s2 + 1));
    }
    case 10: { // swap two lines
      const lines = dec.decode(b).split("\n");
      if (lines.length < 2) return mutate(rng, b, corpus);
      const i = rng.int(lines.length), j = rng.int(lines.length);
      [lines[i], lines[j]] = [lines[j], lines[i]];
      return enc.encode(lines.join("\n"));
    }
    default: { // truncate
      return b.slice(0, at());
    }
  }
}

function isWordByte(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) ||
    c === 0x5f;
}

/** The first run of ASCII digits at or after `from`, as [start, end). */
function findDigits(b: Uint8Array, from: number): [number, number] | null {
  let s = from;
  while (s < b.length && !(b[s] >= 0x30 && b[s] <= 0x39)) s++;
  if (s >= b.length) return null;
  let e = s;
  while (e < b.length && b[e] >= 0x30 && b[e] <= 0x39) e++;
  return [s, e];
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const o = new Uint8Array(n);
  let off = 0;
  for (const p of parts) {
    o.set(p, off);
    off += p.length;
  }
  return o;
}

/** The committed seeds of a target: every file in tests/fuzz/corpus/<target>/, sorted. */
export function loadCorpus(
  target: string,
  dir = new URL(`./corpus/${target}/`, import.meta.url),
): { name: string; bytes: Uint8Array }[] {
  const out: { name: string; bytes: Uint8Array }[] = [];
  for (const e of Deno.readDirSync(dir)) {
    if (!e.isFile) continue;
    let bytes = Deno.readFileSync(new URL(e.name, dir));
    // a reproduced failure can be saved as printed: base64 in a .b64 file
    if (e.name.endsWith(".b64")) bytes = decodeBase64(dec.decode(bytes).trim());
    out.push({ name: e.name, bytes });
  }
  return out.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}

/** A finding the owner of the code is fixing now: reported loudly, not failed. */
export interface KnownFinding {
  /** what it is and who fixes it (printed with every match) */
  note: string;
  /** matches the failure text (error name + message) */
  match: RegExp;
}

export interface FuzzOptions {
  /** corpus/<target>/ folder name and the name printed */
  target: string;
  /** seeds: committed corpus plus any made at run time */
  seeds: Uint8Array[];
  /**
   * Run one input; return or throw an AegisError, anything else is a
   * failure. A string returned is an outcome label, tallied and printed at
   * the end (to see what the inputs reach).
   */
  run(input: Uint8Array, rng: Rng): unknown | Promise<unknown>;
  /** structure-aware mutation, used for half the inputs when given */
  mutate?(rng: Rng, input: Uint8Array): Uint8Array;
  /** findings being fixed by their owners (see docs/testing.md) */
  known?: readonly KnownFinding[];
  /** largest input handed to run (bigger mutants are cut) */
  maxInput?: number;
  /** override of the budget share (the harness's own tests) */
  budgetMs?: number;
  /** override of AEGIS_FUZZ_INPUT_MS (the harness's own tests) */
  inputMs?: number;
  /** override of the run seed (the harness's own tests) */
  seed?: number;
  /** false: print nothing (the harness's own tests, whose failures are expected) */
  print?: boolean;
}

export interface FuzzResult {
  seed: number;
  iterations: number;
  failures: string[];
  known: string[];
  /** outcome label → count (see FuzzOptions.run) */
  outcomes: Map<string, number>;
}

function signature(e: unknown): string {
  if (e instanceof Error) return `${e.name}: ${e.message}`;
  return `non-Error thrown: ${String(e)}`;
}

async function sha256Hex(b: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", new Uint8Array(b)));
  return Array.from(d, (x) => x.toString(16).padStart(2, "0")).join("");
}

class HangError extends Error {
  constructor(ms: number) {
    super(`no answer within ${ms} ms (hang)`);
    this.name = "Hang";
  }
}

/** Run `fn` and wait at most `ms` for it to settle. */
async function withTimeout<T>(fn: () => T | Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const p = Promise.resolve().then(fn);
    const t = new Promise<never>((_, rej) => timer = setTimeout(() => rej(new HangError(ms)), ms));
    return await Promise.race([p, t]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Fuzz one target for its share of the budget. Every seed runs first as is
 * (a seed that fails is a failure too), then mutants of random seeds.
 */
export async function fuzz(opts: FuzzOptions): Promise<FuzzResult> {
  const seed = opts.seed ?? runSeed();
  const totalSeconds = envNumber("AEGIS_FUZZ_SECONDS", DEFAULT_SECONDS);
  const budgetMs = opts.budgetMs ?? (totalSeconds * 1000) / TARGET_COUNT;
  const inputMs = opts.inputMs ?? envNumber("AEGIS_FUZZ_INPUT_MS", DEFAULT_INPUT_MS);
  const maxInput = opts.maxInput ?? 1 << 20;
  const rng = new Rng(seed);
  const { target } = opts;
  const say = opts.print === false ? () => {} : sayLine;
  say(
    `fuzz ${target}: seed ${seed} (AEGIS_FUZZ_SEED=${seed} replays), budget ${
      (budgetMs / 1000).toFixed(1)
    } s, ${opts.seeds.length} seeds`,
  );
  const failures: string[] = [];
  const known: string[] = [];
  const seen = new Set<string>();
  const corpus = opts.seeds;
  const t0 = performance.now();
  let iterations = 0;

  const report = async (input: Uint8Array, what: string, sig: string, stack?: string) => {
    // one report per kind of failure: the first line, numbers ignored
    const key = sig.split("\n")[0].replace(/\d+/g, "N").slice(0, 160);
    if (seen.has(key)) return;
    seen.add(key);
    const k = opts.known?.find((f) => f.match.test(sig));
    const sha = (await sha256Hex(input)).slice(0, 16);
    const b64 = encodeBase64(input.length > 65536 ? input.subarray(0, 65536) : input);
    const text = [
      `${k ? "KNOWN FINDING" : "FAILURE"} fuzz ${target} (${what}): ${sig.slice(0, 2000)}`,
      ...(k ? [`  known: ${k.note}`] : []),
      `  seed ${seed}, iteration ${iterations}; replay: AEGIS_FUZZ_SEED=${seed}`,
      `  input ${input.length} bytes, sha256 ${sha}; save the base64 below as ` +
      `tests/fuzz/corpus/${target}/crash-${sha}.b64 to run it first on every run` +
      (input.length > 65536 ? " (first 64 KiB shown)" : ""),
      `  base64: ${b64}`,
      ...(stack && !k ? [`  ${stack.split("\n").slice(0, 8).join("\n  ")}`] : []),
    ].join("\n");
    say(text);
    (k ? known : failures).push(text);
  };

  const outcomes = new Map<string, number>();
  const tally = (label: string) => outcomes.set(label, (outcomes.get(label) ?? 0) + 1);
  const one = async (input: Uint8Array, what: string) => {
    const started = performance.now();
    try {
      const out = await withTimeout(() => opts.run(input, rng), inputMs);
      tally(typeof out === "string" ? out : "returned");
    } catch (e) {
      tally(e instanceof AegisError ? `threw ${e.code}` : "failed");
      if (!(e instanceof AegisError)) {
        await report(input, what, signature(e), e instanceof Error ? e.stack : undefined);
        return;
      }
    }
    const took = performance.now() - started;
    if (took > inputMs) {
      await report(input, what, `Slow: one input took ${Math.round(took)} ms (limit ${inputMs})`);
    }
  };

  for (let i = 0; i < corpus.length; i++) {
    iterations++;
    await one(corpus[i], `seed ${i}`);
  }
  while (performance.now() - t0 < budgetMs && failures.length < MAX_FINDINGS) {
    iterations++;
    let input = rng.pick(corpus) ?? new Uint8Array();
    const rounds = 1 + rng.int(rng.oneIn(4) ? 16 : 4);
    for (let r = 0; r < rounds; r++) {
      input = opts.mutate && rng.oneIn(2) ? opts.mutate(rng, input) : mutate(rng, input, corpus);
      if (input.length > maxInput) input = input.subarray(0, maxInput);
    }
    await one(input, "mutant");
  }
  const secs = ((performance.now() - t0) / 1000).toFixed(1);
  say(
    `fuzz ${target}: ${iterations} inputs in ${secs} s, ${failures.length} failures, ` +
      `${known.length} known findings (seed ${seed})`,
  );
  const top = [...outcomes].sort((a, b) => b[1] - a[1]).slice(0, 12);
  say(`fuzz ${target}: outcomes ${top.map(([k, n]) => `${k}: ${n}`).join(", ")}`);
  return { seed, iterations, failures, known, outcomes };
}

/** Fail the calling test when `r` has failures (after printing them). */
export function assertClean(r: FuzzResult): void {
  if (r.failures.length > 0) {
    throw new Error(
      `${r.failures.length} fuzz failure(s), seed ${r.seed} (replay with AEGIS_FUZZ_SEED=${r.seed}):\n` +
        r.failures.join("\n\n"),
    );
  }
}
