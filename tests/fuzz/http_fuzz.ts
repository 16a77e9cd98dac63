/**
 * Fuzz target "http": the read-only HTTP API (src/http/app.ts) through
 * `app.request`, with fake dependencies that always answer (so any 5xx is
 * the app's own failure). Inputs are requests in the text form of
 * request.ts.
 *
 * Oracle: no exception escapes app.request; the status is below 500; every
 * 4xx is a JSON `{error, code}` body; the security headers are on every
 * answer.
 *
 * @module
 */
import { createApp, ErrorBodySchema } from "../../src/http/app.ts";
import { assertClean, expect, fuzz, loadCorpus } from "./lib.ts";
import { fakeHttpDeps } from "./apps.ts";
import { mutateRequest, toRequest } from "./request.ts";

/** Checks one request against the app; exported for regression tests. */
export async function runHttp(
  app: ReturnType<typeof createApp>,
  input: Uint8Array,
): Promise<string> {
  const req = toRequest(input);
  if (req === null) return "unrepresentable"; // not a request any server would hand over
  const method = req.method;
  const res = await app.request(req);
  const text = await res.text();
  expect(res.status < 500, `${method} ${req.url} answered ${res.status}: ${text.slice(0, 300)}`);
  expect(
    res.headers.get("cache-control") === "no-store" &&
      res.headers.get("x-content-type-options") === "nosniff",
    `${method} ${req.url} answered without the security headers`,
  );
  if (res.status >= 400 && method !== "HEAD") {
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
    expect(
      ErrorBodySchema.safeParse(body).success,
      `${method} ${req.url} answered ${res.status} without an {error, code} body: ${
        text.slice(0, 300)
      }`,
    );
  }
  return String(res.status);
}

Deno.test("fuzz http: the read-only API answers every request below 500 with its headers", async () => {
  const app = createApp(fakeHttpDeps());
  const seeds = loadCorpus("http").map((c) => c.bytes);
  const policySeeds = loadCorpus("policy").map((c) => c.bytes);
  const r = await fuzz({
    target: "http",
    seeds,
    run: (input) => runHttp(app, input),
    mutate: (rng, input) => mutateRequest(rng, input, policySeeds),
    maxInput: 256 * 1024,
  });
  assertClean(r);
});
