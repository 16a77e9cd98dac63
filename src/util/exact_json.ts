/**
 * JSON text with exact 64-bit integers: a bigint is written as its digits
 * (JSON.rawJSON), never quoted and never rounded, so a u64 above 2^53 keeps
 * every digit. The one serializer of event lines (the sink and /events).
 *
 * @module
 */

// JSON.rawJSON (V8 ≥ 11.4; Deno has it) is not in TypeScript's lib yet
const rawJSON = (JSON as unknown as { rawJSON(text: string): unknown }).rawJSON;

function replacer(_key: string, value: unknown): unknown {
  return typeof value === "bigint" ? rawJSON(value.toString()) : value;
}

/** `value` as JSON text (no newline), bigints as exact integers. Throws on a cycle. */
export function exactJson(value: unknown): string {
  return JSON.stringify(value, replacer);
}
