/**
 * VM tier: the network surface (lsm/socket_connect, lsm/socket_bind,
 * lsm/socket_sendmsg), loopback only, with listeners this file creates.
 *
 * lsm-on cells, each rule as a round trip: allowed → rule added → EPERM
 *   and a net_block BLOCK record with the right fields → audit mode →
 *   allowed with an AUDIT record → rule removed → allowed, no record.
 *   Plus the generation guard: only the live generation's rules count, and
 *   the table bits: with NET_TABLES a table whose bit is clear is skipped.
 * lsm-off cells: the three programs load and attach, and deny nothing.
 */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { createSocket } from "node:dgram";
import {
  AEGIS_ACT_AUDIT,
  AEGIS_ACT_BLOCK,
  AEGIS_HOOK_SOCKET_BIND,
  AEGIS_HOOK_SOCKET_CONNECT,
  AEGIS_HOOK_SOCKET_SENDMSG,
  AEGIS_POL_NET_CIDR,
  AEGIS_POL_NET_IP,
  AEGIS_POL_NET_IP_PORT,
  AEGIS_POL_NET_PORT,
  AEGIS_POL_NET_RULES,
  AEGIS_POL_NET_TABLES,
  AEGIS_RT_CIDR,
  AEGIS_RT_IP,
  AEGIS_RT_IP_PORT,
  AEGIS_RT_PORT,
  AEGIS_RULE_DENY,
} from "../../src/bpf/abi_gen.ts";
import {
  cidrKey,
  ipKey,
  ipPortKey,
  type NetKey,
  parseCidr,
  parseIp,
  parseIpPort,
  parsePort,
  portKey,
} from "../../src/bpf/net_codec.ts";
import { ruleValue } from "../../src/bpf/rule_codec.ts";
import type { NetBlockRecord } from "../../src/events/decode.ts";
import { type Engine, loadEngine } from "../lib/engine.ts";

const LSM_ON = Deno.env.get("AEGIS_VM_LSM") === "on";
const PROGRAMS = ["aegis_socket_bind", "aegis_socket_connect", "aegis_socket_sendmsg"];
const SECTIONS = new Set(["lsm/socket_connect", "lsm/socket_bind", "lsm/socket_sendmsg"]);

/** The guest boots with `lo` down: bring it up (IFF_UP is bit 0 of flags). */
async function loopbackUp(): Promise<void> {
  const flags = Number(Deno.readTextFileSync("/sys/class/net/lo/flags").trim());
  if (flags & 1) return;
  const out = await new Deno.Command("ip", { args: ["link", "set", "lo", "up"] }).output();
  strictEqual(out.code, 0, new TextDecoder().decode(out.stderr));
}

/** "ok", "EPERM" (errno 1 exactly), or the error text. */
function outcome(e: unknown): string {
  if (e instanceof Error && /os error 1\)|EPERM|Operation not permitted/.test(e.message)) {
    return "EPERM";
  }
  return String(e);
}

async function tryConnect(hostname: string, port: number): Promise<string> {
  try {
    (await Deno.connect({ hostname, port })).close();
    return "ok";
  } catch (e) {
    return outcome(e);
  }
}

function tryListen(hostname: string, port: number): string {
  try {
    Deno.listen({ hostname, port }).close();
    return "ok";
  } catch (e) {
    return outcome(e);
  }
}

/**
 * One UDP datagram from an unconnected AF_INET socket (sendto) to
 * 127.0.0.1:port, through libc: node:dgram reports this EPERM as "UNKNOWN".
 */
