/**
 * bench/http: how many /health requests per second the HTTP API answers on
 * loopback, and with what latency.
 *
 * N concurrent keep-alive fetch loops (one connection each) run for T
 * seconds against a URL and print requests/s and p50/p99/max latency.
 * Without --url the benchmark starts its own servers in child processes and
 * also prints each server's CPU use (% of one core, from /proc/<pid>/stat):
 * - "bare Deno.serve": a constant handler on Deno's own HTTP server (the floor);
 * - "bare httpd": the same constant handler on our HTTP/1.1 server
 *   (src/http/httpd.ts, serveHttp over listenTcp), the cost of the server alone;
 * - "aegisbpf app": createApp with fake dependencies on startHttpServer
 *   (127.0.0.1:<ephemeral>, its own SseHub), as the daemon runs it. With --url it measures a
 * running daemon instead (e.g. --url http://127.0.0.1/health).
 *
 *   deno run -A bench/http/http_bench.ts [--url URL] [--connections N]
 *            [--seconds T] [--path /health?require_enforce=1]
 *
 * A benchmark, not a test: it prints and never fails on timing. It fails
 * only when it cannot run (server does not start, a request errors).
 *
 * @module
 */
import { createApp } from "../../src/http/app.ts";
import { listenTcp, serveHttp } from "../../src/http/httpd.ts";
import { startHttpServer } from "../../src/http/serve.ts";
import { SseHub } from "../../src/http/sse.ts";
import { writeStdout } from "../../src/log.ts";

type Kind = "bare" | "httpd" | "app";

interface Args {
  url?: string;
  path: string;
  connections: number;
  seconds: number;
  serve: boolean;
  serveKind: Kind;
}

function parseArgs(argv: string[]): Args {
  const a: Args = {
    path: "/health",
    connections: 16,
    seconds: 5,
    serve: false,
    serveKind: "app",
  };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split(/=(.*)/s, 2);
    const value = () => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    const count = (v: string) => {
      const n = Number(v);
      if (!Number.isFinite(n) || n <= 0) throw new Error(`${flag} must be a positive number`);
      return n;
    };
    switch (flag) {
      case "--url":
        a.url = value();
        break;
      case "--path":
        a.path = value();
        break;
      case "--connections":
        a.connections = Math.floor(count(value()));
        break;
      case "--seconds":
        a.seconds = count(value());
        break;
      case "--serve": // internal: be the server child (bare or app)
        a.serve = true;
        a.serveKind = inline === "bare" ? "bare" : inline === "httpd" ? "httpd" : "app";
        break;
      default:
        throw new Error(
          `unknown argument ${flag}; usage: http_bench.ts [--url URL] [--connections N] ` +
            `[--seconds T] [--path PATH]`,
        );
    }
  }
  return a;
}

/** The child: serve (the app with fake deps, or a bare handler); print the port; run until stdin closes. */
async function serve(kind: Kind): Promise<void> {
  if (kind === "httpd") {
    const body = JSON.stringify({ ok: true, runtime_state: "ENFORCE" });
    const listener = listenTcp({ hostname: "127.0.0.1", port: 0 });
    const srv = serveHttp(
      listener,
      () => new Response(body, { headers: { "content-type": "application/json" } }),
    );
    writeStdout(`${listener.addr.port}\n`);
    for await (const _ of Deno.stdin.readable) { /* wait */ }
    await srv.close();
    return;
  }
  if (kind === "bare") {
    const body = JSON.stringify({ ok: true, runtime_state: "ENFORCE" });
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      () => new Response(body, { headers: { "content-type": "application/json" } }),
    );
    writeStdout(`${server.addr.port}\n`);
    for await (const _ of Deno.stdin.readable) { /* wait */ }
    await server.shutdown();
    return;
  }
  const hub = new SseHub();
  const app = createApp({
    health: (req) =>
      req
        ? { status: 503, body: { ok: false, runtime_state: "AUDIT_FALLBACK", blockers: [] } }
        : { status: 200, body: { ok: true, runtime_state: "ENFORCE" } },
    capabilities: () => ({ schema_version: 1 }),
    state: () => ({ runtime_state: "ENFORCE" }),
    metrics: () => Promise.resolve("aegisbpf_enforce_capable 1\n"),
    events: hub,
  });
  const srv = await startHttpServer(app, { hostname: "127.0.0.1", port: 0 }, {
    beforeClose: () => hub.close(),
  });
  writeStdout(`${srv.addr.port}\n`);
  // the parent closes our stdin when it is done
  for await (const _ of Deno.stdin.readable) { /* wait */ }
  await srv.close();
}

