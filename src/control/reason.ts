/**
 * The operator's reason for an emergency toggle: required, made safe to
 * print and to store (control characters replaced, at most 512 bytes of
 * UTF-8), and hashed as given so the raw text can be proven later.
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import { sha256Hex } from "../util/bytes.ts";

/** Largest stored reason, in UTF-8 bytes. */
export const REASON_MAX_BYTES = 512;

/** What replaces a control character. */
export const REASON_REPLACEMENT = "\uFFFD";

/**
 * C0 controls (incl. NUL, newline, ESC), DEL, C1 controls, the Unicode line
 * and paragraph separators, and the bidirectional overrides/isolates that
 * can make a log line display something other than what it holds; lone
 * surrogates are not valid text either.
 */
const UNSAFE =
  // deno-lint-ignore no-control-regex
  /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/** A reason ready to store. */
export interface CleanReason {
  /** sanitised, at most {@link REASON_MAX_BYTES} bytes of UTF-8 */
  text: string;
  /** SHA-256 hex of the raw text's UTF-8, before sanitising and capping */
  sha256: string;
  /** true when control characters were replaced */
  replaced: boolean;
  /** true when the text was cut to the cap */
  truncated: boolean;
}

/** Cut `text` to at most `max` UTF-8 bytes without splitting a character. */
export function capUtf8(text: string, max: number): string {
  const bytes = new TextEncoder().encode(text);
  if (bytes.length <= max) return text;
  let end = max;
  // step back over continuation bytes (10xxxxxx) to a character start
  while (end > 0 && (bytes[end] & 0xc0) === 0x80) end--;
  return new TextDecoder().decode(bytes.subarray(0, end));
}

/**
 * Validate and clean a reason. Empty (or only whitespace) is a usage error:
 * every toggle must say why.
 */
export async function cleanReason(raw: unknown): Promise<CleanReason> {
  if (typeof raw !== "string") {
    throw new UsageError(`The reason must be text, got ${raw === null ? "null" : typeof raw}.`);
  }
  if (raw.trim() === "") {
    throw new UsageError(
      `A reason is required (--reason TEXT): say why enforcement is being switched, ` +
        `e.g. --reason "INC-1234: rule blocks deploys".`,
    );
  }
  const sha256 = await sha256Hex(raw);
  const replacedText = raw.replace(UNSAFE, REASON_REPLACEMENT);
  const text = capUtf8(replacedText, REASON_MAX_BYTES);
  return { text, sha256, replaced: replacedText !== raw, truncated: text !== replacedText };
}
