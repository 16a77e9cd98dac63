import { deepStrictEqual as eq, ok, strictEqual, throws } from "node:assert/strict";
import { EnforcementProver, proofProblem, SelfTestCounter } from "./prover.ts";

function clock(start = 1000) {
  const c = { t: start, now: () => c.t };
  return c;
}

Deno.test("prover: runs every surface, keeps the last result, a throw is a failed proof", async () => {
  const c = clock();
  let denied = true;
  let rounds = 0;
  const p = new EnforcementProver({
    surfaces: {
      network: () => Promise.reject(new Error("no route")),
      file: () => Promise.resolve({ denied, detail: denied ? "EPERM" : "opened" }),
    },
    intervalSeconds: 30,
    now: c.now,
    onRound: () => rounds++,
  });
  eq(p.surfaces, ["file", "network"], "in PROOF_SURFACES order");
  const r = await p.round();
  eq(r.file, { ok: true, last_unix: 1000, detail: "EPERM" });
  strictEqual(r.network!.ok, false);
  ok(r.network!.detail.includes("could not run: no route"));
  denied = false;
  c.t = 1030;
  await p.round();
  eq(p.results.file, { ok: false, last_unix: 1030, detail: "opened" });
  strictEqual(rounds, 2);
  strictEqual(p.rounds, 2);
});

Deno.test("prover: tick starts a round once per period, never two at once; expedite", async () => {
  const c = clock();
  let calls = 0;
  let release: () => void = () => {};
  const p = new EnforcementProver({
    surfaces: {
      file: () => {
        calls++;
        return new Promise((res) => {
          release = () => res({ denied: true, detail: "EPERM" });
        });
      },
    },
    intervalSeconds: 30,
    now: c.now,
  });
  const first = p.tick();
  ok(first, "the first tick runs a round");
  strictEqual(p.running, true);
  c.t += 60;
  strictEqual(p.tick(), null, "a round in flight is not started again");
  release();
  await first;
  strictEqual(p.due(), true, "60 s after the round started: due again");
  c.t = 1000 + 29;
  const q = new EnforcementProver({
    surfaces: { file: () => Promise.resolve({ denied: true, detail: "EPERM" }) },
    intervalSeconds: 30,
    now: c.now,
  });
  await q.round();
  c.t += 29;
  strictEqual(q.tick(), null, "29 s: not due");
  c.t += 1;
  const t = q.tick();
  ok(t, "30 s: due");
  await t;
  q.expedite();
  ok(q.due(), "expedite makes the next tick run a round");
  strictEqual(calls, 1);
});

Deno.test("prover: interval 0 never runs periodically; bad intervals are refused", async () => {
  const c = clock();
  let calls = 0;
  const p = new EnforcementProver({
    surfaces: {
      file: () => {
        calls++;
        return Promise.resolve({ denied: true, detail: "EPERM" });
      },
    },
    intervalSeconds: 0,
    now: c.now,
  });
  await p.round();
  c.t += 10_000;
  strictEqual(p.tick(), null);
  strictEqual(calls, 1);
  for (const bad of [-1, 1.5, NaN, Infinity]) {
    throws(
      () => new EnforcementProver({ surfaces: {}, intervalSeconds: bad }),
      RangeError,
      String(bad),
    );
  }
});

Deno.test("prover: a proof that resolves null keeps the surface's previous result", async () => {
  const c = clock();
  const answers: ({ denied: boolean; detail: string } | null)[] = [
    { denied: true, detail: "EPERM" },
    null,
  ];
  const p = new EnforcementProver({
    surfaces: { file: () => Promise.resolve(answers.shift()!) },
    intervalSeconds: 30,
    now: c.now,
  });
  await p.round();
  c.t += 30;
  await p.round();
  eq(p.results.file, { ok: true, last_unix: 1000, detail: "EPERM" }, "unchanged, not refreshed");
});

Deno.test("proofProblem: missing, failed and stale (> 3 periods) proofs; fresh passes", () => {
  const pass = { ok: true, last_unix: 1000, detail: "EPERM" };
  strictEqual(proofProblem(["file"], { file: pass }, 1090, 30), null);
  const stale = proofProblem(["file"], { file: pass }, 1091, 30)!;
  ok(stale.includes("91 s old"), stale);
  const failed = proofProblem(
    ["file", "network"],
    { file: { ok: false, last_unix: 1000, detail: "opened" } },
    1000,
    30,
  )!;
  ok(failed.startsWith("enforcement proof failed: file: opened; network: no proof"), failed);
  strictEqual(proofProblem(["file"], {}, 1000, 0), null, "off is not judged here");
});

Deno.test("SelfTestCounter: by hook and total", () => {
  const s = new SelfTestCounter();
  s.observe("file_open");
  s.observe("file_open");
  s.observe("inode_permission");
  eq(s.byHook, { file_open: 2, inode_permission: 1 });
  strictEqual(s.total, 3);
});

Deno.test("prover: afterSurfaces runs inside every round, after the surfaces; its throw does not fail the round", async () => {
  const order: string[] = [];
  let fail = false;
  const p = new EnforcementProver({
    surfaces: {
      file: () => {
        order.push("file");
        return Promise.resolve({ denied: true, detail: "EPERM" });
      },
    },
    intervalSeconds: 30,
    afterSurfaces: () => {
      order.push(p.running ? "rules (in flight)" : "rules");
      return fail ? Promise.reject(new Error("probe broke")) : Promise.resolve();
    },
    onRound: () => order.push("onRound"),
  });
  await p.round();
  fail = true;
  const r = await p.round();
  eq(order, ["file", "rules (in flight)", "onRound", "file", "rules (in flight)", "onRound"]);
  strictEqual(r.file!.ok, true);
});

Deno.test("prover: an inactive surface drops out of results and surfaces until it is active again", async () => {
  let active = false;
  const p = new EnforcementProver({
    surfaces: {
      file: () => Promise.resolve({ denied: true, detail: "EPERM" }),
      kernel: () =>
        Promise.resolve(active ? { denied: true, detail: "ptrace denied" } : "inactive" as const),
    },
    intervalSeconds: 30,
    now: () => 1000,
  });
  eq(p.surfaces, ["file", "kernel"], "before any round: all registered");
  let r = await p.round();
  eq(Object.keys(r), ["file"]);
  eq(p.surfaces, ["file"]);
  strictEqual(proofProblem(p.surfaces, r, 1000, 30), null, "nothing to prove is no failure");
  active = true;
  r = await p.round();
  eq(Object.keys(r).sort(), ["file", "kernel"]);
  eq(p.surfaces, ["file", "kernel"]);
  active = false;
  r = await p.round();
  eq(Object.keys(r), ["file"], "switched off again: its old result is gone");
});

Deno.test("prover: afterSurfacesOnly waits for a round in flight, runs no surface, and holds off ticks", async () => {
  const order: string[] = [];
  let release: () => void = () => {};
  const p = new EnforcementProver({
    surfaces: {
      file: async () => {
        order.push("file");
        await new Promise<void>((r) => release = r);
        return { denied: true, detail: "EPERM" };
      },
    },
    intervalSeconds: 30,
    now: () => 1000,
    afterSurfaces: () => {
      order.push("rules");
      return Promise.resolve();
    },
  });
  const round = p.round();
  const only = p.afterSurfacesOnly();
  await new Promise((r) => setTimeout(r, 5));
  eq(order, ["file"], "waits for the round in flight");
  release();
  await round;
  await only;
  eq(order, ["file", "rules", "rules"], "the round's own, then its own: no surface");
  strictEqual(p.running, false);
});
