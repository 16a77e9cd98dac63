import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { IpSyntaxError, isLoopbackAddr, parseIpAddr, tryParseIpAddr } from "./ip.ts";

Deno.test("parseIpAddr: v4, v6, a dotted tail; the errors say why", () => {
  deepStrictEqual([...parseIpAddr("10.1.2.3").bytes], [10, 1, 2, 3]);
  deepStrictEqual([...parseIpAddr("::ffff:1.2.3.4").bytes.subarray(10)], [255, 255, 1, 2, 3, 4]);
  strictEqual(parseIpAddr("2001:db8::1").bytes[15], 1);
  for (
    const [t, why] of [
      ["1.2.3", /4 dotted numbers/],
      ["01.2.3.4", /leading zero/],
      ["256.1.1.1", /above 255/],
      ["1::2::3", /only once/],
      ["fe80::1%eth0", /zone ids/],
      ["[::1]", /brackets/],
      ["", /empty/],
      ["1:2:3:4:5:6:7", /8 groups/],
      ["1:2:3:4::5:6:7:8", /at least one group/],
    ] as const
  ) {
    throws(
      () => parseIpAddr(t),
      (e: unknown) => e instanceof IpSyntaxError && why.test(e.message),
      t,
    );
  }
  throws(() => parseIpAddr("::1", 4), /IPv4 address is required/);
  strictEqual(tryParseIpAddr("constructor"), null);
  strictEqual(tryParseIpAddr("__proto__"), null);
});

Deno.test("isLoopbackAddr: 127/8, ::1 in any spelling, v4-mapped 127", () => {
  const lo = (t: string) => isLoopbackAddr(parseIpAddr(t));
  strictEqual(lo("127.0.0.1"), true);
  strictEqual(lo("127.255.1.2"), true);
  strictEqual(lo("128.0.0.1"), false);
  strictEqual(lo("::1"), true);
  strictEqual(lo("0:0:0:0:0:0:0:1"), true);
  strictEqual(lo("::ffff:127.0.0.1"), true);
  strictEqual(lo("::ffff:10.0.0.1"), false);
  strictEqual(lo("::2"), false);
  strictEqual(lo("1::1"), false);
});
