/**
 * bench/vm/report: the pure parts of the enforcement benchmark — parsing the
 * output of `ops` (bench/vm/ops.c), medians and spreads, markdown tables.
 *
 * @module
 */

/** One measurement window of `ops`. */
export interface Sample {
  /** operations in the window */
  n: number;
  /** wall time of the timed loop */
  totalNs: number;
  nsPerOp: number;
  /** per pinned link name: bpf_stats deltas over the window */
  progs: Record<string, { cnt: number; ns: number }>;
  /** -p PID: CPU ticks over the window, ticks per second, VmRSS after it */
  cpu?: { ticks: number; hz: number; rssKb: number };
}

/** Parse the lines `ops` prints (see bench/vm/ops.c). */
export function parseOps(text: string): Sample {
  const lines = text.trim().split("\n");
  const head = lines[0].split(" ");
  const s: Sample = {
    n: Number(head[1]),
    totalNs: Number(head[2]),
    nsPerOp: Number(head[3]),
    progs: {},
  };
  if (!Number.isFinite(s.nsPerOp) || !Number.isFinite(s.n)) {
    throw new Error(`ops printed "${lines[0]}"`);
  }
  for (const l of lines.slice(1)) {
    const f = l.split(" ");
    if (f[0] === "prog") s.progs[f[1]] = { cnt: Number(f[3]), ns: Number(f[4]) };
    else if (f[0] === "pid") {
      s.cpu = { ticks: Number(f[2]), hz: Number(f[3]), rssKb: Number(f[4]) };
    }
  }
  return s;
}

export function median(v: readonly number[]): number {
  if (v.length === 0) return NaN;
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** "min..max" with `f` applied to both ends. */
export function spread(v: readonly number[], f: (x: number) => string): string {
  if (v.length === 0) return "–";
  return `${f(Math.min(...v))}..${f(Math.max(...v))}`;
}

/** Integer with thousands separators. */
export const int = (x: number): string =>
  Number.isFinite(x) ? Math.round(x).toLocaleString("en-US") : "–";

/** Fixed decimals, "–" when not a number. */
export const fix = (x: number, d = 2): string => Number.isFinite(x) ? x.toFixed(d) : "–";

/** A markdown table with padded columns; `right[i]` right-aligns column i. */
export function table(head: string[], rows: string[][], right: boolean[]): string[] {
  const all = [head, ...rows];
  const w = head.map((_, i) => Math.max(3, ...all.map((r) => r[i].length)));
  const line = (r: string[]): string =>
    "| " + r.map((x, i) => right[i] ? x.padStart(w[i]) : x.padEnd(w[i])).join(" | ") + " |";
  return [
    line(head),
    "| " + w.map((n, i) => right[i] ? "-".repeat(n - 1) + ":" : "-".repeat(n)).join(" | ") + " |",
    ...rows.map(line),
  ];
}

/** mulberry32: reproducible pseudo-random rule sets. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * `count` IPv4 deny_cidr entries, none covering 127.0.0.1 and none inside
 * another (no lint warnings): half /24 networks with a first octet of
 * 11–100, half /32 addresses with a first octet of 128–223.
 */
export function cidrEntries(count: number, seed = 2): string[] {
  const rnd = prng(seed);
  const seen = new Set<string>();
  const out: string[] = [];
  const byte = () => Math.floor(rnd() * 256);
  while (out.length < count) {
    const net = out.length % 2 === 0;
    const first = net ? 11 + Math.floor(rnd() * 90) : 128 + Math.floor(rnd() * 96);
    const e = net
      ? `${first}.${byte()}.${byte()}.0/24`
      : `${first}.${byte()}.${byte()}.${byte()}/32`;
    if (seen.has(e)) continue;
    seen.add(e);
    out.push(e);
  }
  return out;
}

/** `count` distinct deny_inode entries `dev:ino` on `dev`, inode numbers in [2^40, 2^41). */
export function inodeEntries(dev: number, count: number, seed = 1): string[] {
  const rnd = prng(seed);
  const seen = new Set<number>();
  const out: string[] = [];
  while (out.length < count) {
    const ino = 2 ** 40 + Math.floor(rnd() * 2 ** 40);
    if (seen.has(ino)) continue;
    seen.add(ino);
    out.push(`${dev}:${ino}`);
  }
  return out;
}
