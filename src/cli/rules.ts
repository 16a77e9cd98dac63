/**
 * Live rule edits: `block`, `allow`, `network deny` and `cgroup deny`, each
 * with `add`, `del`, `list` and `clear` (every live rule of the family). An added rule takes effect at once in the live
 * generation and stays until deleted, until its `--ttl` runs out, or until
 * `policy apply --reset` (a normal `policy apply` carries it over).
 *
 * While the daemon runs every edit goes through its control socket
 * (/rules), so daemon and CLI never disagree about the maps; without a
 * daemon the CLI writes the pinned maps itself. Either way the expired TTL
 * rules are swept (removed and printed) first: the daemon also sweeps
 * every second, without it each rule command does.
 *
 * @module
 */
import { type Command, Option } from "@commander-js/extra-typings";
import { AegisError, UsageError } from "../errors.ts";
import { hostCompileEnv } from "../policy/host_env.ts";
import { out, outJson } from "../log.ts";
import {
  describeRule,
  type ExpiryChange,
  type ListedRule,
  type LiveAddResult,
  type LiveRule,
  type LiveRuleRequest,
  LiveRules,
  MAX_TTL_SECONDS,
  type RuleGroup,
} from "../policy/live.ts";
import type { RulesClearJson } from "./json_output.ts";
import { parseDuration } from "../util/duration.ts";
import type { RuleVerification } from "../proof/verify.ts";
import { daemonOrLocal } from "./daemon_or_local.ts";
import { EXIT_UNENFORCED, openLocal, printExpired, printVerification, stateDir } from "./policy.ts";

function appliedPolicyText(): string {
  try {
    return Deno.readTextFileSync(`${stateDir()}/policy.applied`);
  } catch {
    return "";
  }
}

/**
 * Bad input is a usage error before anything is asked or opened, with or
 * without a daemon (which checks again). File rules are left to the daemon
 * or the local open: how a path resolves depends on the pinned programs.
 */
function checkRequest(req: LiveRuleRequest): void {
  if (req.kind === "path") return;
  const env = hostCompileEnv();
  new LiveRules({
    maps: () => {
      throw new AegisError("INTERNAL", "a rule check reads no map");
    },
    storePath: `${stateDir()}/live_rules.json`,
    resolvePath: env.resolvePath,
    resolveCgroup: env.resolveCgroup,
  }).resolve(req);
}

async function addRule(req: LiveRuleRequest, ttl: string | undefined, json?: true): Promise<void> {
  const ttlSeconds = ttl === undefined ? null : parseDuration(ttl, MAX_TTL_SECONDS, "--ttl");
  checkRequest(req);
  const { value: r } = await daemonOrLocal<
    Partial<Pick<LiveAddResult, "previous_expires" | "expiry">> & {
      rule: LiveRule;
      renewed: boolean;
      expired: LiveRule[];
      verification?: RuleVerification | null;
    }
  >("POST", "/rules", { rule: req, ttl_seconds: ttlSeconds }, async () => {
    using local = await openLocal();
    const expired = local.live.sweep();
    return { ...local.live.add(req, ttlSeconds), expired };
  });
  if (json) {
    if (r.rule.spec.kind === "path" && (r.verification?.unenforced.length ?? 0) > 0) {
      Deno.exitCode = EXIT_UNENFORCED;
    }
    return outJson(r);
  }
  printExpired(r.expired);
  out(
    `${r.renewed ? "renewed" : "added"} live rule ${r.rule.id}: ${describeRule(r.rule.spec)}` +
      (r.expiry === undefined
        // a daemon older than this CLI: it does not say what the expiry was
        ? (ttlSeconds === null ? " (no TTL: until deleted)" : ` (expires in ${ttlSeconds} s)`)
        : addedExpiry(r.expiry, r.previous_expires ?? null, ttlSeconds)),
  );
  // a file rule is proven before the daemon replies; network and cgroup rules are not verified
  if (r.rule.spec.kind === "path") printVerification(r.verification);
}

/**
 * What an add did to the rule's expiry, in words: a renewal replaces the
 * expiry, and says so when that drops or sets a TTL.
 */
