import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { type Line, maybeGunzip, readLines } from "./lines.ts";

function streamOf(chunks: Uint8Array[]): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(c) {
      for (const x of chunks) c.enqueue(x);
      c.close();
    },
  });
}

async function all(chunks: Uint8Array[], max = 16): Promise<Line[]> {
  const out: Line[] = [];
  const { stream } = await maybeGunzip(streamOf(chunks));
  for await (const l of readLines(stream, max)) out.push(l);
  return out;
}

const enc = (s: string) => new TextEncoder().encode(s);

Deno.test("readLines: lines across chunks, CRLF, no final newline, empty lines kept", async () => {
  deepStrictEqual(await all([enc("ab"), enc("c\r\nde\n\nf")]), [
    { line: 1, text: "abc" },
    { line: 2, text: "de" },
    { line: 3, text: "" },
    { line: 4, text: "f" },
  ]);
  // every byte its own chunk
  const bytes = enc("x\nyz\n");
  deepStrictEqual(await all([...bytes].map((b) => new Uint8Array([b]))), [
    { line: 1, text: "x" },
    { line: 2, text: "yz" },
  ]);
});

Deno.test("readLines: a line over the limit is reported with its number and skipped unbuffered", async () => {
  const long = "y".repeat(40);
  const r = await all([enc(`a\n${long.slice(0, 10)}`), enc(long.slice(10)), enc("\nb\n")]);
  deepStrictEqual(r[0], { line: 1, text: "a" });
  strictEqual(r[1].line, 2);
  strictEqual("error" in r[1] && /limit is 16 bytes/.test(r[1].error), true);
  deepStrictEqual(r[2], { line: 3, text: "b" });
  // an over-long last line without a newline
  const t = await all([enc("z".repeat(20))]);
  strictEqual(t.length === 1 && "error" in t[0], true);
});

Deno.test("readLines: invalid UTF-8 is an error of that line only", async () => {
  const r = await all([new Uint8Array([0x61, 0x0a, 0xff, 0xfe, 0x0a, 0x62])]);
  deepStrictEqual(r, [
    { line: 1, text: "a" },
    { line: 2, error: "invalid UTF-8" },
    { line: 3, text: "b" },
  ]);
});

Deno.test("maybeGunzip: gzip is decompressed, plain text and empty input pass through", async () => {
  const gz = new Uint8Array(
    await new Response(
      streamOf([enc("one\ntwo\n")]).pipeThrough(
        new CompressionStream("gzip") as unknown as TransformStream<Uint8Array, Uint8Array>,
      ),
    ).arrayBuffer(),
  );
  const { gzip, stream } = await maybeGunzip(streamOf([gz.subarray(0, 1), gz.subarray(1)]));
  strictEqual(gzip, true);
  const lines: Line[] = [];
  for await (const l of readLines(stream, 100)) lines.push(l);
  deepStrictEqual(lines, [{ line: 1, text: "one" }, { line: 2, text: "two" }]);
  deepStrictEqual(await all([]), []);
  deepStrictEqual(await all([enc("\x1f")]), [{ line: 1, text: "\x1f" }]);
});

Deno.test("maybeGunzip: a damaged gzip stream fails the read (the caller reports it)", async () => {
  const { stream } = await maybeGunzip(streamOf([new Uint8Array([0x1f, 0x8b, 1, 2, 3, 4, 5])]));
  let err: unknown = null;
  try {
    for await (const _ of readLines(stream, 100)) { /* drain */ }
  } catch (e) {
    err = e;
  }
  strictEqual(err instanceof Error, true);
});
