/**
 * Host tier (root, real BPF on this kernel): the telemetry path.
 *  - ring-buffer overflow: a 4 KiB ring, the consumer stopped while a
 *    denied file is opened in a loop (AUDIT records from the fallback
 *    tracepoints), drops counted in aegis_counters and visible in
 *    renderMetrics, the would-be blocks in aegisbpf_blocks_total{action="audit"};
 *    once draining resumes, new records arrive.
 *  - the same against the real daemon with SIGSTOP/SIGCONT (skipped, with
 *    the reason printed in its name, while `run --help` lacks --http-listen).
 *  - kernel records → JSON → file sink with rotation: every line is JSON,
 *    counts match, rotated files stay bounded.
 *  - `aegisbpf metrics` helpers: from the pinned maps, and over a unix
 *    socket from a daemon stand-in.
 */
import { ok, strictEqual } from "node:assert/strict";
import { AEGIS_CNT_RINGBUF_DROPS } from "../../src/bpf/abi_gen.ts";
import { uninstallPins } from "../../src/bpf/engine.ts";
import { fetchDaemonMetrics, renderFromPins } from "../../src/cli/metrics.ts";
import { CgroupPathResolver } from "../../src/events/cgroup_path.ts";
import type { KernelRecord } from "../../src/events/decode.ts";
import { EventDrain } from "../../src/events/drain.ts";
import { eventJson } from "../../src/events/envelope.ts";
import { recordToEvent } from "../../src/events/json.ts";
import { openSink } from "../../src/events/sink.ts";
import { renderMetrics } from "../../src/metrics/render.ts";
import { mapsOf, openMany, sample, withDeniedFile } from "../lib/telemetry.ts";

const RUNTIME = await Deno.makeTempDir({ prefix: "aegis-rt-" });
globalThis.addEventListener("unload", () => Deno.removeSync(RUNTIME, { recursive: true }));
const ROOT = new URL("../..", import.meta.url).pathname;

Deno.test("ring-buffer overflow: drops counted and shown in metrics; draining recovers", async () => {
  await withDeniedFile(`${RUNTIME}/overflow`, 4096, async (fb, ring, file) => {
    const seen: KernelRecord[] = [];
    const drain = new EventDrain(ring, (r) => {
      if (r.kind === "file_block" && r.pid === Deno.pid) seen.push(r);
    });
    drain.drainNow();
    seen.length = 0;
    const drops0 = fb.counters().ringbufDrops;
    // consumer stopped: 352-byte records, a 4 KiB ring holds about 11
    openMany(file, 2000);
    const drops1 = fb.counters().ringbufDrops;
    ok(drops1 - drops0 > 1000n, `drops ${drops1 - drops0}`);
    const perCpu = fb.map("aegis_counters").sumU64(AEGIS_CNT_RINGBUF_DROPS);
    strictEqual(perCpu, drops1, "sumU64 over CPUs is the counter");
    const text = await renderMetrics({
      map: mapsOf(fb),
      runtimeState: "AUDIT_FALLBACK",
      enforceCapable: false,
      emergency: null,
      events: null,
      netBlocks: null,
      sse: null,
      unresolvedPaths: null,
      perfSloPath: `${RUNTIME}/no-such-slo.json`,
    }, { detailed: false });
    strictEqual(sample(text, "aegisbpf_ringbuf_drops_total"), Number(drops1));
    // the fallback only reports: every denied open is a would-be block, counted by default
    strictEqual(sample(text, "aegisbpf_blocks_total", '{action="block"}'), 0);
    ok((sample(text, "aegisbpf_blocks_total", '{action="audit"}') ?? 0) >= 2000, text);
    // resume: what fit in the ring is there, and new records arrive again
    drain.drainNow();
    ok(seen.length > 0 && seen.length < 20, `kept ${seen.length}`);
    seen.length = 0;
    for (let round = 0; round < 5; round++) {
      openMany(file, 5);
      drain.drainNow();
    }
    strictEqual(seen.length, 25, "every record after recovery arrives");
    strictEqual(fb.counters().ringbufDrops, drops1, "no drop while draining");
  });
});