export function addedExpiry(
  change: ExpiryChange,
  previousExpires: number | null,
  ttlSeconds: number | null,
  now = Date.now(),
): string {
  const left = previousExpires === null
    ? ""
    : `${Math.max(0, Math.ceil((previousExpires - now) / 1000))} s`;
  switch (change) {
    case "new":
      return ttlSeconds === null ? " (no TTL: until deleted)" : ` (expires in ${ttlSeconds} s)`;
    case "unchanged":
      return " (no TTL, as before: until deleted)";
    case "set":
      return ` (it had no TTL; now it expires in ${ttlSeconds} s)`;
    case "removed":
      return ` (its TTL, ${left} left, is removed: the rule now stays until deleted; ` +
        `add it with --ttl to keep an expiry)`;
    case "extended":
    case "shortened":
      return ` (expires in ${ttlSeconds} s; it had ${left} left)`;
  }
}

async function delRule(req: LiveRuleRequest, json?: true): Promise<void> {
  const { value: r } = await daemonOrLocal<{ rule: LiveRule; expired: LiveRule[] }>(
    "DELETE",
    "/rules",
    { rule: req },
    async () => {
      using local = await openLocal();
      const expired = local.live.sweep();
      return { rule: local.live.del(req), expired };
    },
  );
  if (json) return outJson(r);
  printExpired(r.expired);
  out(`deleted live rule ${r.rule.id}: ${describeRule(r.rule.spec)}`);
}

async function listRules(group: RuleGroup, json?: true): Promise<void> {
  const { value: r } = await daemonOrLocal<{ rules: ListedRule[]; expired: LiveRule[] }>(
    "GET",
    `/rules?group=${group}`,
    undefined,
    async () => {
      using local = await openLocal();
      const expired = local.live.sweep();
      return { rules: local.live.list(group, appliedPolicyText()), expired };
    },
  );
  if (json) return outJson(r);
  printExpired(r.expired);
  if (r.rules.length === 0) return out(`no ${GROUP_WORDS[group]} rules`);
  out("ORIGIN  ID          TTL     RULE");
  for (const x of r.rules) {
    const ttl = x.ttl_remaining_s === null ? "-" : `${x.ttl_remaining_s}s`;
    out(`${x.origin.padEnd(7)} ${String(x.id).padEnd(11)} ${ttl.padEnd(7)} ${x.rule}`);
  }
}

/** What each family's messages call its rules. */
const GROUP_WORDS: Record<RuleGroup, string> = {
  block: "block",
  allow: "allow",
  network: "network deny",
  cgroup_deny: "cgroup deny",
};

/**
 * Delete every live rule of a family (`block clear`, …). The policy's
 * rules stay: they change with `policy apply`.
 */
async function clearRules(group: RuleGroup, json?: true): Promise<void> {
  const { value: r, via } = await daemonOrLocal<{ rules: LiveRule[]; expired: LiveRule[] }>(
    "POST",
    "/rules/clear",
    { group },
    async () => {
      using local = await openLocal();
      const expired = local.live.sweep();
      return { rules: local.live.delGroup(group), expired };
    },
  );
  if (json) {
    const o: RulesClearJson = { ok: true, group, via, deleted: r.rules, expired: r.expired };
    return outJson(o);
  }
  printExpired(r.expired);
  for (const x of r.rules) out(`deleted live rule ${x.id}: ${describeRule(x.spec)}`);
  out(
    `${r.rules.length} live ${GROUP_WORDS[group]} rule(s) deleted; the policy's rules stay ` +
      `(they change with "policy apply")`,
  );
}

const TTL_HELP = "remove the rule after this long (30s, 10m, 2h, 1d; bare number: seconds)";

