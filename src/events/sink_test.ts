import { deepStrictEqual, match, ok, strictEqual, throws } from "node:assert/strict";
import { AegisError } from "../errors.ts";
import { openSink, parseSinkSpec, type SinkWriter } from "./sink.ts";

async function tempDir(): Promise<string> {
  return await Deno.makeTempDir({ prefix: "aegis-sink-" });
}

function lines(path: string): string[] {
  const t = Deno.readTextFileSync(path);
  return t === "" ? [] : t.slice(0, -1).split("\n");
}

Deno.test("parseSinkSpec: stdout, file:PATH; bad values name --log and the value", () => {
  deepStrictEqual(parseSinkSpec("stdout"), { kind: "stdout" });
  deepStrictEqual(parseSinkSpec(""), { kind: "stdout" });
  deepStrictEqual(parseSinkSpec("file:/var/log/a.jsonl"), {
    kind: "file",
    path: "/var/log/a.jsonl",
  });
  for (const bad of ["file:", "file:rel/path", "file:/dir/", "syslog", "tcp://x"]) {
    throws(() => parseSinkSpec(bad), (e: Error) => {
      ok(e instanceof AegisError && e.code === "USAGE");
      ok(e.message.includes("--log") && e.message.includes(`"${bad}"`), e.message);
      return true;
    });
  }
});

