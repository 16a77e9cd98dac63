/**
 * A small builder for the Prometheus text exposition format 0.0.4:
 * families with `# HELP` and `# TYPE` before their samples, label values
 * escaped, no duplicate series (a duplicate is a programming error and
 * throws). Families without samples are left out.
 *
 * @module
 */

export type MetricType = "counter" | "gauge";
export type Labels = Readonly<Record<string, string>>;

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Escape a label value: backslash, double quote, newline. */
export function escapeLabelValue(v: string): string {
  return v.replace(/[\\"\n]/g, (c) => (c === "\n" ? "\\n" : `\\${c}`));
}

/** Escape HELP text: backslash and newline. */
export function escapeHelp(v: string): string {
  return v.replace(/[\\\n]/g, (c) => (c === "\n" ? "\\n" : "\\\\"));
}

/** A sample value as text (bigint exact; floats in Go's syntax). */
export function formatValue(v: number | bigint | boolean): string {
  if (typeof v === "bigint") return v.toString();
  if (typeof v === "boolean") return v ? "1" : "0";
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}

interface Family {
  type: MetricType;
  help: string;
  samples: Map<string, string>;
}

export class Exposition {
  #families = new Map<string, Family>();

  /** Declare a family (once). */
  declare(name: string, type: MetricType, help: string): this {
    if (!METRIC_NAME.test(name)) throw new Error(`metric name "${name}" is not valid`);
    if (this.#families.has(name)) throw new Error(`metric ${name} declared twice`);
    this.#families.set(name, { type, help, samples: new Map() });
    return this;
  }

  /** Add one sample of a declared family. */
  sample(name: string, value: number | bigint | boolean, labels: Labels = {}): this {
    const f = this.#families.get(name);
    if (!f) throw new Error(`metric ${name} was not declared`);
    const parts: string[] = [];
    for (const k of Object.keys(labels).sort()) {
      if (!LABEL_NAME.test(k) || k.startsWith("__")) {
        throw new Error(`label name "${k}" of ${name} is not valid`);
      }
      parts.push(`${k}="${escapeLabelValue(labels[k])}"`);
    }
    const series = parts.length ? `${name}{${parts.join(",")}}` : name;
    if (f.samples.has(series)) throw new Error(`duplicate series ${series}`);
    f.samples.set(series, formatValue(value));
    return this;
  }

  /** The exposition text (ends with a newline). */
  text(): string {
    const out: string[] = [];
    for (const [name, f] of this.#families) {
      if (f.samples.size === 0) continue;
      out.push(`# HELP ${name} ${escapeHelp(f.help)}`, `# TYPE ${name} ${f.type}`);
      for (const [series, value] of f.samples) out.push(`${series} ${value}`);
    }
    return out.length ? out.join("\n") + "\n" : "";
  }
}