/** One network rule from the options (exactly one of --ip, --cidr, --port, --ip-port). */
function networkRequest(o: {
  ip?: string;
  cidr?: string;
  port?: string;
  ipPort?: string;
  protocol?: string;
  direction?: string;
}): LiveRuleRequest {
  const given = [o.ip, o.cidr, o.port, o.ipPort].filter((v) => v !== undefined).length;
  if (given !== 1) {
    throw new UsageError("give exactly one of --ip, --cidr, --port, --ip-port");
  }
  if (o.direction !== undefined && o.port === undefined) {
    throw new UsageError("--direction applies to --port rules only");
  }
  if (o.protocol !== undefined && o.port === undefined && o.ipPort === undefined) {
    throw new UsageError("--protocol applies to --port and --ip-port rules only");
  }
  const proto = o.protocol as "tcp" | "udp" | "any" | undefined;
  if (o.ip !== undefined) return { kind: "ip", ip: o.ip };
  if (o.cidr !== undefined) return { kind: "cidr", cidr: o.cidr };
  if (o.ipPort !== undefined) return { kind: "ip_port", ip_port: o.ipPort, protocol: proto };
  return {
    kind: "port",
    port: portNumber(o.port!),
    protocol: proto ?? "any",
    direction: (o.direction ?? "egress") as "egress" | "bind" | "both",
  };
}

/** One cgroup-scoped rule from the options (exactly one of --inode, --ip, --port). */
export function cgroupDenyRequest(o: {
  cgroup: string;
  inode?: string;
  ip?: string;
  port?: string;
  protocol?: string;
  direction?: string;
}): LiveRuleRequest {
  const given = [o.inode, o.ip, o.port].filter((v) => v !== undefined).length;
  if (given !== 1) throw new UsageError("give exactly one of --inode, --ip, --port");
  if ((o.protocol !== undefined || o.direction !== undefined) && o.port === undefined) {
    throw new UsageError("--protocol and --direction apply to --port rules only");
  }
  if (o.inode !== undefined) return { kind: "cg_inode", cgroup: o.cgroup, inode: o.inode };
  if (o.ip !== undefined) return { kind: "cg_ip", cgroup: o.cgroup, ip: o.ip };
  return {
    kind: "cg_port",
    cgroup: o.cgroup,
    port: portNumber(o.port!),
    protocol: (o.protocol ?? "any") as "tcp" | "udp" | "any",
    direction: (o.direction ?? "egress") as "egress" | "bind" | "both",
  };
}

/** A --port value: 1 to 65535, digits only. */
function portNumber(text: string): number {
  const port = Number(text);
  if (!/^\d{1,5}$/.test(text) || port < 1 || port > 65535) {
    throw new UsageError(`Invalid port "${text}": a number from 1 to 65535`);
  }
  return port;
}

