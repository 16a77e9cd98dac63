/**
 * Tier 1: the content decision of the exec and mapping programs
 * (bpf/lib/exec_identity.h, compiled unchanged into bpf/exec_hash.bpf.c)
 * walked over every case on the host: each policy switch combination, exec
 * or mapping, known or unknown identity (no SHA-256 from the kernel), and
 * every set of list flags on the content's entry: 32 x 2 x 2 x 8 = 1024
 * cases, compared with the rules of docs/engine.md ("Exec identity by
 * content") written out again below.
 *
 * This is where the unknown-identity branches are proven: in the VM the
 * kernel gives a SHA-256 for every file (tests/vm/exec_trusted_vmtest.ts
 * says so), so [ima_fail_closed]'s deny and the allowlist's fail-closed
 * cannot be made to happen there.
 */
import { deepStrictEqual, strictEqual } from "node:assert/strict";
import {
  AEGIS_POL_EXEC_ALLOWLIST,
  AEGIS_POL_EXEC_HASH,
  AEGIS_POL_EXEC_TRUSTED,
  AEGIS_POL_IMA_FAIL_CLOSED,
  AEGIS_POL_RUNTIME_DEPS,
  AEGIS_RULE_ALLOW,
  AEGIS_RULE_DENY,
  AEGIS_RULE_TRUSTED,
  AEGIS_RULE_UNLISTED,
} from "../../src/bpf/abi_gen.ts";
import { ROOT } from "../lib/helpers.ts";

const DRIVER = String.raw`
#include <stdio.h>
#include <linux/types.h>
#include "aegis_abi.h"
#include "lib/exec_identity.h"

static const __u64 BITS[] = { AEGIS_POL_EXEC_HASH, AEGIS_POL_EXEC_ALLOWLIST,
	AEGIS_POL_EXEC_TRUSTED, AEGIS_POL_IMA_FAIL_CLOSED, AEGIS_POL_RUNTIME_DEPS };
static const __u16 ENTRY[] = { AEGIS_RULE_DENY, AEGIS_RULE_ALLOW, AEGIS_RULE_TRUSTED };

int main(void)
{
	for (int b = 0; b < 32; b++)
		for (int mapping = 0; mapping < 2; mapping++)
			for (int known = 0; known < 2; known++)
				for (int e = 0; e < 8; e++) {
					__u64 pol = 0;
					__u16 entry = 0, flags = 0;
					__u32 lists;
					int v = -1;

					for (int i = 0; i < 5; i++)
						if (b & (1 << i))
							pol |= BITS[i];
					for (int i = 0; i < 3; i++)
						if (e & (1 << i))
							entry |= ENTRY[i];
					lists = aegis_id_lists(pol, mapping);
					if (lists)
						v = aegis_id_verdict(lists, pol, known, entry, &flags);
					printf("%llu %d %d %u %d %u\n", (unsigned long long)pol, mapping,
					       known, entry, v, v == AEGIS_ID_DENY_UNLISTED ? flags : 0);
				}
	return 0;
}
`;

type Verdict = "no_hash" | "allow" | "deny_entry" | "untrusted" | "unlisted";

/** The rules, from the docs: the most restrictive list wins. */
function expected(pol: number, mapping: boolean, known: boolean, entry: number): Verdict {
  const deps = !mapping || (pol & AEGIS_POL_RUNTIME_DEPS) !== 0;
  const deny = (pol & AEGIS_POL_EXEC_HASH) !== 0;
  const allow = deps && (pol & AEGIS_POL_EXEC_ALLOWLIST) !== 0;
  const trusted = deps && (pol & AEGIS_POL_EXEC_TRUSTED) !== 0;
  if (!deny && !allow && !trusted) return "no_hash"; // nothing hashed at all
  if (!known) {
    if (allow) return "unlisted"; // the allowlist always fails closed
    if (trusted && (pol & AEGIS_POL_IMA_FAIL_CLOSED) !== 0) return "untrusted";
    return "allow"; // fail open
  }
  // a DENY entry denies once the file is hashed (even if only a list's switch is set)
  if ((entry & AEGIS_RULE_DENY) !== 0) return "deny_entry";
  if (allow && (entry & AEGIS_RULE_ALLOW) === 0) return "unlisted";
  if (trusted && (entry & AEGIS_RULE_TRUSTED) === 0) return "untrusted";
  return "allow";
}

Deno.test("exec identity decision (bpf/lib/exec_identity.h): 1024 cases, the documented rules", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/driver.c`, DRIVER);
    const cc = await new Deno.Command("gcc", {
      args: [
        "-std=gnu11",
        "-Wall",
        "-Werror",
        `-I${ROOT}/bpf/include`,
        `-I${ROOT}/bpf`,
        "-o",
        `${dir}/driver`,
        `${dir}/driver.c`,
      ],
    }).output();
    strictEqual(cc.code, 0, new TextDecoder().decode(cc.stderr));
    const out = await new Deno.Command(`${dir}/driver`).output();
    strictEqual(out.code, 0);
    const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
    strictEqual(lines.length, 1024);
    const wrong: string[] = [];
    const seen = new Map<Verdict, number>();
    for (const l of lines) {
      const [pol, mapping, known, entry, v, flags] = l.split(" ").map(Number);
      const got: Verdict = v === -1
        ? "no_hash"
        : v === 0
        ? "allow"
        : v === 1
        ? "deny_entry"
        : flags === (AEGIS_RULE_UNLISTED | AEGIS_RULE_TRUSTED)
        ? "untrusted"
        : flags === AEGIS_RULE_UNLISTED
        ? "unlisted"
        : `bad flags ${flags}` as Verdict;
      const want = expected(pol, mapping === 1, known === 1, entry);
      seen.set(got, (seen.get(got) ?? 0) + 1);
      if (got !== want) wrong.push(`${l}: got ${got}, want ${want}`);
    }
    deepStrictEqual(wrong.slice(0, 20), [], `${wrong.length} wrong`);
    // every outcome happens (the walk is not vacuous)
    deepStrictEqual([...seen.keys()].sort(), [
      "allow",
      "deny_entry",
      "no_hash",
      "unlisted",
      "untrusted",
    ]);
    // the two fail-closed cases, spelled out: an exec with no SHA-256
    const line = (pol: number, mapping: number, known: number, entry: number) =>
      lines.find((l) => l.startsWith(`${pol} ${mapping} ${known} ${entry} `));
    const tr = AEGIS_POL_EXEC_TRUSTED;
    strictEqual(line(tr, 0, 0, 0), `${tr} 0 0 0 0 0`, "trusted, unknown: allowed (fail open)");
    const fc = tr | AEGIS_POL_IMA_FAIL_CLOSED;
    strictEqual(
      line(fc, 0, 0, 0),
      `${fc} 0 0 0 2 ${AEGIS_RULE_UNLISTED | AEGIS_RULE_TRUSTED}`,
      "trusted + ima_fail_closed, unknown: denied",
    );
    // a mapping under ima_fail_closed without protect_runtime_deps: not hashed
    strictEqual(line(fc, 1, 0, 0), `${fc} 1 0 0 -1 0`);
    const al = AEGIS_POL_EXEC_ALLOWLIST;
    strictEqual(
      line(al, 0, 0, 0),
      `${al} 0 0 0 2 ${AEGIS_RULE_UNLISTED}`,
      "allowlist fails closed",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
