/**
 * Tier 1 (artifacts): the CLI conventions (docs/cli.md) through the
 * development launcher, as an operator's scripts see them: `--json` output
 * and failures, exit codes, `--log-level`/`--log-format`, completion scripts
 * run by the shells themselves. No root and no agent needed.
 */
import { deepStrictEqual, match, ok, strictEqual } from "node:assert/strict";
import type { z } from "zod";
import {
  JsonFailure,
  KeyAddJson,
  KeygenJson,
  PolicyExportJson,
  PolicyIssuesDetails,
  PolicyLintJson,
  PolicySignJson,
  PolicyValidateJson,
  PolicyVerifyJson,
} from "../../src/cli/json_output.ts";
import { LAUNCHER, run } from "../lib/helpers.ts";

const ROOT = new URL("../..", import.meta.url).pathname;

/** One JSON object on stdout, strictly of `schema` (parse fails on any other field). */
function oneObject<T extends z.ZodType>(schema: T, stdout: string): z.infer<T> {
  const v = JSON.parse(stdout); // throws on two objects or trailing text
  const r = schema.safeParse(v);
  ok(r.success, `${stdout}\n${r.success ? "" : r.error.message}`);
  return r.data;
}

async function sandbox(fn: (dir: string, env: Record<string, string>) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "aegis-cli-conv-" });
  const env = {
    AEGIS_STATE_DIR: `${dir}/state`,
    AEGIS_KEYS_DIR: `${dir}/keys`,
    AEGIS_CONTROL_SOCKET: `${dir}/no-daemon.sock`,
    AEGIS_LOG_FORMAT: "json",
  };
  Deno.mkdirSync(`${dir}/state`);
  Deno.mkdirSync(`${dir}/keys`, { mode: 0o755 });
  Deno.chmodSync(`${dir}/keys`, 0o755);
  Deno.writeTextFileSync(
    `${dir}/p.conf`,
    "version=1\n[deny_path]\n/nonexistent/b\n/nonexistent/a\n",
  );
  Deno.writeTextFileSync(`${dir}/bad.conf`, "version=1\n[no_such_section]\nx\n");
  try {
    await fn(dir, env);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("--json: policy validate, lint, sign, verify, export and keys print one object each", async () => {
  await sandbox(async (dir, env) => {
    const cli = (...a: string[]) => run(LAUNCHER, a, env);
    let r = await cli("policy", "validate", "--json", "--verbose", `${dir}/p.conf`);
    strictEqual(r.code, 0, r.stderr);
    const v = oneObject(PolicyValidateJson, r.stdout);
    deepStrictEqual([v.file, v.version], [`${dir}/p.conf`, 1]);
    match(v.canonical!, /\[deny_path\]/);

    r = await cli(
      "policy",
      "lint",
      "--json",
      "--fix",
      "--out",
      `${dir}/fixed.conf`,
      `${dir}/p.conf`,
    );
    strictEqual(r.code, 0, r.stderr);
    strictEqual(oneObject(PolicyLintJson, r.stdout).wrote, `${dir}/fixed.conf`);
    r = await cli("policy", "lint", "--json", `${dir}/p.conf`);
    strictEqual(oneObject(PolicyLintJson, r.stdout).wrote, null);

    r = await cli("keys", "keygen", "--json", "--out", `${dir}/signer`);
    strictEqual(r.code, 0, r.stderr);
    const k = oneObject(KeygenJson, r.stdout);
    deepStrictEqual([k.key_path, k.pub_path], [`${dir}/signer.key`, `${dir}/signer.pub`]);
    match(k.fingerprint, /^[0-9a-f]{64}$/);
    r = await cli("keys", "add", "--json", k.pub_path);
    strictEqual(r.code, 0, r.stderr);
    deepStrictEqual(
      { ...oneObject(KeyAddJson, r.stdout), path: "" },
      { ok: true, path: "", fingerprint: k.fingerprint, added: true },
    );

    r = await cli(
      "policy",
      "sign",
      "--json",
      "--key",
      k.key_path,
      "--out",
      `${dir}/p.bundle`,
      "--expires-in",
      "2h",
      "--policy-version",
      "9",
      `${dir}/p.conf`,
    ); // deno-fmt-ignore
    strictEqual(r.code, 0, r.stderr);
    const s = oneObject(PolicySignJson, r.stdout);
    deepStrictEqual([s.out, s.policy_version, s.expires_in_s], [`${dir}/p.bundle`, 9, 7200]);
    strictEqual(s.expires - s.timestamp, 7200);

    r = await cli("policy", "verify", "--json", `${dir}/p.bundle`);
    if (Deno.statSync(dir).uid === 0) {
      strictEqual(r.code, 0, r.stderr);
      const f = oneObject(PolicyVerifyJson, r.stdout);
      deepStrictEqual([f.policy_version, f.version, f.signer], [9, 1, k.fingerprint]);
    } else {
      // trusted keys must be root-owned: as another user the failure is the JSON one
      strictEqual(r.code, 1, r.stderr);
      strictEqual(oneObject(JsonFailure, r.stdout).error.code, "BUNDLE_UNTRUSTED_KEY");
    }

    // export: nothing applied yet, then a snapshot
    r = await cli("policy", "export", "--json");
    strictEqual(r.code, 1);
    strictEqual(oneObject(JsonFailure, r.stdout).error.code, "NO_POLICY");
    Deno.copyFileSync(`${dir}/p.conf`, `${dir}/state/policy.applied`);
    r = await cli("policy", "export", "--json");
    strictEqual(r.code, 0, r.stderr);
    match(oneObject(PolicyExportJson, r.stdout).policy, /^version=1\n/);
  });
});

Deno.test("--json failures: one {ok:false,error} object, the usual exit code, policy issues in details", async () => {
  await sandbox(async (dir, env) => {
    const cli = (...a: string[]) => run(LAUNCHER, a, env);
    let r = await cli("policy", "validate", "--json", `${dir}/bad.conf`);
    strictEqual(r.code, 1);
    const f = oneObject(JsonFailure, r.stdout);
    strictEqual(f.error.code, "POLICY_INVALID");
    const d = PolicyIssuesDetails.parse(f.error.details);
    strictEqual(d.errors.length, 1);
    deepStrictEqual([d.errors[0].file, d.errors[0].line], [`${dir}/bad.conf`, 2]);
    // usage errors: exit 2, and the object too when --json was on the line
    r = await cli("policy", "validate", "--json");
    strictEqual(r.code, 2);
    deepStrictEqual(oneObject(JsonFailure, r.stdout).error.code, "USAGE");
    r = await cli("policy", "sign", "--json", "--key", `${dir}/none.key`, `${dir}/p.conf`);
    strictEqual(r.code, 2, r.stderr);
    match(oneObject(JsonFailure, r.stdout).error.message, /--out <path> is required/);
    r = await cli("keys", "keygen", "--json", "--out", `${dir}/`);
    strictEqual(r.code, 2);
    strictEqual(oneObject(JsonFailure, r.stdout).error.code, "USAGE");
    // without --json: nothing on stdout
    r = await cli("policy", "validate", `${dir}/bad.conf`);
    strictEqual(r.code, 1);
    strictEqual(r.stdout, "");
    match(r.stderr, /bad\.conf:2: error: unknown section/);
  });
});

Deno.test("--log-level/--log-format: levels filtered, JSON lines in the shared shape, bad values exit 2", async () => {
  const probe = (args: string[], env: Record<string, string> = {}) =>
    run(Deno.execPath(), ["run", "-A", `${ROOT}/tests/lib/log_probe.ts`, ...args], env);
  let r = await probe(["--log-format", "json", "run", "--log-level", "warning"]);
  strictEqual(r.code, 0, r.stderr);
  const lines = r.stderr.trim().split("\n").map((l) => JSON.parse(l));
  deepStrictEqual(lines.map((l) => [l.level, l.message]), [
    ["warning", "warning line"],
    ["error", "error line"],
  ]);
  for (const l of lines) {
    deepStrictEqual(Object.keys(l), [
      "timestamp",
      "type",
      "level",
      "logger",
      "message",
      "properties",
    ]);
    match(l.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
    strictEqual(l.type, "log");
    strictEqual(l.logger, "aegisbpf.probe");
  }
  // the variables; a value interpolated into the message, a bigint property
  r = await probe(["run"], { AEGIS_LOG_LEVEL: "trace", AEGIS_LOG_FORMAT: "json" });
  const all = r.stderr.trim().split("\n").map((l) => JSON.parse(l));
  deepStrictEqual(all.map((l) => l.level), ["trace", "debug", "info", "warning", "error"]);
  deepStrictEqual([all[2].message, all[2].properties], ["info line 7", {
    n: "7",
    secretless: "yes",
  }]);
  // the option wins over the variable; text format is human lines
  r = await probe(["--log-format", "text", "run"], { AEGIS_LOG_FORMAT: "json" });
  match(r.stderr, /^\d{4}-\d\d-\d\d \S+ \S+ \[INF\] aegisbpf\.probe: info line 7n?$/m);
  ok(!r.stderr.includes("{"), r.stderr);
  for (
    const [args, env, re] of [
      [["--log-level", "loud", "run"], {}, /'loud' is invalid\. Allowed choices are trace, debug/],
      [["--log-format", "xml", "run"], {}, /'xml' is invalid\. Allowed choices are text, json/],
      [["run"], { AEGIS_LOG_LEVEL: "verbose" }, /from env 'AEGIS_LOG_LEVEL' is invalid/],
    ] as const
  ) {
    r = await probe([...args], env);
    strictEqual(r.code, 2, `${args} ${JSON.stringify(env)}: ${r.stderr}`);
    match(r.stderr, re);
  }
});

Deno.test("completion bash: bash -n accepts it and bash completes commands, options and values", async () => {
  const r = await run(LAUNCHER, ["completion", "bash"]);
  strictEqual(r.code, 0, r.stderr);
  const script = await Deno.makeTempFile({ suffix: ".bash" });
  try {
    Deno.writeTextFileSync(script, r.stdout);
    strictEqual((await run("bash", ["-n", script])).code, 0);
    const t = `source ${script}
t() { COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); COMPREPLY=(); _aegisbpf; echo "\${COMPREPLY[*]}"; }
t aegisbpf pol
t aegisbpf policy s
t aegisbpf network deny add --pro
t aegisbpf --log-level ""
t aegisbpf network deny add --protocol u
t aegisbpf block add --t`;
    const out = await run("bash", ["-c", t]);
    strictEqual(out.code, 0, out.stderr);
    deepStrictEqual(out.stdout.trim().split("\n"), [
      "policy",
      "sign show",
      "--protocol",
      "trace debug info warning error",
      "udp",
      "--ttl",
    ]);
  } finally {
    Deno.removeSync(script);
  }
  const bad = await run(LAUNCHER, ["completion", "tcsh"]);
  strictEqual(bad.code, 2);
  match(bad.stderr, /Allowed choices are bash, zsh, fish/);
});