/** `block`, `allow`, `network deny`, `cgroup deny`. */
export function addRuleCommands(program: Command): void {
  const block = program.command("block")
    .description("deny opening and executing a file now, without a policy file");
  block.command("add").argument("<path>", "an existing file (denied by inode)")
    .description("deny a file (live rule; a later policy apply keeps it, --reset drops it)")
    .option("--ttl <duration>", TTL_HELP).option("--json", "machine-readable output")
    .action((path, o) => addRule({ kind: "path", path }, o.ttl, o.json));
  block.command("del").argument("<path>").description("remove a live block rule")
    .option("--json", "machine-readable output")
    .action((path, o) => delRule({ kind: "path", path }, o.json));
  block.command("list").description("file rules: from the policy and live, with TTLs")
    .option("--json", "machine-readable output").action((o) => listRules("block", o.json));
  block.command("clear").description("delete every live block rule (the policy's rules stay)")
    .option("--json", "machine-readable output").action((o) => clearRules("block", o.json));

  const allow = program.command("allow")
    .description("let a cgroup's processes skip the global deny rules");
  allow.command("add").argument("<cgroup>", "cgroup v2 path (/system.slice/x.service) or cgid:N")
    .description("allow a cgroup (live rule)")
    .option("--ttl <duration>", TTL_HELP).option("--json", "machine-readable output")
    .action((cgroup, o) => addRule({ kind: "cgroup", cgroup }, o.ttl, o.json));
  allow.command("del").argument("<cgroup>").description("remove a live allow rule")
    .option("--json", "machine-readable output")
    .action((cgroup, o) => delRule({ kind: "cgroup", cgroup }, o.json));
  allow.command("list").description("allowed cgroups: from the policy and live")
    .option("--json", "machine-readable output").action((o) => listRules("allow", o.json));
  allow.command("clear").description("delete every live allow rule (the policy's rules stay)")
    .option("--json", "machine-readable output").action((o) => clearRules("allow", o.json));

  const network = program.command("network").description("network rules and counters");
  network.command("stats")
    .description("network blocks: by hook (kernel counters) and by rule type")
    .option("--json", "machine-readable output")
    .action(async (o) => (await import("./stats.ts")).networkStats(o.json));
  const deny = network.command("deny").description(
    "deny connections by address, network, port or address:port",
  );
  const netOpts = <T extends Command<[], Record<string, unknown>>>(c: T) =>
    c.option("--ip <ip>", "an exact IPv4 or IPv6 address")
      .option("--cidr <cidr>", "a network, e.g. 10.0.0.0/8 (host bits must be clear)")
      .option("--port <n>", "a port (1-65535)")
      .addOption(protocolOption("for --port/--ip-port"))
      .addOption(directionOption())
      .option("--ip-port <ip:port>", "1.2.3.4:443 or [2001:db8::1]:443")
      .option("--json", "machine-readable output");
  familyCommands(deny, "network", netOpts, networkRequest);

  const cgDeny = program.command("cgroup").description("cgroup-scoped rules")
    .command("deny")
    .description("deny a file, address or port to one cgroup's processes only (live rules)")
    .addHelpText(
      "after",
      `
The live form of the policy's cgroup_deny_inode, cgroup_deny_ip and
cgroup_deny_port sections (docs/policy.md). A rule applies to the processes
of that cgroup itself, not of its children, and allow_cgroup does not waive it.
  aegisbpf cgroup deny add --cgroup /system.slice/web.service --port 22 --direction bind
  aegisbpf cgroup deny add --cgroup cgid:4242 --ip 10.0.0.5 --ttl 1h
  aegisbpf cgroup deny add --cgroup /app.slice --inode 8388609:1234`,
    );
  const cgOpts = <T extends Command<[], Record<string, unknown>>>(c: T) =>
    c.requiredOption("--cgroup <cgroup>", "cgroup v2 path (/system.slice/x.service) or cgid:N")
      .option("--inode <dev:ino>", "a file by dev:ino or major:minor:ino (as in the policy)")
      .option("--ip <ip>", "an exact IPv4 or IPv6 address")
      .option("--port <n>", "a port (1-65535)")
      .addOption(protocolOption("for --port"))
      .addOption(directionOption())
      .option("--json", "machine-readable output");
  familyCommands(
    cgDeny,
    "cgroup_deny",
    cgOpts,
    (o) => cgroupDenyRequest(o as { cgroup: string }),
  );
}

/**
 * `add`, `del`, `list` and `clear` of a family whose rules are given by
 * options (`withOpts` adds them; `toRequest` reads them).
 */
function familyCommands(
  parent: Command,
  group: RuleGroup,
  // deno-lint-ignore no-explicit-any
  withOpts: (c: any) => Command,
  toRequest: (o: Record<string, unknown>) => LiveRuleRequest,
): void {
  const word = GROUP_WORDS[group];
  withOpts(parent.command("add").description(`add a live ${word} rule`))
    .option("--ttl <duration>", TTL_HELP)
    .action((o) => {
      const opts = o as Record<string, unknown> & { ttl?: string; json?: true };
      return addRule(toRequest(opts), opts.ttl, opts.json);
    });
  withOpts(parent.command("del").description(`remove a live ${word} rule`))
    .action((o) => {
      const opts = o as Record<string, unknown> & { json?: true };
      return delRule(toRequest(opts), opts.json);
    });
  parent.command("list").description(`${word} rules: from the policy and live, with TTLs`)
    .option("--json", "machine-readable output").action((o) => listRules(group, o.json));
  parent.command("clear").description(`delete every live ${word} rule (the policy's rules stay)`)
    .option("--json", "machine-readable output").action((o) => clearRules(group, o.json));
}

function protocolOption(help: string) {
  return new Option("--protocol <p>", help).choices(["tcp", "udp", "any"]);
}

function directionOption() {
  return new Option("--direction <d>", "for --port: egress (connect/send), bind or both")
    .choices(["egress", "bind", "both"]);
}
