import { deepStrictEqual, throws } from "node:assert/strict";
import { parseDuration } from "./duration.ts";

const YEAR = 366 * 86400;

Deno.test("parseDuration: units, bare seconds, bounds, the flag in the message", () => {
  deepStrictEqual(
    ["30s", "10m", "2h", "1d", "45", " 30d "].map((t) => parseDuration(t, YEAR)),
    [30, 600, 7200, 86400, 45, 30 * 86400],
  );
  for (const bad of ["", "0", "1w", "-5s", "1.5h", "400d", "1e3", "0x10", "30 d"]) {
    throws(() => parseDuration(bad, YEAR), /Invalid duration/, bad);
  }
  throws(() => parseDuration("2d", 86400, "--expires-in"), /--expires-in "2d": .*1 days/);
  throws(() => parseDuration("61", 60, "--x"), /from 1 second to 60 s/);
});
