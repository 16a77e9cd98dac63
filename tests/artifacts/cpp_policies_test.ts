/**
 * The C++ agent's own example policies through our parser (docs/policy.md,
 * "Differences from the C++ agent"): every policy its source tarball ships
 * for users (examples/policies, config, community-rules, rules/*) is read
 * from ../shared/peers/aegisbpf-cpp/aegisbpf-cpp-*.tar.gz as test data, in
 * memory, nothing copied into this tree. Each must parse, except the ones
 * listed below that the C++ parser refuses as well. Skipped, saying why,
 * when that tarball is not beside the checkout.
 */
import assert from "node:assert/strict";
import { formatIssue, parsePolicy } from "../../src/policy/parse.ts";
import { readTarGz } from "../lib/tar.ts";

const DIR = new URL("../../../shared/peers/aegisbpf-cpp/", import.meta.url);

/** The newest aegisbpf-cpp-*.tar.gz in DIR, or why there is none. */
function findTarball(): { url: URL } | { skip: string } {
  let names: string[];
  try {
    names = [...Deno.readDirSync(DIR)].filter((e) => e.isFile).map((e) => e.name);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      return { skip: "../shared/peers/aegisbpf-cpp is not beside this checkout" };
    }
    throw e;
  }
  const tarballs = names.filter((n) => /^aegisbpf-cpp-.+\.tar\.gz$/.test(n)).sort();
  if (tarballs.length === 0) {
    return { skip: "no aegisbpf-cpp-*.tar.gz in ../shared/peers/aegisbpf-cpp" };
  }
  return { url: new URL(tarballs[tarballs.length - 1], DIR) };
}

/**
 * The policies the C++ agent ships for users, by their path in its tree
 * (group 1; an optional top folder, as `git archive --prefix` writes, is
 * left out). Its test fixtures and fuzz seeds are not examples.
 */
const EXAMPLE =
  /^(?:[^/]+\/)?((?:examples\/policies|community-rules|rules\/[^/]+)\/[^/]+\.conf|config\/policy\.example|config\/[^/]+\.conf)$/;

/** The two examples issue 14 found refused for their version=1 sections. */
const ISSUE_14 = [
  "examples/policies/minimal-getting-started.conf",
  "rules/kernel-tampering/kernel-tampering.conf",
];

/**
 * Examples the C++ parser refuses too (so do we, for the same entry): the
 * one error we give. `metadata.google.internal` is a host name; the C++
 * parser reads [deny_ip] with inet_pton (its src/network_ops.cpp,
 * parse_ipv4/parse_ipv6) and rejects the file with "invalid IP address".
 */
const REFUSED_BY_BOTH = new Map([
  [
    "examples/policies/cis-kubernetes-benchmark.conf",
    '[deny_ip] Invalid IP address "metadata.google.internal"',
  ],
]);

const found = findTarball();

Deno.test({
  name: "skip" in found
    ? `C++ example policies parse (SKIPPED: ${found.skip})`
    : "C++ example policies: each one the C++ parser accepts, ours accepts",
  ignore: "skip" in found,
  fn: async () => {
    assert.ok("url" in found);
    const files = await readTarGz(found.url, (n) => EXAMPLE.test(n));
    const examples = new Map([...files].map(([n, b]) => [EXAMPLE.exec(n)![1], b]));
    assert.ok(examples.size >= 10, `only ${examples.size} example policies found in the tarball`);
    for (const name of ISSUE_14) assert.ok(examples.has(name), `${name} is not in the tarball`);
    const wrong: string[] = [];
    for (const [name, bytes] of [...examples].sort()) {
      const r = parsePolicy(bytes, name);
      const errs = r.errors.map(formatIssue);
      const refused = REFUSED_BY_BOTH.get(name);
      if (refused === undefined && (r.policy === undefined || errs.length > 0)) {
        wrong.push(`${name}: refused:\n  ${errs.join("\n  ")}`);
      } else if (refused !== undefined) {
        if (r.policy !== undefined || errs.length !== 1 || !errs[0].includes(refused)) {
          wrong.push(`${name}: expected only "${refused}", got:\n  ${errs.join("\n  ")}`);
        }
      }
    }
    assert.deepEqual(wrong, [], wrong.join("\n"));
  },
});

Deno.test({
  name: "skip" in found
    ? `C++ example policies: the version=1 ones of issue 14 (SKIPPED: ${found.skip})`
    : "C++ example policies: the version=1 ones of issue 14 parse with their kernel flags on",
  ignore: "skip" in found,
  fn: async () => {
    assert.ok("url" in found);
    const files = await readTarGz(found.url, (n) => ISSUE_14.some((i) => n.endsWith(i)));
    const policies = ISSUE_14.map((i) => {
      const [name, bytes] = [...files].find(([n]) => n.endsWith(i))!;
      const r = parsePolicy(bytes, name);
      assert.deepEqual(r.errors.map(formatIssue), []);
      return r.policy!;
    });
    for (const p of policies) assert.equal(p.version, 1);
    const [minimal, kernel] = policies;
    assert.equal(minimal.denyPtrace?.enabled, true);
    assert.ok(minimal.denyPath.length > 0);
    for (const f of [kernel.denyModuleLoad, kernel.denyBpf, kernel.denyPtrace]) {
      assert.equal(f?.enabled, true);
    }
  },
});

Deno.test("readTarGz: long names in ustar, pax and GNU tarballs; regular files only", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const long = `${"d".repeat(90)}/${"e".repeat(90)}`; // 181 bytes: past ustar's 100-byte name
    Deno.mkdirSync(`${dir}/t/${long}`, { recursive: true });
    Deno.writeTextFileSync(`${dir}/t/${long}/a.conf`, "version=1\n");
    Deno.writeTextFileSync(`${dir}/t/b.conf`, "");
    Deno.symlinkSync("b.conf", `${dir}/t/link.conf`);
    for (const format of ["ustar", "pax", "gnu"]) {
      const out = `${dir}/${format}.tar.gz`;
      const tar = await new Deno.Command("tar", {
        args: [`--format=${format}`, "-czf", out, "-C", `${dir}/t`, "."],
      }).output();
      assert.ok(tar.success, new TextDecoder().decode(tar.stderr));
      const got = await readTarGz(out, () => true);
      assert.deepEqual([...got.keys()].sort(), ["./b.conf", `./${long}/a.conf`], format);
      assert.equal(new TextDecoder().decode(got.get(`./${long}/a.conf`)), "version=1\n");
      assert.equal(got.get("./b.conf")?.length, 0);
      const only = await readTarGz(out, (n) => n.endsWith("b.conf"));
      assert.deepEqual([...only.keys()], ["./b.conf"]);
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
