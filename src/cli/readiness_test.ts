import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { readinessAnswer, readinessFlags } from "./readiness.ts";

Deno.test("readinessFlags: health with --json and/or --require-enforce, in any order", () => {
  deepStrictEqual(readinessFlags(["health"]), { json: false, requireEnforce: false });
  deepStrictEqual(readinessFlags(["health", "--json"]), { json: true, requireEnforce: false });
  deepStrictEqual(readinessFlags(["health", "--require-enforce", "--json"]), {
    json: true,
    requireEnforce: true,
  });
});

Deno.test("readinessFlags: anything else is the full CLI's", () => {
  for (
    const argv of [
      [],
      ["doctor"],
      ["--log-level", "debug", "health"],
      ["health", "--json", "--json"],
      ["health", "--help"],
      ["health", "--json=1"],
      ["health", "-j"],
      ["health", "constructor"],
      ["health", "__proto__"],
      ["Health"],
    ]
  ) {
    strictEqual(readinessFlags(argv), null, JSON.stringify(argv));
  }
});

Deno.test("readinessAnswer: no daemon on the control socket → null (the full CLI probes locally)", async () => {
  const dir = await Deno.makeTempDir();
  const prev = Deno.env.get("AEGIS_CONTROL_SOCKET");
  Deno.env.set("AEGIS_CONTROL_SOCKET", `${dir}/none.sock`);
  try {
    strictEqual(await readinessAnswer(["health", "--json"]), null);
  } finally {
    if (prev === undefined) Deno.env.delete("AEGIS_CONTROL_SOCKET");
    else Deno.env.set("AEGIS_CONTROL_SOCKET", prev);
    await Deno.remove(dir, { recursive: true });
  }
});
