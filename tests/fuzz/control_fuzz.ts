/**
 * Fuzz target "control": the control socket's app (src/control/app.ts)
 * with the rule and policy routes mounted (src/control/rule_routes.ts, policy_routes.ts) and the
 * read-only app behind it, all on fakes as in their unit tests (fake maps
 * and path resolver, a FakeFlag, a private temp state directory). Inputs
 * are requests in the text form of request.ts; policy bodies inside
 * `policy_b64` are mutated as policy files too.
 *
 * Oracle: no exception escapes app.request; the status is below 500 (a
 * failure the operator must fix is 5xx only with a real kernel, never with
 * these fakes); every error is a JSON `{error, code}` body with a code that
 * is not INTERNAL; the routes' onError hook is never called.
 *
 * @module
 */
import type { Hono } from "hono";
import { controlApp } from "./apps.ts";
import { assertClean, expect, Finding, fuzz, loadCorpus } from "./lib.ts";
import { mutateRequest, toRequest } from "./request.ts";

/** Kernel credentials as the unix listener reports them (ignored where not read). */
const ENV = { peer: { uid: 0, pid: Deno.pid, gid: 0 }, remote: "unix" };

/** Checks one request against the control app; exported for regression tests. */
export async function runControl(
  t: { app: Hono; errors: string[] },
  input: Uint8Array,
): Promise<string> {
  const req = toRequest(input);
  if (req === null) return "unrepresentable"; // not a request any server would hand over
  const what = `${req.method} ${new URL(req.url).pathname}`;
  const res = await t.app.request(req, undefined, ENV);
  const text = await res.text();
  if (t.errors.length > 0) {
    const e = t.errors.splice(0);
    throw new Finding(`${what}: unexpected error reported by the routes: ${e.join("; ")}`);
  }
  expect(res.status < 500, `${what} answered ${res.status}: ${text.slice(0, 400)}`);
  if (res.status >= 400 && req.method !== "HEAD") {
    let body: { error?: unknown; code?: unknown } = {};
    try {
      body = JSON.parse(text);
    } catch {
      // judged below
    }
    expect(
      typeof body.error === "string" && typeof body.code === "string",
      `${what} answered ${res.status} without an {error, code} body: ${text.slice(0, 300)}`,
    );
    expect(body.code !== "INTERNAL", `${what}: ${text.slice(0, 300)}`);
    return `${res.status} ${body.code}`;
  }
  return String(res.status);
}

Deno.test("fuzz control: control, rule and policy routes answer every request below 500", async () => {
  const t = controlApp();
  try {
    const seeds = loadCorpus("control").map((c) => c.bytes);
    const policySeeds = loadCorpus("policy").map((c) => c.bytes);
    const r = await fuzz({
      target: "control",
      seeds,
      run: (input) => runControl(t, input),
      mutate: (rng, input) => mutateRequest(rng, input, policySeeds),
      maxInput: 512 * 1024,
    });
    assertClean(r);
  } finally {
    t.cleanup();
  }
});