Deno.test("file sink: real kernel records → JSON lines with rotation, counts match", async () => {
  const dir = await Deno.makeTempDir({ prefix: "aegis-sinkhost-" });
  try {
    await withDeniedFile(`${RUNTIME}/sink`, 8 << 20, async (_fb, ring, file) => {
      const sink = openSink(`file:${dir}/events.jsonl`, { maxBytes: 64 << 10, keep: 50 });
      const cg = new CgroupPathResolver();
      const drain = new EventDrain(ring, (r) => sink.write(eventJson(recordToEvent(r, cg))));
      const N = 3000;
      openMany(file, N);
      drain.drainNow();
      await sink.close();
      strictEqual(sink.stats.dropped, 0);
      strictEqual(sink.stats.written, drain.stats.decoded);
      ok(drain.stats.decoded >= N);
      const files = [...Deno.readDirSync(dir)].map((e) => e.name);
      ok(sink.stats.rotations >= 5, `rotations ${sink.stats.rotations}`);
      strictEqual(files.length, sink.stats.rotations + 1);
      let lines = 0;
      let blocks = 0;
      for (const f of files) {
        ok(Deno.statSync(`${dir}/${f}`).size <= 64 << 10, f);
        const text = Deno.readTextFileSync(`${dir}/${f}`);
        ok(text.endsWith("\n"), `${f} ends mid-line`);
        for (const l of text.slice(0, -1).split("\n")) {
          const e = JSON.parse(l);
          lines++;
          if (e.type === "block" && e.pid === Deno.pid) {
            blocks++;
            strictEqual(e.action, "AUDIT");
            strictEqual(e.exec_id, `${e.start_time}-${e.pid}`);
            ok(typeof e.cgroup_path === "string", `cgroup_path ${e.cgroup_path}`);
          }
        }
      }
      strictEqual(lines, sink.stats.written);
      strictEqual(blocks, N);
    });
    // bounded: a small keep leaves at most keep + 1 files
    const dir2 = `${dir}/bounded`;
    Deno.mkdirSync(dir2);
    const s = openSink(`file:${dir2}/e.jsonl`, { maxBytes: 4096, keep: 2 });
    for (let i = 0; i < 2000; i++) {
      s.write(JSON.stringify({ i }));
      if (i % 50 === 0) await s.flush();
    }
    await s.close();
    strictEqual([...Deno.readDirSync(dir2)].length, 3);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("aegisbpf metrics: from the pinned maps (no daemon), and over the control socket", async () => {
  const pinRoot = `/sys/fs/bpf/aegis-tel-${crypto.randomUUID().slice(0, 8)}`;
  const prevRt = Deno.env.get("AEGIS_RUNTIME_DIR");
  Deno.env.set("AEGIS_RUNTIME_DIR", `${RUNTIME}/cli`);
  try {
    await withDeniedFile(`${RUNTIME}/pins`, 4096, async (_fb, _ring, file) => {
      openMany(file, 500); // nobody drains: drops
      const t0 = performance.now();
      const text = await renderFromPins(true, pinRoot);
      const ms = performance.now() - t0;
      ok((sample(text, "aegisbpf_ringbuf_drops_total") ?? 0) > 0, text);
      ok(/^aegisbpf_runtime_state\{state="UNKNOWN"\} 1$/m.test(text));
      ok(/^aegisbpf_map_capacity\{map="aegis_deny_inode"\} \d+$/m.test(text));
      strictEqual(sample(text, "aegisbpf_deny_inode_entries"), 1);
      Deno.stderr.writeSync(
        new TextEncoder().encode(`  (render from pins: ${ms.toFixed(1)} ms)\n`),
      );
    }, pinRoot);
  } finally {
    uninstallPins(pinRoot);
    if (prevRt === undefined) Deno.env.delete("AEGIS_RUNTIME_DIR");
    else Deno.env.set("AEGIS_RUNTIME_DIR", prevRt);
  }
  // a daemon stand-in on a unix socket
  const sock = `${RUNTIME}/control.sock`;
  strictEqual(await fetchDaemonMetrics(false, sock), null, "no socket: no daemon");
  const seen: string[] = [];
  const server = Deno.serve(
    { path: sock, onListen: () => {} },
    (req) => {
      seen.push(new URL(req.url).pathname + new URL(req.url).search);
      return new Response("# HELP x y\n# TYPE x gauge\nx 1\n", {
        headers: { "content-type": "text/plain; version=0.0.4" },
      });
    },
  );
  try {
    strictEqual(await fetchDaemonMetrics(true, sock), "# HELP x y\n# TYPE x gauge\nx 1\n");
    strictEqual(seen[0], "/metrics?detailed=1");
  } finally {
    await server.shutdown();
  }
  // a stale socket file with nobody behind it
  strictEqual(await fetchDaemonMetrics(false, sock), null);
});

// ---- the real daemon, stopped with SIGSTOP under load ----

const runHelp = new TextDecoder().decode(
  (await new Deno.Command(`${ROOT}scripts/aegisbpf`, { args: ["run", "--help"], stderr: "null" })
    .output()).stdout,
);
const HAS_HTTP = runHelp.includes("--http-listen");

Deno.test({
  name: HAS_HTTP
    ? "daemon: SIGSTOP under an exec storm drops events, SIGCONT recovers, /metrics shows drops"
    : "daemon SIGSTOP/SIGCONT overflow (SKIPPED: `aegisbpf run --help` does not list --http-listen yet)",
  ignore: !HAS_HTTP,
  fn: async () => {
    const tmp = await Deno.makeTempDir({ prefix: "aegis-daemon-" });
    const port = 20000 + Math.floor(Math.random() * 20000);
    const pins = `/sys/fs/bpf/aegis-tel-d-${crypto.randomUUID().slice(0, 8)}`;
    const env = {
      AEGIS_PIN_ROOT: pins,
      AEGIS_STATE_DIR: `${tmp}/state`,
      AEGIS_RUNTIME_DIR: `${tmp}/run`,
      AEGIS_ETC_DIR: `${tmp}/etc`,
    };
    for (const d of ["state", "run", "etc"]) Deno.mkdirSync(`${tmp}/${d}`, { mode: 0o700 });
    const daemon = new Deno.Command(`${ROOT}scripts/aegisbpf`, {
      args: ["run", "--audit", "--ringbuf-bytes", "4096", "--http-listen", `127.0.0.1:${port}`],
      env,
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const stderr = daemon.stderr.pipeThrough(new TextDecoderStream());
    let log = "";
    const logDone = (async () => {
      for await (const t of stderr) log += t;
    })();
    const get = async (path: string) => {
      const r = await fetch(`http://127.0.0.1:${port}${path}`);
      return { status: r.status, text: await r.text() };
    };
    try {
      let up = false;
      for (let i = 0; i < 300 && !up; i++) {
        try {
          up = (await get("/health")).status > 0;
        } catch {
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      ok(up, `daemon never answered /health:\n${log}`);
      // the event pipeline is live (programs attached, drain running) before the stop
      let live = false;
      for (let i = 0; i < 100 && !live; i++) {
        await new Deno.Command("/bin/true").output();
        live = (sample((await get("/metrics")).text, "aegisbpf_events_published_total") ?? 0) > 0;
        if (!live) await new Promise((r) => setTimeout(r, 100));
      }
      ok(live, `no event published within 10 s of /health answering:\n${log}`);
      const before = sample((await get("/metrics")).text, "aegisbpf_ringbuf_drops_total") ?? 0;
      Deno.kill(daemon.pid, "SIGSTOP");
      try {
        for (let i = 0; i < 300; i++) {
          await new Deno.Command("/bin/true").output(); // exec records, nobody reading
        }
      } finally {
        Deno.kill(daemon.pid, "SIGCONT");
      }
      const m = await get("/metrics");
      strictEqual(m.status, 200);
      const after = sample(m.text, "aegisbpf_ringbuf_drops_total") ?? 0;
      ok(after > before, `drops before ${before}, after ${after}:\n${m.text}\n${log}`);
      const emitted0 = sample(m.text, "aegisbpf_events_published_total");
      for (let i = 0; i < 5; i++) await new Deno.Command("/bin/true").output();
      await new Promise((r) => setTimeout(r, 500));
      const m2 = await get("/metrics");
      const emitted1 = sample(m2.text, "aegisbpf_events_published_total");
      if (emitted0 !== undefined && emitted1 !== undefined) {
        ok(emitted1 > emitted0, `no new events after SIGCONT (${emitted0} → ${emitted1})`);
      }
      strictEqual(
        (await get("/health")).status === 200 || (await get("/health")).status === 503,
        true,
      );
    } finally {
      try {
        Deno.kill(daemon.pid, "SIGTERM");
      } catch { /* gone */ }
      await daemon.status;
      await logDone;
      uninstallPins(pins);
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