function cpuTicks(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(f[11]) + Number(f[12]); // utime + stime, USER_HZ (100/s)
}

async function load(url: string, connections: number, seconds: number) {
  const lat: number[] = [];
  const statuses = new Map<number, number>();
  const end = performance.now() + seconds * 1000;
  const loop = async () => {
    const client = Deno.createHttpClient({ poolMaxIdlePerHost: 1 });
    try {
      while (performance.now() < end) {
        const t0 = performance.now();
        const r = await fetch(url, { client });
        await r.arrayBuffer();
        lat.push(performance.now() - t0);
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
      }
    } finally {
      client.close();
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: connections }, loop));
  return { lat, statuses, wall: (performance.now() - t0) / 1000 };
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

interface Row {
  label: string;
  rps: number;
  p50: number;
  p99: number;
  max: number;
  codes: string;
  serverCpu?: number;
  clientCpu: number;
}

/** A server child ("bare" or "app"): its pid, the URL to load, and how to stop it. */
async function spawnServer(kind: Kind, path: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL(import.meta.url).pathname, `--serve=${kind}`],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const stdin = child.stdin.getWriter();
  const out = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const r = await out.read();
    if (r.done) throw new Error(`the ${kind} server child exited before printing its port`);
    text += r.value;
  }
  return {
    pid: child.pid,
    url: `http://127.0.0.1:${Number(text.trim())}${path}`,
    stop: async () => {
      await stdin.close();
      await out.cancel();
      await child.status;
    },
  };
}

async function measure(label: string, url: string, args: Args, pid?: number): Promise<Row> {
  await load(url, args.connections, Math.min(1, args.seconds / 5)); // warm-up, not counted
  const s0 = pid ? cpuTicks(pid) : 0;
  const c0 = cpuTicks(Deno.pid);
  const { lat, statuses, wall } = await load(url, args.connections, args.seconds);
  const s1 = pid ? cpuTicks(pid) : 0;
  const c1 = cpuTicks(Deno.pid);
  lat.sort((a, b) => a - b);
  return {
    label,
    rps: lat.length / wall,
    p50: pct(lat, 0.5),
    p99: pct(lat, 0.99),
    max: lat[lat.length - 1],
    codes: [...statuses].map(([s, n]) => `${s}×${n}`).join(" "),
    serverCpu: pid ? (s1 - s0) / wall : undefined,
    clientCpu: (c1 - c0) / wall,
  };
}

async function main(): Promise<void> {
  const args = parseArgs(Deno.args);
  if (args.serve) return await serve(args.serveKind);

  const rows: Row[] = [];
  if (args.url !== undefined) {
    rows.push(await measure(args.url, args.url, args));
  } else {
    for (const kind of ["bare", "httpd", "app"] as const) {
      const srv = await spawnServer(kind, args.path);
      try {
        rows.push(
          await measure(
            { bare: "bare Deno.serve", httpd: "bare httpd", app: "aegisbpf app" }[kind],
            srv.url,
            args,
            srv.pid,
          ),
        );
      } finally {
        await srv.stop();
      }
    }
  }

  const f = (n: number) => n.toFixed(3);
  let text = `bench/http: GET ${args.url ?? args.path}, ${args.connections} keep-alive ` +
    `connections, ${args.seconds} s each (loopback; load generator: Deno fetch)\n` +
    `  ${"server".padEnd(18)} ${"req/s".padStart(8)} ${"p50 ms".padStart(8)} ` +
    `${"p99 ms".padStart(8)} ${"max ms".padStart(8)}  server CPU  loadgen CPU  status\n`;
  for (const r of rows) {
    text += `  ${r.label.padEnd(18)} ${r.rps.toFixed(0).padStart(8)} ${f(r.p50).padStart(8)} ` +
      `${f(r.p99).padStart(8)} ${f(r.max).padStart(8)}  ` +
      `${(r.serverCpu === undefined ? "-" : `${r.serverCpu.toFixed(0)} %`).padStart(10)}  ` +
      `${`${r.clientCpu.toFixed(0)} %`.padStart(11)}  ${r.codes}\n`;
  }
  if (rows.length === 3) {
    const [bare, ...ours] = rows;
    for (const r of ours) {
      text += `  ${r.label} / bare Deno.serve: ${(r.rps / bare.rps).toFixed(2)}× the requests/s; ` +
        `server CPU per request ${
          ((r.serverCpu! / r.rps) / (bare.serverCpu! / bare.rps)).toFixed(2)
        }×\n`;
    }
  }
  writeStdout(text);
}

await main();