Deno.test("file sink: batches lines, creates the file 0600, flushes on close", async () => {
  const dir = await tempDir();
  try {
    const path = `${dir}/events.jsonl`;
    const sink = openSink(`file:${path}`, { flushIntervalMs: 10_000 });
    strictEqual(Deno.statSync(path).mode! & 0o777, 0o600);
    for (let i = 0; i < 1000; i++) sink.write(JSON.stringify({ i }));
    // nothing written yet: below one chunk and the timer is far away
    strictEqual(Deno.statSync(path).size, 0);
    await sink.close();
    const got = lines(path).map((l) => JSON.parse(l).i);
    deepStrictEqual(got, Array.from({ length: 1000 }, (_, i) => i));
    strictEqual(sink.stats.written, 1000);
    strictEqual(sink.stats.dropped, 0);
    strictEqual(sink.stats.bytes, Deno.statSync(path).size);
    sink.write("after close");
    strictEqual(sink.stats.dropped, 1);
    await sink.close(); // twice is fine
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("file sink: the flush timer writes without an explicit flush", async () => {
  const dir = await tempDir();
  try {
    const path = `${dir}/e.jsonl`;
    const sink = openSink(`file:${path}`, { flushIntervalMs: 5 });
    sink.write('{"a":1}');
    for (let i = 0; i < 100 && Deno.statSync(path).size === 0; i++) {
      await new Promise((r) => setTimeout(r, 5));
    }
    deepStrictEqual(lines(path), ['{"a":1}']);
    await sink.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("file sink: rotation keeps whole lines and at most `keep` old files", async () => {
  const dir = await tempDir();
  try {
    const path = `${dir}/ev.jsonl`;
    const sink = openSink(`file:${path}`, { maxBytes: 4096, keep: 3, chunkBytes: 1000 });
    const N = 2000;
    for (let i = 0; i < N; i++) {
      sink.write(JSON.stringify({ seq: i, pad: "x".repeat(i % 50) }));
      if (i % 100 === 99) await sink.flush();
    }
    await sink.close();
    const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    deepStrictEqual(names, ["ev.jsonl", "ev.jsonl.1", "ev.jsonl.2", "ev.jsonl.3"]);
    ok(sink.stats.rotations > 3, `rotations ${sink.stats.rotations}`);
    // every kept file is whole JSON lines, within the size bound, in order
    const seqs: number[] = [];
    for (const n of ["ev.jsonl.3", "ev.jsonl.2", "ev.jsonl.1", "ev.jsonl"]) {
      const st = Deno.statSync(`${dir}/${n}`);
      ok(st.size <= 4096, `${n} is ${st.size} bytes`);
      strictEqual(st.mode! & 0o777, 0o600, n);
      for (const l of lines(`${dir}/${n}`)) seqs.push(JSON.parse(l).seq);
    }
    // the newest lines survive, contiguous, ending with the last one
    strictEqual(seqs[seqs.length - 1], N - 1);
    for (let i = 1; i < seqs.length; i++) strictEqual(seqs[i], seqs[i - 1] + 1);
    strictEqual(sink.stats.written, N);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("file sink: appends to an existing file and narrows its mode to 0600", async () => {
  const dir = await tempDir();
  try {
    const path = `${dir}/e.jsonl`;
    Deno.writeTextFileSync(path, "old\n", { mode: 0o644 });
    Deno.chmodSync(path, 0o644);
    const sink = openSink(`file:${path}`);
    sink.write("new");
    await sink.close();
    deepStrictEqual(lines(path), ["old", "new"]);
    strictEqual(Deno.statSync(path).mode! & 0o777, 0o600);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("file sink: missing parent, symlink, directory are refused before anything is written", async () => {
  const dir = await tempDir();
  try {
    throws(() => openSink(`file:${dir}/nope/e.jsonl`), (e: Error) => {
      ok(e instanceof AegisError && e.code === "SINK_OPEN", String(e));
      ok(e.message.includes("--log") && e.message.includes(`${dir}/nope`), e.message);
      return true;
    });
    Deno.writeTextFileSync(`${dir}/target`, "keep\n");
    Deno.symlinkSync(`${dir}/target`, `${dir}/link`);
    throws(() => openSink(`file:${dir}/link`), /not a regular file \(a symlink\)/);
    strictEqual(Deno.readTextFileSync(`${dir}/target`), "keep\n");
    Deno.mkdirSync(`${dir}/d`);
    throws(() => openSink(`file:${dir}/d`), /not a regular file/);
    throws(() => openSink(`file:${dir}/e`, { maxBytes: 10 }), /maxBytes=10/);
    throws(() => openSink(`file:${dir}/e`, { keep: 0 }), /keep=0/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** A writer that blocks until released, recording what it got. */
class SlowWriter implements SinkWriter {
  chunks: string[] = [];
  #release: (() => void)[] = [];
  write(p: Uint8Array): Promise<number> {
    return new Promise((resolve) => {
      this.#release.push(() => {
        this.chunks.push(new TextDecoder().decode(p));
        resolve(p.length);
      });
    });
  }
  releaseAll(): void {
    for (const r of this.#release.splice(0)) r();
  }
}

Deno.test("back-pressure: a stuck writer makes write() drop and count, never wait", async () => {
  const w = new SlowWriter();
  const sink = openSink("stdout", { stdout: w, chunkBytes: 100, maxPendingBytes: 1000 });
  const t0 = performance.now();
  for (let i = 0; i < 10_000; i++) sink.write(`{"n":${i}}`);
  ok(performance.now() - t0 < 1000);
  // one chunk is in flight, ~1000 units wait, the rest was dropped
  ok(sink.stats.dropped > 9000, `dropped ${sink.stats.dropped}`);
  const flushed = sink.flush();
  for (let i = 0; i < 200 && sink.stats.written + sink.stats.dropped < 10_000; i++) {
    w.releaseAll();
    await new Promise((r) => setTimeout(r, 0));
  }
  w.releaseAll();
  await flushed;
  strictEqual(sink.stats.written + sink.stats.dropped, 10_000);
  const got = w.chunks.join("").split("\n").filter((l) => l !== "");
  strictEqual(got.length, sink.stats.written);
  // what was kept is in order and whole
  const ns = got.map((l) => JSON.parse(l).n);
  for (let i = 1; i < ns.length; i++) ok(ns[i] > ns[i - 1]);
  await sink.close();
});

Deno.test("stdout EPIPE: the sink stops writing, counts drops, never throws", async () => {
  let calls = 0;
  const broken: SinkWriter = {
    write() {
      calls++;
      return Promise.reject(new Deno.errors.BrokenPipe("EPIPE"));
    },
  };
  const errors: unknown[] = [];
  const sink = openSink("stdout", { stdout: broken, onError: (e) => errors.push(e) });
  sink.write("a");
  sink.write("b");
  await sink.flush();
  strictEqual(sink.stats.dropped, 2);
  strictEqual(sink.stats.errors, 1);
  ok(errors[0] instanceof Deno.errors.BrokenPipe);
  sink.write("c");
  await sink.flush();
  strictEqual(calls, 1, "no write after EPIPE");
  strictEqual(sink.stats.dropped, 3);
  await sink.close();
});

Deno.test("write errors are counted and the next chunk is tried again", async () => {
  let fail = true;
  const got: string[] = [];
  const flaky: SinkWriter = {
    write(p) {
      if (fail) {
        fail = false;
        return Promise.reject(new Error("EIO"));
      }
      got.push(new TextDecoder().decode(p));
      return Promise.resolve(p.length);
    },
  };
  const sink = openSink("stdout", { stdout: flaky });
  sink.write("lost");
  await sink.flush();
  sink.write("kept");
  await sink.close();
  deepStrictEqual(got, ["kept\n"]);
  deepStrictEqual(
    { ...sink.stats },
    { written: 1, bytes: 5, dropped: 1, rotations: 0, errors: 1 },
  );
});

Deno.test("file sink: reopen() after the file was moved away (logrotate) writes to a new PATH", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/events.jsonl`;
    const errors: unknown[] = [];
    const sink = openSink(`file:${path}`, { onError: (e) => errors.push(e) });
    sink.write('{"n":1}');
    await sink.flush();
    await Deno.rename(path, `${path}.rotated`);
    sink.reopen();
    sink.write('{"n":2}');
    await sink.flush();
    strictEqual(await Deno.readTextFile(`${path}.rotated`), '{"n":1}\n');
    strictEqual(await Deno.readTextFile(path), '{"n":2}\n');
    strictEqual((await Deno.stat(path)).mode! & 0o777, 0o600);
    // a PATH that cannot be opened any more: reported, the current file kept
    await Deno.remove(path);
    await Deno.mkdir(path);
    sink.reopen();
    sink.write('{"n":3}');
    await sink.close();
    strictEqual(errors.length, 1);
    strictEqual(sink.stats.dropped, 0, "the line went to the file already open");
    // a stdout sink has nothing to reopen
    const chunks: Uint8Array[] = [];
    const out = openSink("stdout", {
      stdout: { write: (p) => (chunks.push(p.slice()), Promise.resolve(p.length)) },
    });
    out.reopen();
    out.write("x");
    await out.close();
    strictEqual(new TextDecoder().decode(chunks[0]), "x\n");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("file sink: --log-file-mode/--log-file-group on create, rotation and reopen; an existing file's change is reported", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/events.jsonl`;
    // a group this process may give a file without privileges: its own (the new dir has it)
    const gid = Deno.statSync(dir).gid!;
    const notices: string[] = [];
    const mode = (p: string) => Deno.statSync(p).mode! & 0o7777;
    const sink = openSink(`file:${path}`, {
      fileMode: 0o640,
      fileGid: gid,
      maxBytes: 4096,
      keep: 2,
      onNotice: (m) => notices.push(m),
    });
    strictEqual(mode(path), 0o640, "created with the configured mode (not the umask's)");
    strictEqual(Deno.statSync(path).gid, gid);
    strictEqual(notices.length, 0, "a new file is not a change");
    // rotation: the successor gets it too
    for (let i = 0; i < 200; i++) sink.write(`{"n":${i},"pad":"${"x".repeat(40)}"}`);
    await sink.flush();
    ok(sink.stats.rotations > 0);
    strictEqual(mode(path), 0o640);
    strictEqual(mode(`${path}.1`), 0o640);
    // logrotate moved it away and created a wider file: narrowed on reopen, and said
    await Deno.rename(path, `${path}.rotated`);
    Deno.writeTextFileSync(path, "", { mode: 0o644 });
    Deno.chmodSync(path, 0o644);
    sink.reopen();
    sink.write('{"after":"reopen"}');
    await sink.close();
    strictEqual(mode(path), 0o640);
    strictEqual(Deno.readTextFileSync(path), '{"after":"reopen"}\n');
    strictEqual(notices.length, 1, notices.join("\n"));
    match(notices[0], new RegExp(`event file ${path}: mode 0644 -> 0640`));
    // an existing 0600 file widened to the configured 0640 is reported, never silent
    const p2 = `${dir}/narrow.jsonl`;
    Deno.writeTextFileSync(p2, "", { mode: 0o600 });
    Deno.chmodSync(p2, 0o600);
    const s2 = openSink(`file:${p2}`, { fileMode: 0o640, onNotice: (m) => notices.push(m) });
    await s2.close();
    strictEqual(mode(p2), 0o640);
    match(notices[1], /narrow\.jsonl: mode 0600 -> 0640/);
    // the default narrows to 0600, and says so as well
    const s3 = openSink(`file:${p2}`, { onNotice: (m) => notices.push(m) });
    await s3.close();
    strictEqual(mode(p2), 0o600);
    match(notices[2], /mode 0640 -> 0600/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("file sink: the mode and group options are refused for stdout and in a directory others can write", async () => {
  throws(
    () => openSink("stdout", { fileMode: 0o640 }),
    (e: unknown) => e instanceof AegisError && e.code === "USAGE" && /file:PATH/.test(e.message),
  );
  const dir = await Deno.makeTempDir();
  try {
    Deno.chmodSync(dir, 0o770);
    throws(
      () => openSink(`file:${dir}/e.jsonl`, { fileMode: 0o640 }),
      (e: unknown) =>
        e instanceof AegisError && e.code === "SINK_OPEN" &&
        /writable by its group or by others \(mode 0770\)/.test(e.message),
    );
    ok(!existsSync(`${dir}/e.jsonl`), "nothing created");
    // the default keeps working there, as before
    const s = openSink(`file:${dir}/e.jsonl`);
    await s.close();
    Deno.chmodSync(dir, 0o750);
    const t = openSink(`file:${dir}/e.jsonl`, { fileMode: 0o640 });
    await t.close();
    strictEqual(Deno.statSync(`${dir}/e.jsonl`).mode! & 0o777, 0o640);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

function existsSync(p: string): boolean {
  try {
    Deno.lstatSync(p);
    return true;
  } catch {
    return false;
  }
}