function trySendTo(port: number): Promise<string> {
  const libc = Deno.dlopen("libc.so.6", {
    socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
    sendto: { parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"], result: "isize" },
    close: { parameters: ["i32"], result: "i32" },
    __errno_location: { parameters: [], result: "pointer" },
  });
  try {
    const fd = libc.symbols.socket(2, 2, 0); // AF_INET, SOCK_DGRAM
    ok(fd >= 0, "socket()");
    const sa = new Uint8Array(16);
    const dv = new DataView(sa.buffer);
    dv.setUint16(0, 2, true); // sin_family
    dv.setUint16(2, port, false); // sin_port, network order
    sa.set([127, 0, 0, 1], 4);
    const n = libc.symbols.sendto(fd, new Uint8Array([1, 2, 3]), 3n, 0, sa, 16);
    const errno = new Deno.UnsafePointerView(libc.symbols.__errno_location()!).getInt32();
    libc.symbols.close(fd);
    if (n === 3n) return Promise.resolve("ok");
    return Promise.resolve(errno === 1 ? "EPERM" : `sendto failed: errno ${errno}`);
  } finally {
    libc.close();
  }
}

function freePort(hostname: string): number {
  const l = Deno.listen({ hostname, port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

function netRecords(eng: Engine): NetBlockRecord[] {
  return eng.records().filter((r): r is NetBlockRecord => r.kind === "net_block");
}

interface Expect {
  family: number;
  addr: string;
  port: number;
  proto: number;
  hook: number;
  ruleType: number;
}

let nextRuleId = 100;

/** allowed → denied (BLOCK record) → audit (AUDIT record) → removed → allowed. */
async function roundTrip(
  eng: Engine,
  what: string,
  act: () => Promise<string>,
  rule: NetKey,
  want: Expect,
): Promise<void> {
  const ruleId = nextRuleId++;
  eng.records();
  strictEqual(await act(), "ok", `${what}: allowed before the rule`);
  deepStrictEqual(netRecords(eng), [], `${what}: no record before the rule`);
  eng.map(rule.map).update(rule.key, ruleValue(ruleId, AEGIS_RULE_DENY, want.ruleType));
  try {
    strictEqual(await act(), "EPERM", `${what}: denied with the rule`);
    const blocked = netRecords(eng);
    strictEqual(blocked.length, 1, `${what}: one record: ${JSON.stringify(blocked)}`);
    const r = blocked[0];
    deepStrictEqual(
      {
        family: r.family,
        addr: r.addr,
        port: r.port,
        proto: r.proto,
        hook: r.hook,
        ruleType: r.ruleType,
        ruleId: r.ruleId,
        action: r.action,
        pid: r.pid,
      },
      { ...want, ruleId, action: AEGIS_ACT_BLOCK, pid: Deno.pid },
      `${what}: block record`,
    );
    eng.setAudit(true);
    try {
      strictEqual(await act(), "ok", `${what}: allowed in audit mode`);
      const audited = netRecords(eng);
      strictEqual(audited.length, 1, `${what}: one audit record: ${JSON.stringify(audited)}`);
      strictEqual(audited[0].action, AEGIS_ACT_AUDIT, `${what}: audit record`);
      strictEqual(audited[0].ruleId, ruleId);
    } finally {
      eng.setAudit(false);
    }
  } finally {
    ok(eng.map(rule.map).delete(rule.key), `${what}: rule deleted`);
  }
  strictEqual(await act(), "ok", `${what}: allowed after the rule is removed`);
  deepStrictEqual(netRecords(eng), [], `${what}: no record after`);
}

function load(): Promise<Engine> {
  return loadEngine((section) => SECTIONS.has(section));
}

const V6_LOOP = "0:0:0:0:0:0:0:1";
const TCP = 6;
const UDP = 17;

Deno.test({
  name: "net: connect, bind and sendto are denied by ip, cidr, port and ip:port rules",
  ignore: !LSM_ON,
  fn: async (t) => {
    await loopbackUp();
    await using eng = await load();
    for (const p of PROGRAMS) {
      const a = eng.attach.find((r) => r.program === p);
      strictEqual(a?.status, "attached", `${p}: ${JSON.stringify(a)}`);
    }
    eng.setPolicy(AEGIS_POL_NET_RULES);
    using l4 = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    using l6 = Deno.listen({ hostname: "::1", port: 0 });
    const p4 = (l4.addr as Deno.NetAddr).port;
    const p6 = (l6.addr as Deno.NetAddr).port;
    const c4 = () => tryConnect("127.0.0.1", p4);
    const c6 = () => tryConnect("::1", p6);
    const v4 = { family: 2, addr: "127.0.0.1", port: p4, proto: TCP };
    const v6 = { family: 10, addr: V6_LOOP, port: p6, proto: TCP };
    const connect = AEGIS_HOOK_SOCKET_CONNECT;

    await t.step("v4 exact ip", () =>
      roundTrip(eng, "v4 ip", c4, ipKey(parseIp("127.0.0.1"), 0), {
        ...v4,
        hook: connect,
        ruleType: AEGIS_RT_IP,
      }));
    await t.step("v4 exact ip also covers ::ffff:127.0.0.1 on an AF_INET6 socket", () =>
      roundTrip(
        eng,
        "v4-mapped",
        () => tryConnect("::ffff:127.0.0.1", p4),
        ipKey(parseIp("127.0.0.1"), 0),
        {
          family: 10,
          addr: "0:0:0:0:0:ffff:7f00:1",
          port: p4,
          proto: TCP,
          hook: connect,
          ruleType: AEGIS_RT_IP,
        },
      ));
    await t.step("v6 exact ip", () =>
      roundTrip(eng, "v6 ip", c6, ipKey(parseIp("::1"), 0), {
        ...v6,
        hook: connect,
        ruleType: AEGIS_RT_IP,
      }));
    await t.step(
      "v4 cidr",
      () =>
        roundTrip(eng, "v4 cidr", c4, cidrKey(parseCidr("127.0.0.0/8"), 0), {
          ...v4,
          hook: connect,
          ruleType: AEGIS_RT_CIDR,
        }),
    );
    await t.step("v6 cidr", () =>
      roundTrip(eng, "v6 cidr", c6, cidrKey(parseCidr("::/120"), 0), {
        ...v6,
        hook: connect,
        ruleType: AEGIS_RT_CIDR,
      }));
    await t.step(
      "tcp port (egress)",
      () =>
        roundTrip(eng, "port", c4, portKey(parsePort(`${p4}:tcp`), 0), {
          ...v4,
          hook: connect,
          ruleType: AEGIS_RT_PORT,
        }),
    );
    await t.step(
      "ip:port",
      () =>
        roundTrip(eng, "ip:port", c6, ipPortKey(parseIpPort(`[::1]:${p6}:tcp`), 0), {
          ...v6,
          hook: connect,
          ruleType: AEGIS_RT_IP_PORT,
        }),
    );
    await t.step("bind denied by a port rule with dir bind", async () => {
      const bp = freePort("127.0.0.1");
      // an egress rule on that port does not stop bind
      const egress = portKey(parsePort(`${bp}:tcp`), 0);
      eng.map(egress.map).update(egress.key, ruleValue(1, AEGIS_RULE_DENY, AEGIS_RT_PORT));
      strictEqual(tryListen("127.0.0.1", bp), "ok", "egress port rule leaves bind alone");
      ok(eng.map(egress.map).delete(egress.key));
      await roundTrip(
        eng,
        "bind",
        () => Promise.resolve(tryListen("127.0.0.1", bp)),
        portKey(parsePort(`${bp}:tcp:bind`), 0),
        { ...v4, port: bp, hook: AEGIS_HOOK_SOCKET_BIND, ruleType: AEGIS_RT_PORT },
      );
    });
    await t.step("unconnected UDP sendto", async () => {
      const rx = createSocket("udp4");
      await new Promise<void>((res) => rx.bind(0, "127.0.0.1", () => res()));
      const up = rx.address().port;
      try {
        await roundTrip(
          eng,
          "sendto",
          () => trySendTo(up),
          ipPortKey(parseIpPort(`127.0.0.1:${up}:udp`), 0),
          {
            family: 2,
            addr: "127.0.0.1",
            port: up,
            proto: UDP,
            hook: AEGIS_HOOK_SOCKET_SENDMSG,
            ruleType: AEGIS_RT_IP_PORT,
          },
        );
      } finally {
        await new Promise<void>((res) => rx.close(() => res()));
      }
    });
  },
});

Deno.test({
  name: "net: only the live generation's rules count, and only with the policy switch on",
  ignore: !LSM_ON,
  fn: async () => {
    await loopbackUp();
    await using eng = await load();
    using l4 = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    using l6 = Deno.listen({ hostname: "::1", port: 0 });
    const c4 = () => tryConnect("127.0.0.1", (l4.addr as Deno.NetAddr).port);
    const c6 = () => tryConnect("::1", (l6.addr as Deno.NetAddr).port);
    const deny = ruleValue(7, AEGIS_RULE_DENY, AEGIS_RT_IP);
    const gen1 = ipKey(parseIp("127.0.0.1"), 1);
    const gen0 = ipKey(parseIp("::1"), 0);
    eng.setPolicy(AEGIS_POL_NET_RULES, 0);
    eng.setPolicy(AEGIS_POL_NET_RULES, 1);
    eng.map(gen1.map).update(gen1.key, deny);
    eng.map(gen0.map).update(gen0.key, deny);
    try {
      strictEqual(await c4(), "ok", "gen 1 rule ignored while gen 0 is live");
      strictEqual(await c6(), "EPERM", "gen 0 rule enforced while gen 0 is live");
      eng.setGeneration(1);
      strictEqual(await c4(), "EPERM", "gen 1 rule enforced once gen 1 is live");
      strictEqual(await c6(), "ok", "gen 0 rule ignored once gen 1 is live");
      eng.setPolicy(0, 1);
      strictEqual(await c4(), "ok", "no AEGIS_POL_NET_RULES: no lookup, allowed");
      deepStrictEqual(
        netRecords(eng).map((r) => [r.addr, r.action]),
        [[V6_LOOP, AEGIS_ACT_BLOCK], ["127.0.0.1", AEGIS_ACT_BLOCK]],
      );
    } finally {
      eng.setGeneration(0);
    }
  },
});

Deno.test({
  name:
    "net: with NET_TABLES a table whose bit is clear is not looked up; without it every table is",
  ignore: !LSM_ON,
  fn: async () => {
    await loopbackUp();
    await using eng = await load();
    using l4 = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (l4.addr as Deno.NetAddr).port;
    const c4 = () => tryConnect("127.0.0.1", port);
    const ALL = AEGIS_POL_NET_IP | AEGIS_POL_NET_CIDR | AEGIS_POL_NET_IP_PORT | AEGIS_POL_NET_PORT;
    const tables: [string, number, number, NetKey][] = [
      ["ip", AEGIS_POL_NET_IP, AEGIS_RT_IP, ipKey(parseIp("127.0.0.1"), 0)],
      ["cidr", AEGIS_POL_NET_CIDR, AEGIS_RT_CIDR, cidrKey(parseCidr("127.0.0.0/8"), 0)],
      [
        "ip_port",
        AEGIS_POL_NET_IP_PORT,
        AEGIS_RT_IP_PORT,
        ipPortKey(parseIpPort(`127.0.0.1:${port}:tcp`), 0),
      ],
      ["port", AEGIS_POL_NET_PORT, AEGIS_RT_PORT, portKey(parsePort(`${port}:any:both`), 0)],
    ];
    try {
      for (const [name, bit, rt, k] of tables) {
        eng.map(k.map).update(k.key, ruleValue(9, AEGIS_RULE_DENY, rt));
        try {
          eng.setPolicy(AEGIS_POL_NET_RULES);
          strictEqual(await c4(), "EPERM", `${name}: no NET_TABLES (older flags): looked up`);
          eng.setPolicy(AEGIS_POL_NET_RULES | AEGIS_POL_NET_TABLES | (ALL & ~bit));
          strictEqual(await c4(), "ok", `${name}: NET_TABLES without its bit: skipped`);
          eng.setPolicy(AEGIS_POL_NET_RULES | AEGIS_POL_NET_TABLES | bit);
          strictEqual(await c4(), "EPERM", `${name}: NET_TABLES with its bit: looked up`);
        } finally {
          eng.map(k.map).delete(k.key);
        }
      }
      eng.setPolicy(AEGIS_POL_NET_RULES | AEGIS_POL_NET_TABLES | ALL);
      strictEqual(await c4(), "ok", "no rule left: allowed");
    } finally {
      eng.setPolicy(0);
    }
  },
});

Deno.test({
  name: "net: without bpf in lsm= the programs load and attach but deny nothing",
  ignore: LSM_ON,
  fn: async () => {
    const lsms = Deno.readTextFileSync("/sys/kernel/security/lsm").trim().split(",");
    ok(!lsms.includes("bpf"), `bpf must not be active here: ${lsms}`);
    await loopbackUp();
    await using eng = await load();
    for (const p of PROGRAMS) {
      const a = eng.attach.find((r) => r.program === p);
      strictEqual(a?.status, "attached", `${p}: ${JSON.stringify(a)}`);
    }
    eng.setPolicy(AEGIS_POL_NET_RULES);
    using l4 = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const p4 = (l4.addr as Deno.NetAddr).port;
    for (const k of [ipKey(parseIp("127.0.0.1"), 0), portKey(parsePort(`${p4}:any:both`), 0)]) {
      eng.map(k.map).update(k.key, ruleValue(1, AEGIS_RULE_DENY, AEGIS_RT_IP));
    }
    strictEqual(await tryConnect("127.0.0.1", p4), "ok", "attached, listed, still allowed");
    strictEqual(await trySendTo(p4), "ok", "sendto still allowed");
    deepStrictEqual(netRecords(eng), [], "the hooks never ran");
  },
});
