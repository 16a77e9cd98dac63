/**
 * The apps the HTTP fuzz targets drive, on fakes as in their unit tests:
 * the read-only API with dependencies that always answer, and the control
 * app with the rule and policy routes mounted (fake maps and path
 * resolver, a FakeFlag, a private temp state directory).
 *
 * @module
 */
import { Hono } from "hono";
import { createControlApp } from "../../src/control/app.ts";
import { EmergencyControl } from "../../src/control/emergency.ts";
import { FakeFlag, privateTempDir } from "../../src/control/control_testing.ts";
import { createApp, type HttpDeps } from "../../src/http/app.ts";
import { fakeMaps, fakeResolvePath } from "../../src/policy/fake_maps_testing.ts";
import { LiveRules } from "../../src/policy/live.ts";
import { createPolicyRoutes } from "../../src/control/policy_routes.ts";
import { createRuleRoutes } from "../../src/control/rule_routes.ts";

/** Dependencies that always answer; /events gets a stream that is already closed. */
export function fakeHttpDeps(): HttpDeps {
  return {
    health: (requireEnforce) => ({ status: 200, body: { ok: true, requireEnforce } }),
    capabilities: () => ({ schema_version: 1, enforce_capable: false, big: 2n ** 70n }),
    state: () => ({ runtime_state: "ENFORCE", transitions: 3n }),
    metrics: (detailed) => Promise.resolve(`aegisbpf_up 1\n# detailed ${detailed}\n`),
    events: {
      subscribe: () => new ReadableStream<Uint8Array>({ start: (c) => c.close() }),
    },
  };
}

/** The control app on fakes, in a fresh private directory. */
export function controlApp(): { app: Hono; errors: string[]; cleanup(): void } {
  const { dir, owner } = privateTempDir("aegis-fuzz-ctl-");
  const fm = fakeMaps();
  const resolvePath = fakeResolvePath();
  const resolveCgroup = (p: string) => p.startsWith("/missing") ? null : BigInt(p.length);
  let now = 1_767_225_600_000;
  const live = new LiveRules({
    maps: fm.maps,
    storePath: `${dir}/live_rules.json`,
    now: () => (now += 1000),
    resolvePath,
    resolveCgroup,
    ownerUid: owner,
  });
  const errors: string[] = [];
  const onError = (what: string, e: unknown) =>
    errors.push(`${what}: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
  const rules = createRuleRoutes({ live, policyText: () => "", onError });
  const policy = createPolicyRoutes({
    apply: {
      maps: fm.maps,
      stateDir: dir,
      keysDir: `${dir}/keys`,
      compileEnv: { resolvePath, resolveCgroup },
      live,
    },
    onError,
  });
  const emergency = new EmergencyControl({
    stateDir: dir,
    flag: new FakeFlag(),
    nodeName: "fuzz",
    ownerUid: owner,
  });
  const app = createControlApp({
    emergency,
    readOnly: createApp(fakeHttpDeps()),
    mounts: { "/rules": rules, "/policy": policy },
  });
  return { app, errors, cleanup: () => Deno.removeSync(dir, { recursive: true }) };
}
