/**
 * Lines of a byte stream, bounded: a line longer than `maxLine` bytes is
 * reported (with its number) and skipped without being buffered, so a
 * stream of any size is read in memory bounded by `maxLine` plus one chunk.
 * A gzip stream (it starts with 1f 8b) is decompressed on the way
 * (`DecompressionStream("gzip")`). Invalid UTF-8 is reported per line.
 *
 * @module
 */

/** One line (its 1-based number and text, without "\n" or "\r\n") or why it was skipped. */
export type Line = { line: number; text: string } | { line: number; error: string };

const GZIP_MAGIC0 = 0x1f, GZIP_MAGIC1 = 0x8b;

/** The stream, decompressed if it is gzip (looked at its first bytes). */
export async function maybeGunzip(
  stream: ReadableStream<Uint8Array>,
): Promise<{ stream: ReadableStream<Uint8Array>; gzip: boolean }> {
  const reader = stream.getReader();
  const head: Uint8Array[] = [];
  let have = 0;
  let done = false;
  while (have < 2) {
    const r = await reader.read();
    if (r.done) {
      done = true;
      break;
    }
    if (r.value.length === 0) continue;
    head.push(r.value);
    have += r.value.length;
  }
  const first = head[0];
  const second = first && first.length > 1 ? first[1] : head[1]?.[0];
  const gzip = first !== undefined && first[0] === GZIP_MAGIC0 && second === GZIP_MAGIC1;
  const replay = new ReadableStream<Uint8Array>({
    start(c) {
      for (const h of head) c.enqueue(h);
      if (done) c.close();
    },
    async pull(c) {
      const r = await reader.read();
      if (r.done) c.close();
      else c.enqueue(r.value);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
  if (!gzip) return { stream: replay, gzip };
  return {
    stream: replay.pipeThrough(
      new DecompressionStream("gzip") as unknown as TransformStream<Uint8Array, Uint8Array>,
    ),
    gzip,
  };
}

/** The lines of `stream`; the last line need not end with "\n". */
export async function* readLines(
  stream: ReadableStream<Uint8Array>,
  maxLine: number,
): AsyncGenerator<Line> {
  const dec = new TextDecoder("utf-8", { fatal: true });
  let carry: Uint8Array | null = null; // the start of the current line
  let skipping = false; // the current line is over the limit: drop up to its "\n"
  let skippedBytes = 0;
  let n = 0;
  const emit = (bytes: Uint8Array): Line => {
    n++;
    let end = bytes.length;
    if (end > 0 && bytes[end - 1] === 13) end--;
    try {
      return { line: n, text: dec.decode(bytes.subarray(0, end)) };
    } catch {
      return { line: n, error: "invalid UTF-8" };
    }
  };
  const tooLong = (): Line => {
    n++;
    return {
      line: n,
      error: `line is ${skippedBytes} bytes or more; the limit is ${maxLine} bytes per line`,
    };
  };
  for await (const chunk of stream) {
    let pos = 0;
    while (pos < chunk.length) {
      const nl = chunk.indexOf(10, pos);
      const end = nl === -1 ? chunk.length : nl;
      if (skipping) {
        skippedBytes += end - pos;
      } else {
        const partLen = end - pos + (carry ? carry.length : 0);
        if (partLen > maxLine) {
          skipping = true;
          skippedBytes = partLen;
          carry = null;
        } else if (nl === -1) {
          const part = chunk.subarray(pos, end);
          if (carry) {
            const c: Uint8Array = new Uint8Array(carry.length + part.length);
            c.set(carry);
            c.set(part, carry.length);
            carry = c;
          } else carry = part.slice();
        } else {
          let bytes = chunk.subarray(pos, end);
          if (carry) {
            const c = new Uint8Array(carry.length + bytes.length);
            c.set(carry);
            c.set(bytes, carry.length);
            bytes = c;
            carry = null;
          }
          yield emit(bytes);
        }
      }
      if (nl === -1) break;
      if (skipping) {
        yield tooLong();
        skipping = false;
        skippedBytes = 0;
      }
      pos = nl + 1;
    }
  }
  if (skipping) yield tooLong();
  else if (carry && carry.length > 0) yield emit(carry);
}
