/**
 * Test-only reader of a gzip'd tar file (ustar, with the pax and GNU
 * long-name headers `git archive` and GNU tar write), all in memory: the
 * tests read files of a peer's source tarball without unpacking it or
 * running `tar`. Regular files only; anything it cannot read is an error
 * naming the tarball and the offset, never a silent skip.
 *
 * @module
 */

const BLOCK = 512;
const dec = new TextDecoder();

function text(b: Uint8Array, off: number, len: number): string {
  const s = b.subarray(off, off + len);
  const nul = s.indexOf(0);
  return dec.decode(nul < 0 ? s : s.subarray(0, nul));
}

/** The `path` record of a pax extended header ("LEN path=VALUE\n" records). */
function paxPath(data: Uint8Array): string | undefined {
  let off = 0;
  while (off < data.length) {
    const sp = data.indexOf(0x20, off);
    const len = sp < 0 ? NaN : Number(text(data, off, sp - off));
    if (!(len > 0) || off + len > data.length) return undefined;
    const rec = dec.decode(data.subarray(sp + 1, off + len - 1));
    if (rec.startsWith("path=")) return rec.slice(5);
    off += len;
  }
  return undefined;
}

/**
 * The regular files of the .tar.gz at `path` whose name `want` accepts
 * (names as stored, e.g. "examples/policies/x.conf"), name -> bytes.
 */
export async function readTarGz(
  path: string | URL,
  want: (name: string) => boolean,
): Promise<Map<string, Uint8Array>> {
  const gz = await Deno.readFile(path);
  const stream = new Blob([gz]).stream().pipeThrough(new DecompressionStream("gzip"));
  const tar = new Uint8Array(await new Response(stream).arrayBuffer());
  const out = new Map<string, Uint8Array>();
  let nextName: string | undefined;
  for (let off = 0; off + BLOCK <= tar.length;) {
    const h = tar.subarray(off, off + BLOCK);
    if (h.every((b) => b === 0)) break; // end of archive
    const sizeText = text(h, 124, 12).trim();
    if (!/^[0-7]+$/.test(sizeText)) {
      throw new Error(`${path}: tar header at offset ${off}: size "${sizeText}" is not octal`);
    }
    const size = parseInt(sizeText, 8);
    const type = String.fromCharCode(h[156] || 0x30);
    const data = tar.subarray(off + BLOCK, off + BLOCK + size);
    if (data.length !== size) throw new Error(`${path}: tar entry at offset ${off} is cut short`);
    off += BLOCK + Math.ceil(size / BLOCK) * BLOCK;
    if (type === "x") nextName = paxPath(data) ?? nextName;
    else if (type === "L") nextName = text(data, 0, data.length);
    else if (type === "g") continue; // pax global header (git archive: the commit id)
    else {
      const prefix = text(h, 257, 6) === "ustar" ? text(h, 345, 155) : "";
      const name = nextName ?? (prefix ? `${prefix}/${text(h, 0, 100)}` : text(h, 0, 100));
      nextName = undefined;
      if ((type === "0" || type === "7") && want(name)) out.set(name, data.slice());
    }
  }
  return out;
}
