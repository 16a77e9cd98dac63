import { deepStrictEqual as eq, strictEqual, throws } from "node:assert/strict";
import { AegisError } from "../errors.ts";
import { parsePolicy } from "../policy/parse.ts";
import { NO_NEEDS, policyNeeds, policyRuleFacts } from "./needs.ts";
import { policyBody, readAppliedPolicy, unresolvedPaths } from "./policy_status.ts";

const parse = (text: string) => {
  const r = parsePolicy(text, "t.policy");
  if (!r.policy) throw new Error(JSON.stringify(r.errors));
  return r.policy;
};

Deno.test("policyNeeds: network and protect sections, nothing else", () => {
  eq(policyNeeds(parse("version=1\n[deny_path]\n/etc/shadow\n")), NO_NEEDS);
  eq(policyNeeds(parse("version=2\n[deny_port]\n22\n")).network, true);
  eq(policyNeeds(parse("version=2\n[deny_cidr]\n10.0.0.0/8\n")).network, true);
  const p = policyNeeds(parse("version=4\n[protect_path]\n/etc/app.conf\n"));
  eq(p, { ...NO_NEEDS, exec_identity: true });
  eq(policyNeeds(parse("version=4\n[protect_connect]\n")), {
    ...NO_NEEDS,
    network: true,
    exec_identity: true,
  });
  eq(policyNeeds(parse("version=4\n[protect_connect]\nfalse\n")), NO_NEEDS);
  eq(policyNeeds(parse(`version=3\n[deny_binary_hash]\nsha256:${"a".repeat(64)}\n`)), {
    ...NO_NEEDS,
    exec_content: true,
  });
  eq(policyNeeds(parse("version=3\n[deny_binary_hash]\n")), NO_NEEDS, "an empty section");
  // an allowlist needs the content identity too, and says it is one
  eq(policyNeeds(parse(`version=3\n[allow_binary_hash]\nsha256:${"b".repeat(64)}\n`)), {
    ...NO_NEEDS,
    exec_content: true,
    exec_allowlist: true,
  });
  eq(policyNeeds(parse("version=3\n[allow_binary_hash]\n")), NO_NEEDS, "an empty allowlist");
  // the v5 sections: trusted list, appraisal, runtime deps (with its protect section)
  eq(
    policyNeeds(
      parse(
        `version=5\n[trusted_exec_hash]\nsha256:${"c".repeat(64)}\n[require_ima_appraisal]\n` +
          "[protect_connect]\n[protect_runtime_deps]\n",
      ),
    ),
    {
      ...NO_NEEDS,
      network: true,
      exec_identity: true,
      exec_content: true,
      exec_trusted: true,
      exec_runtime_deps: true,
      ima_appraisal: true,
    },
  );
  eq(
    policyNeeds(parse("version=5\n[require_ima_appraisal]\nfalse\n")),
    NO_NEEDS,
    "a flag set to false needs nothing",
  );
});

Deno.test("policyRuleFacts: the C++ counts, and which network hooks the rules need", () => {
  eq(policyRuleFacts(parse("version=1\n[deny_path]\n/etc/shadow\n")), {
    network_rule_count: 0,
    protect_path_count: 0,
    protect_connect: false,
    cgroup_deny_inode_count: 0,
    cgroup_deny_ip_count: 0,
    cgroup_deny_port_count: 0,
    allow_binary_hash_count: 0,
    trusted_exec_hash_count: 0,
    protect_runtime_deps: false,
    require_ima_appraisal: false,
    ima_fail_closed: false,
    network_connect: false,
    network_bind: false,
  });
  const bindOnly = policyRuleFacts(parse("version=2\n[deny_port]\n22:tcp:bind\n8080:any:bind\n"));
  eq([bindOnly.network_rule_count, bindOnly.network_connect, bindOnly.network_bind], [
    2,
    false,
    true,
  ]);
  const both = policyRuleFacts(
    parse("version=2\n[deny_port]\n53:udp:both\n[deny_cidr]\n10.0.0.0/8\n"),
  );
  eq([both.network_rule_count, both.network_connect, both.network_bind], [2, true, true]);
  const allow = policyRuleFacts(
    parse(`version=3\n[allow_binary_hash]\nsha256:${"1".repeat(64)}\nsha256:${"2".repeat(64)}\n`),
  );
  eq(allow.allow_binary_hash_count, 2, "the real count of [allow_binary_hash] lines");
  const p = policyRuleFacts(parse("version=4\n[protect_path]\n/a\n/b\n[protect_connect]\n"));
  eq([p.protect_path_count, p.protect_connect, p.network_connect, p.network_rule_count], [
    2,
    true,
    true,
    0,
  ]);
});

Deno.test("readAppliedPolicy: none, applied with hash and unresolved paths, bundle body, corrupt", () => {
  const dir = Deno.makeTempDirSync();
  try {
    eq(readAppliedPolicy(dir).status.applied, false);
    eq(readAppliedPolicy(dir).status.snapshot, {
      path: `${dir}/policy.applied`,
      present: false,
      parse_ok: false,
    });
    Deno.writeTextFileSync(
      `${dir}/policy.applied`,
      "version=2\n[deny_path]\n/etc/hostname\n/nonexistent/x\n[deny_ip]\n10.1.1.1\n",
    );
    Deno.writeTextFileSync(`${dir}/policy.sha256`, `${"ab".repeat(32)}\n`);
    const r = readAppliedPolicy(dir);
    eq(r.status, {
      applied: true,
      sha256: "ab".repeat(32),
      version: 2,
      unresolved: ["/nonexistent/x"],
      snapshot: { path: `${dir}/policy.applied`, present: true, parse_ok: true },
      rules: {
        network_rule_count: 1,
        protect_path_count: 0,
        protect_connect: false,
        cgroup_deny_inode_count: 0,
        cgroup_deny_ip_count: 0,
        cgroup_deny_port_count: 0,
        allow_binary_hash_count: 0,
        trusted_exec_hash_count: 0,
        protect_runtime_deps: false,
        require_ima_appraisal: false,
        ima_fail_closed: false,
        network_connect: true,
        network_bind: false,
      },
    });
    strictEqual(r.needs.network, true);
    Deno.writeTextFileSync(
      `${dir}/policy.applied`,
      "AEGIS-POLICY-BUNDLE-V2\nformat_version: 2\n---\nversion=1\n[deny_path]\n/etc/hostname\n",
    );
    eq(readAppliedPolicy(dir).status.version, 1);
    Deno.writeTextFileSync(`${dir}/policy.applied`, "version=99\n");
    throws(
      () => readAppliedPolicy(dir),
      (e: unknown) => e instanceof AegisError && e.code === "POLICY_STATE_CORRUPT",
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("unresolvedPaths: deny and protect paths, deduplicated, sorted", () => {
  const p = parse("version=4\n[deny_path]\n/b\n/a\n[protect_path]\n/b\n/c\n");
  eq(unresolvedPaths(p, (x) => x === "/c"), ["/a", "/b"]);
  strictEqual(policyBody("version=1\n"), "version=1\n");
});
