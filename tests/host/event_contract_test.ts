/**
 * Host tier (root, the real daemon on this kernel): the event lines the
 * agent writes are the contracts docs/telemetry.md promises.
 *  - `--event-format json` (the default): an exec, a would-be file block
 *    (audit), a would-be network block, state_change and the emergency
 *    control_change — every line parses with our zod schema (src/events/
 *    schema.ts, shipped as schemas/events.schema.json), carries the common
 *    fields (RFC 3339 ns timestamp close to the real time, unique event ids,
 *    host, agent version), u64s as JSON integers; and validates against the
 *    C++ agent's event-schema.json (../shared/reference/aegisbpf-cpp-schemas,
 *    `additionalProperties` relaxed, and only that), the deliberate
 *    differences (docs/telemetry.md, "Differences from the C++ agent")
 *    asserted as exactly what they are. Skipped, saying why, where shared/
 *    is absent.
 *  - `--event-format ocsf`: the same activity as OCSF events that parse with
 *    the OCSF subset's zod schema (src/events/ocsf.ts), in the classes of the
 *    mapping table.
 */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { OcsfEvent } from "../../src/events/ocsf.ts";
import { EventLine } from "../../src/events/schema.ts";
import { AGENT, Agent, agentEnv, cleanupAgent } from "../lib/agent.ts";
import { run } from "../lib/helpers.ts";
import { cppSchema, validate } from "../lib/json_schema.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

const RELAX = { additionalProperties: true };
const eventSchema = cppSchema("event-schema.json");
const SKIP = "SKIPPED: ../shared/reference/aegisbpf-cpp-schemas is not beside this checkout";
/** A loopback address no one listens on: a connect there is refused at once. */
const DENIED_IP = "127.0.0.77";

/** Start an audit agent with a deny_path and a deny_ip rule; cause each kind of event. */
async function withActivity(
  format: "json" | "ocsf",
  extraArgs: string[],
  check: (events: Json[], t: { denied: string; from: number; to: number }) => void,
): Promise<void> {
  const e = agentEnv();
  const denied = `${e.dir}/denied`;
  Deno.writeTextFileSync(denied, "secret\n");
  const pol = `${e.dir}/p.pol`;
  Deno.writeTextFileSync(pol, `version=1\n[deny_path]\n${denied}\n[deny_ip]\n${DENIED_IP}\n`);
  let a: Agent | null = null;
  const from = Date.now();
  try {
    a = new Agent(["--audit", "--policy", pol, "--event-format", format, ...extraArgs], e.env);
    await a.ready();
    const agent = a;
    Deno.readTextFileSync(denied); // audit: allowed, reported
    try {
      (await Deno.connect({ hostname: DENIED_IP, port: 9 })).close();
    } catch { /* refused: the attempt is what is reported */ }
    await new Deno.Command("/bin/true").output(); // an exec
    // an exec with arguments (one with a space, one not ASCII), and one longer than a record holds
    await new Deno.Command("/bin/echo", { args: ["argv-contract", "two words", "\u00ff"] })
      .output();
    await new Deno.Command("/bin/echo", { args: ["argv-long", "x".repeat(3000)] }).output();
    const d = await run(AGENT, ["emergency-disable", "--reason", "event contract test"], e.env);
    strictEqual(d.code, 0, d.stderr);
    const en = await run(AGENT, ["emergency-enable", "--reason", "done"], e.env);
    strictEqual(en.code, 0, en.stderr);
    const has = (pred: (ev: Json) => boolean) => agent.events().some(pred);
    const blockOf = format === "json"
      ? (ev: Json) => ev.type === "block" && ev.path === denied
      : (ev: Json) => ev.class_uid === 1001 && ev.file?.path === denied;
    const netOf = format === "json"
      ? (ev: Json) => ev.type === "net_connect_block" && ev.addr === DENIED_IP
      : (ev: Json) => ev.class_uid === 4001 && ev.dst_endpoint?.ip === DENIED_IP;
    const ctlOf = format === "json"
      ? (ev: Json) => ev.type === "control_change" && ev.action === "enable"
      : (ev: Json) => ev.unmapped?.type === "control_change" && ev.unmapped.action === "enable";
    await agent.waitFor(
      () => has(blockOf) && has(netOf) && has(ctlOf),
      "the block, network block and control_change events",
      30_000,
    );
    const to = Date.now();
    await agent.stop();
    check(agent.events(), { denied, from, to });
  } finally {
    await cleanupAgent(a, e);
  }
}

