/**
 * Tier 1: without DENORT_BIN, `deno task compile` either builds the binary
 * (a machine that can fetch Deno's runtime) or fails clearly with exit 3
 * (these machines: only the npm registry and Debian are reachable).
 * (With DENORT_BIN set, tests/compile/smoke.sh builds and runs the binary.)
 */
import { match, strictEqual } from "node:assert/strict";
import { ROOT, run } from "../lib/helpers.ts";

Deno.test("compile without DENORT_BIN builds dist/aegisbpf, or exits 3 saying how to provide a denort", async () => {
  const env: Record<string, string> = { ...Deno.env.toObject() };
  delete env.DENORT_BIN;
  const r = await new Deno.Command("bash", {
    args: [`${ROOT}/build/compile.sh`],
    env,
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(r.stderr);
  if (r.code === 0) {
    // the runtime could be fetched: the binary must be there and executable
    const st = Deno.statSync(`${ROOT}/dist/aegisbpf`);
    strictEqual(st.isFile && ((st.mode ?? 0) & 0o111) !== 0, true, stderr);
    return;
  }
  strictEqual(r.code, 3, stderr);
  match(stderr, /DENORT_BIN=\/path\/to\/denort deno task compile/);
});

Deno.test("compile with a DENORT_BIN that is not executable fails before compiling", async () => {
  const r = await run("bash", [`${ROOT}/build/compile.sh`], {
    DENORT_BIN: "/nonexistent/denort",
  });
  strictEqual(r.code, 3);
  match(r.stderr, /is not an executable file/);
});
