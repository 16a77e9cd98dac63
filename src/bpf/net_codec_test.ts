import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { UsageError } from "../errors.ts";
import {
  cidrKey,
  DIR_BIND,
  DIR_BOTH,
  DIR_EGRESS,
  dirName,
  ipKey,
  ipPortKey,
  parseCidr,
  parseIp,
  parseIpPort,
  parsePort,
  portKey,
  PROTO_ANY,
  PROTO_TCP,
  PROTO_UDP,
  protoName,
} from "./net_codec.ts";

const bytes = (...b: number[]) => new Uint8Array(b);

Deno.test("parseIp: IPv4 and IPv6 forms", () => {
  deepStrictEqual(parseIp("10.1.2.3"), { family: 4, bytes: bytes(10, 1, 2, 3) });
  deepStrictEqual(parseIp(" 0.0.0.0 "), { family: 4, bytes: bytes(0, 0, 0, 0) });
  deepStrictEqual(parseIp("255.255.255.255").bytes, bytes(255, 255, 255, 255));
  deepStrictEqual(parseIp("::").bytes, new Uint8Array(16));
  deepStrictEqual(parseIp("::1").bytes, bytes(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1));
  deepStrictEqual(
    parseIp("2001:DB8::a:1").bytes,
    bytes(0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0a, 0, 1),
  );
  deepStrictEqual(
    parseIp("1:2:3:4:5:6:7:8").bytes,
    bytes(0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8),
  );
  deepStrictEqual(
    parseIp("fe80::").bytes,
    bytes(0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
  );
  deepStrictEqual(parseIp("::ffff:1.2.3.4"), {
    family: 6,
    bytes: bytes(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1, 2, 3, 4),
  });
  deepStrictEqual(
    parseIp("0:0:0:0:0:ffff:10.0.0.1").bytes,
    bytes(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1),
  );
});

Deno.test("parseIp: bad input names the value and the reason", () => {
  const cases: [string, RegExp, (4 | 6)?][] = [
    ["", /empty address/],
    ["garbage", /4 dotted numbers/],
    ["1.2.3", /4 dotted numbers/],
    ["1.2.3.4.5", /4 dotted numbers/],
    ["1.2.3.256", /256 is above 255/],
    ["1.2.3.-1", /"-1" is not a number/],
    ["01.2.3.4", /leading zero/],
    ["1.2.3.x", /"x" is not a number/],
    ["1::2::3", /"::" may appear only once/],
    ["1:2:3:4:5:6:7", /8 groups/],
    ["1:2:3:4:5:6:7:8:9", /8 groups/],
    ["1:2:3:4::5:6:7:8", /at least one group/],
    ["12345::", /"12345" is not a group/],
    ["g::1", /"g" is not a group/],
    [":1::", /"" is not a group/],
    ["1.2.3.4::", /"1.2.3.4" is not a group/],
    ["fe80::1%eth0", /zone ids/],
    ["[::1]", /brackets/],
    ["::1", /IPv4 address is required/, 4],
    ["1.2.3.4", /IPv6 address is required/, 6],
  ];
  for (const [text, why, family] of cases) {
    throws(() => parseIp(text, family), (e: unknown) => {
      strictEqual(e instanceof UsageError, true, `${text}: ${e}`);
      const m = (e as Error).message;
      strictEqual(m.startsWith(`Invalid IP address "${text}": `), true, m);
      strictEqual(why.test(m), true, `${text}: ${m}`);
      return true;
    });
  }
});

Deno.test("parseCidr: masks host bits and reports it", () => {
  deepStrictEqual(parseCidr("10.0.0.0/8"), {
    family: 4,
    bytes: bytes(10, 0, 0, 0),
    prefix: 8,
    hostBitsCleared: false,
  });
  deepStrictEqual(parseCidr("10.1.2.3/8"), {
    family: 4,
    bytes: bytes(10, 0, 0, 0),
    prefix: 8,
    hostBitsCleared: true,
  });
  deepStrictEqual(parseCidr("192.168.255.255/17").bytes, bytes(192, 168, 128, 0));
  deepStrictEqual(parseCidr("1.2.3.4/32").bytes, bytes(1, 2, 3, 4));
  deepStrictEqual(parseCidr("1.2.3.4/0").bytes, bytes(0, 0, 0, 0));
  const v6 = parseCidr("2001:db8:ffff::/33");
  deepStrictEqual(v6.bytes, bytes(0x20, 1, 0x0d, 0xb8, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0));
  strictEqual(v6.hostBitsCleared, true);
  strictEqual(v6.prefix, 33);
  strictEqual(parseCidr("::1/128").hostBitsCleared, false);
});

Deno.test("parseCidr: bad input", () => {
  const cases: [string, RegExp, (4 | 6)?][] = [
    ["10.0.0.0", /no "\/<prefix length>"/],
    ["10.0.0.0/33", /"33" must be a number from 0 to 32/],
    ["::/129", /"129" must be a number from 0 to 128/],
    ["10.0.0.0/", /"" must be a number/],
    ["10.0.0.0/-1", /"-1" must be a number/],
    ["10.0.0.0/8/8", /"8\/8" must be a number/],
    ["300.0.0.0/8", /300 is above 255/],
    ["2001:db8::/32", /IPv4 address is required/, 4],
  ];
  for (const [text, why, family] of cases) {
    throws(() => parseCidr(text, family), (e: unknown) => {
      const m = (e as Error).message;
      strictEqual(e instanceof UsageError, true, m);
      strictEqual(m.startsWith(`Invalid CIDR "${text}": `), true, m);
      strictEqual(why.test(m), true, `${text}: ${m}`);
      return true;
    });
  }
});

Deno.test("parsePort: defaults any/egress; every proto and direction", () => {
  deepStrictEqual(parsePort("443"), { port: 443, proto: PROTO_ANY, dir: DIR_EGRESS });
  deepStrictEqual(parsePort("443:tcp"), { port: 443, proto: PROTO_TCP, dir: DIR_EGRESS });
  deepStrictEqual(parsePort("53:UDP:egress"), { port: 53, proto: PROTO_UDP, dir: DIR_EGRESS });
  deepStrictEqual(parsePort("8080:any:bind"), { port: 8080, proto: PROTO_ANY, dir: DIR_BIND });
  deepStrictEqual(parsePort("1:tcp:both"), { port: 1, proto: PROTO_TCP, dir: DIR_BOTH });
  deepStrictEqual(parsePort("65535").port, 65535);
});

Deno.test("parsePort: bad input", () => {
  const cases: [string, RegExp][] = [
    ["0", /port 0 is not from 1 to 65535/],
    ["70000", /port 70000 is not from 1 to 65535/],
    ["", /port "" is not a number/],
    ["https", /port "https" is not a number/],
    ["-1", /port "-1" is not a number/],
    ["443:sctp", /protocol "sctp" is not tcp, udp or any/],
    ["443:tcp:in", /direction "in" is not egress, bind or both/],
    ["443:tcp:bind:x", /expected port\[:tcp\|udp\|any/],
  ];
  for (const [text, why] of cases) {
    throws(() => parsePort(text), (e: unknown) => {
      const m = (e as Error).message;
      strictEqual(e instanceof UsageError, true, m);
      strictEqual(m.startsWith(`Invalid port "${text}": `), true, m);
      strictEqual(why.test(m), true, `${text}: ${m}`);
      return true;
    });
  }
});

Deno.test("parseIpPort: v4 and bracketed v6", () => {
  deepStrictEqual(parseIpPort("1.2.3.4:443"), {
    ip: { family: 4, bytes: bytes(1, 2, 3, 4) },
    port: 443,
    proto: PROTO_ANY,
  });
  deepStrictEqual(parseIpPort("1.2.3.4:443:tcp").proto, PROTO_TCP);
  const v6 = parseIpPort("[2001:db8::1]:53:udp");
  deepStrictEqual(v6.ip.bytes, bytes(0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1));
  strictEqual(v6.port, 53);
  strictEqual(v6.proto, PROTO_UDP);
});

Deno.test("parseIpPort: bad input", () => {
  const cases: [string, RegExp][] = [
    ["1.2.3.4", /expected <ip>:<port>/],
    ["1.2.3.4:0", /port 0 is not from 1 to 65535/],
    ["1.2.3.4:70000", /port 70000/],
    ["1.2.3.4:443:icmp", /protocol "icmp"/],
    ["1.2.3.4:443:tcp:bind", /expected <ip>:<port>/],
    ["2001:db8::1:443", /write IPv6 addresses in brackets/],
    ["[2001:db8::1:443", /no closing "]"/],
    ["[1.2.3.4]:443", /brackets are for IPv6/],
    ["[::1]443", /expected ":<port>" after "]"/],
    ["[::1]:443:tcp:x", /expected <ip>:<port>/],
    ["999.1.1.1:80", /999 is above 255/],
  ];
  for (const [text, why] of cases) {
    throws(() => parseIpPort(text), (e: unknown) => {
      const m = (e as Error).message;
      strictEqual(e instanceof UsageError, true, m);
      strictEqual(m.startsWith(`Invalid ip:port "${text}": `), true, m);
      strictEqual(why.test(m), true, `${text}: ${m}`);
      return true;
    });
  }
});

Deno.test("ipKey: golden bytes (gen LE, address in network order)", () => {
  deepStrictEqual(ipKey(parseIp("10.1.2.3"), 1), {
    map: "aegis_deny_ip4",
    key: bytes(1, 0, 0, 0, 10, 1, 2, 3),
  });
  deepStrictEqual(ipKey(parseIp("::1"), 0), {
    map: "aegis_deny_ip6",
    key: bytes(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1),
  });
});

Deno.test("cidrKey: golden bytes (prefixlen = 32 + prefix, LE)", () => {
  deepStrictEqual(cidrKey(parseCidr("10.0.0.0/8"), 0), {
    map: "aegis_deny_cidr4",
    key: bytes(40, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0),
  });
  deepStrictEqual(cidrKey(parseCidr("2001:db8::/32"), 1), {
    map: "aegis_deny_cidr6",
    key: bytes(
      64,
      0,
      0,
      0,
      1,
      0,
      0,
      0,
      0x20,
      1,
      0x0d,
      0xb8,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
    ),
  });
  strictEqual(cidrKey(parseCidr("::/0"), 0).key[0], 32);
  strictEqual(cidrKey(parseCidr("::1/128"), 0).key[0], 160);
});

Deno.test("portKey: golden bytes (port host order LE, proto, dir)", () => {
  deepStrictEqual(portKey(parsePort("443:tcp:bind"), 1), {
    map: "aegis_deny_port",
    key: bytes(1, 0, 0, 0, 0xbb, 0x01, 6, 1),
  });
  deepStrictEqual(portKey(parsePort("53:udp:both"), 0).key, bytes(0, 0, 0, 0, 53, 0, 17, 2));
  deepStrictEqual(portKey(parsePort("65535"), 0).key, bytes(0, 0, 0, 0, 0xff, 0xff, 0, 0));
});

Deno.test("ipPortKey: golden bytes, padding zero", () => {
  deepStrictEqual(ipPortKey(parseIpPort("1.2.3.4:443:tcp"), 1), {
    map: "aegis_deny_ip4_port",
    key: bytes(1, 0, 0, 0, 1, 2, 3, 4, 0xbb, 0x01, 6, 0),
  });
  deepStrictEqual(ipPortKey(parseIpPort("[::1]:8080:udp"), 0), {
    map: "aegis_deny_ip6_port",
    key: bytes(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x90, 0x1f, 17, 0),
  });
});

Deno.test("net rules: Object.prototype names are not protocols or directions", () => {
  for (const word of ["constructor", "__proto__", "toString", "hasOwnProperty", "valueOf"]) {
    throws(() => parsePort(`443:${word}`), UsageError, word);
    throws(() => parsePort(`443:tcp:${word}`), UsageError, word);
    throws(() => parseIpPort(`10.0.0.1:443:${word}`), UsageError, word);
  }
  strictEqual(protoName(6), "tcp");
  strictEqual(dirName(2), "both");
});