/** ns text of an RFC 3339 timestamp → ms (what Date can compare). */
const ms = (t: string) => Date.parse(`${t.slice(0, 23)}Z`);

Deno.test("events (json): common fields, exact integers, our schema; the C++ schema with the documented differences", async () => {
  await withActivity("json", [], (events, t) => {
    ok(events.length >= 5, `${events.length} events`);
    const ids = new Set<string>();
    const byType = new Map<string, Json[]>();
    for (const ev of events) {
      const r = EventLine.safeParse(ev);
      ok(r.success, `${ev.type}: ${JSON.stringify(r.error?.issues)}\n${JSON.stringify(ev)}`);
      ok(!ids.has(ev.event_id), `event_id ${ev.event_id} repeated`);
      ids.add(ev.event_id);
      strictEqual(ev.host, Deno.hostname());
      // the time of the event: between the agent's start and the end of the activity
      const at = ms(ev.timestamp);
      ok(at >= t.from - 1000 && at <= t.to + 1000, `${ev.type} at ${ev.timestamp}`);
      byType.set(ev.type, [...(byType.get(ev.type) ?? []), ev]);
    }
    // one agent, one id prefix
    strictEqual(new Set([...ids].map((i) => i.split("-")[0])).size, 1);
    const block = byType.get("block")!.find((ev) => ev.path === t.denied)!;
    strictEqual(block.action, "AUDIT");
    // the fallback tracepoint gives the kernel no path to resolve: the rule's path, said so
    // (LSM file_open resolves one: "kernel"; the VM tests run that hook)
    if (block.hook === "tp_openat") strictEqual(block.path_source, "rule");
    else ok(["kernel", "rule"].includes(block.path_source), block.path_source);
    strictEqual(typeof block.ino, "number");
    strictEqual(block.ino, Deno.statSync(t.denied).ino);
    strictEqual(typeof block.cgid, "number");
    strictEqual(typeof block.start_time, "number");
    strictEqual(block.exec_id, `${block.start_time}-${block.pid}`);
    strictEqual(block.parent_exec_id, `${block.parent_start_time}-${block.ppid}`);
    ok(block.parent_start_time <= block.start_time, "a parent starts before its child");
    const net = byType.get("net_connect_block")!.find((ev) => ev.addr === DENIED_IP)!;
    strictEqual(net.direction, "egress");
    strictEqual(net.remote_ip, DENIED_IP);
    strictEqual(net.remote_port, 9);
    const exec = (byType.get("exec") ?? []).find((ev) => ev.comm === "true");
    ok(exec, "the exec of /bin/true");
    ok(byType.has("state_change"), "the start's state_change");
    // exec_argv: after the exec of the same process, the arguments as given
    const argvs = byType.get("exec_argv") ?? [];
    const echo = argvs.find((ev) => ev.argv[1] === "argv-contract");
    ok(echo, `the exec_argv of /bin/echo argv-contract (${argvs.length} exec_argv events)`);
    deepStrictEqual(echo.argv, ["/bin/echo", "argv-contract", "two words", "\u00ff"]);
    strictEqual(echo.argc, 4);
    strictEqual(echo.argv_truncated, false);
    strictEqual(
      echo.argv_bytes,
      new TextEncoder().encode("/bin/echo\0argv-contract\0two words\0\u00ff\0").length,
    );
    const echoExec = byType.get("exec")!.find((ev) => ev.exec_id === echo.exec_id);
    ok(echoExec, "its exec event, same exec_id");
    ok(Number(echoExec.event_id.split("-")[1]) < Number(echo.event_id.split("-")[1]), "exec first");
    const long = argvs.find((ev) => ev.argv[1] === "argv-long");
    ok(long, "the exec_argv of the long command line");
    strictEqual(long.argv_truncated, true);
    strictEqual(long.argv_bytes, "/bin/echo argv-long ".length + 3001);
    strictEqual(long.argv.length, 3);
    strictEqual(
      long.argv[2],
      "x".repeat(1024 - "/bin/echo argv-long ".length),
      "cut at 1024 bytes",
    );
    const controls = byType.get("control_change")!;
    const emergency = controls.filter((ev) => ev.control === "emergency_disable");
    strictEqual(emergency.length, 2, "disable and enable");
    const applied = controls.filter((ev) => ev.control === "policy");
    strictEqual(applied.length, 1, "the --policy apply at start");

    if (eventSchema === null) {
      Deno.stderr.writeSync(new TextEncoder().encode(`  C++ event schema: ${SKIP}\n`));
      return;
    }
    const cppDef = (name: string) => ({ ...eventSchema.$defs[name], $defs: eventSchema.$defs });
    const DEF: Record<string, string> = {
      exec: "ExecEvent",
      block: "BlockEvent",
      net_connect_block: "NetBlockEvent",
      exec_argv: "ExecArgvEvent",
      state_change: "StateChangeEvent",
      control_change: "ControlChangeEvent",
    };
    for (
      const ev of [
        block,
        net,
        exec,
        echo,
        long,
        ...byType.get("state_change")!,
        ...emergency,
      ]
    ) {
      deepStrictEqual(validate(cppDef(DEF[ev.type]), ev, RELAX), [], ev.type);
      deepStrictEqual(validate(eventSchema, ev, RELAX), [], `${ev.type} (oneOf)`);
    }
    // the documented differences, as exactly what they are (docs/telemetry.md)
    deepStrictEqual(validate(cppDef("NetBlockEvent"), { ...net, rule_type: "cg_ip" }, RELAX), [
      '$.rule_type: "cg_ip" is not one of ["ip","cidr","port","ip_port","identity"]',
    ]);
    deepStrictEqual(
      validate(eventSchema, { ...byType.get("state_change")![0], state: "ENFORCE_SIGNAL" }, RELAX),
      ["$: matches 0 of the oneOf alternatives, not 1"],
      "ENFORCE_SIGNAL is a state of ours",
    );
    for (const own of ["kernel_ptrace_block", "self_test", "open", "policy_restored"]) {
      deepStrictEqual(validate(eventSchema, { ...block, type: own }, RELAX), [
        "$: matches 0 of the oneOf alternatives, not 1",
      ], `${own} is an event of ours`);
    }
    // control_change of a policy apply or a live rule: controls of ours
    // (the C++ contract has only emergency_disable, and that control's fields)
    const policyErrors = validate(cppDef("ControlChangeEvent"), applied[0], RELAX);
    ok(
      policyErrors.includes('$.control: "policy" is not one of ["emergency_disable"]'),
      policyErrors.join("; "),
    );
    const { path: _, ...noPath } = block;
    deepStrictEqual(validate(cppDef("BlockEvent"), { ...noPath, path_source: "none" }, RELAX), []);
    // what it catches: a u64 as a string (our format before)
    deepStrictEqual(validate(cppDef("BlockEvent"), { ...block, cgid: String(block.cgid) }, RELAX), [
      `$.cgid: "${block.cgid}" is not integer`,
    ]);
  });
});

