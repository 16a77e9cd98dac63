import { deepStrictEqual, throws } from "node:assert/strict";
import { canaryOptions } from "./policy_canary.ts";

Deno.test("policy apply --canary options: durations, thresholds, and what is refused (naming the option)", () => {
  deepStrictEqual(canaryOptions("30s"), { windowSeconds: 30, thresholdPerS: 1 });
  deepStrictEqual(canaryOptions("5m", "0.5"), { windowSeconds: 300, thresholdPerS: 0.5 });
  deepStrictEqual(canaryOptions("1h", "0"), { windowSeconds: 3600, thresholdPerS: 0 });
  const bad: [string | undefined, string | undefined, RegExp][] = [
    [undefined, "2", /--canary-threshold goes with --canary/],
    ["2h", undefined, /--canary "2h": from 1 second to 3600 s/],
    ["0", undefined, /--canary "0"/],
    ["1.5m", undefined, /--canary "1.5m"/],
    ["__proto__", undefined, /--canary "__proto__"/],
    ["10s", "-1", /--canary-threshold "-1"/],
    ["10s", "1e3", /--canary-threshold "1e3"/],
    ["10s", "NaN", /--canary-threshold "NaN"/],
    ["10s", "99999999999999999999", /--canary-threshold/],
    ["10s", "constructor", /--canary-threshold "constructor"/],
  ];
  for (const [w, t, re] of bad) throws(() => canaryOptions(w, t), re, `${w} ${t}`);
});