Deno.test("events (ocsf): the same activity as OCSF 1.3 events of the mapped classes", async () => {
  await withActivity("ocsf", ["--exec-argv", "off"], (events, t) => {
    const classes = new Set<number>();
    for (const ev of events) {
      const r = OcsfEvent.safeParse(ev);
      ok(r.success, `${JSON.stringify(r.error?.issues)}\n${JSON.stringify(ev)}`);
      classes.add(ev.class_uid);
      strictEqual(ev.metadata.product.name, "aegisbpf");
      strictEqual(ev.device.hostname, Deno.hostname());
      ok(ev.time >= t.from - 1000 && ev.time <= t.to + 1000, `time ${ev.time}`);
      strictEqual(ev.time, ms(ev.time_dt));
    }
    deepStrictEqual([...classes].sort((a, b) => a - b), [0, 1001, 1007, 4001]);
    const file = events.find((ev) => ev.class_uid === 1001 && ev.file.path === t.denied);
    strictEqual(file.type_uid, 100114);
    strictEqual(file.action_id, 1, "audit: allowed");
    strictEqual(file.disposition_id, 15, "audit: detected");
    strictEqual(file.file.name, "denied");
    const net = events.find((ev) => ev.class_uid === 4001 && ev.dst_endpoint?.ip === DENIED_IP);
    strictEqual(net.type_uid, 400101);
    strictEqual(net.dst_endpoint.port, 9);
    ok(events.some((ev) => ev.class_uid === 1007 && ev.actor.process.name === "true"));
    ok(events.some((ev) => ev.class_uid === 0 && ev.unmapped.type === "state_change"));
    // --exec-argv off: no argv events at all
    ok(!events.some((ev) => ev.unmapped?.type === "exec_argv"), "--exec-argv off");
  });
});
