/**
 * docs/guarantees.md maps every "Guaranteed" line of the product owner's
 * contract to named tests. This test keeps the map honest: every quoted
 * guarantee has at least one proof, every proof names a test that exists
 * in the named file, and (when the contract is beside the checkout, as on
 * the development machines) the quoted lines are exactly the contract's.
 */
import { deepStrictEqual, ok } from "node:assert/strict";
import { ROOT } from "../lib/helpers.ts";

interface Proof {
  file: string;
  name: string;
}

/** "## Guarantee: …" sections and their "- `file` › "name"" lines. */
export function parseGuaranteeMap(md: string): Map<string, Proof[]> {
  const out = new Map<string, Proof[]>();
  let current: Proof[] | null = null;
  // deno fmt wraps long bullets: join continuation lines to their bullet
  const lines: string[] = [];
  for (const l of md.split("\n")) {
    if (/^\s{2,}\S/.test(l) && lines.length > 0 && lines.at(-1)!.startsWith("- ")) {
      lines[lines.length - 1] += " " + l.trim();
    } else lines.push(l);
  }
  for (const line of lines) {
    const h = /^## Guarantee: (.+)$/.exec(line);
    if (h) {
      current = [];
      out.set(h[1].trim(), current);
      continue;
    }
    if (line.startsWith("## ")) current = null;
    const p = /^- `([^`]+)` › "(.+)"$/.exec(line);
    if (p && current) current.push({ file: p[1], name: p[2] });
  }
  return out;
}

/** The bullets of the contract's "## Guaranteed" section, markdown code marks removed. */
function contractGuarantees(text: string): string[] {
  const section = text.split(/^## /m).find((s) => s.startsWith("Guaranteed"));
  if (!section) return [];
  return section.split(/^- /m).slice(1).map((b) =>
    b.replace(/\s+/g, " ").replaceAll("`", "").trim()
  );
}

const map = parseGuaranteeMap(await Deno.readTextFile(`${ROOT}/docs/guarantees.md`));

Deno.test("guarantee map: five guarantees, each with at least one proof", () => {
  deepStrictEqual(map.size, 5, [...map.keys()].join("\n"));
  for (const [g, proofs] of map) ok(proofs.length > 0, `no proof for: ${g}`);
});

Deno.test("guarantee map: every named test exists in its file", async () => {
  const missing: string[] = [];
  for (const proofs of map.values()) {
    for (const p of proofs) {
      let src = "";
      try {
        src = await Deno.readTextFile(`${ROOT}/${p.file}`);
      } catch {
        missing.push(`${p.file}: no such file`);
        continue;
      }
      // the name as a string literal: "name" or `name`
      const flat = src.replace(/"\s*\+\s*\n\s*"/g, "");
      if (!flat.includes(`"${p.name}"`) && !flat.includes(`\`${p.name}\``)) {
        missing.push(`${p.file}: no test named "${p.name}"`);
      }
    }
  }
  deepStrictEqual(missing, []);
});

Deno.test("guarantee map: the parser sees a broken map (this check can fail)", () => {
  const broken = parseGuaranteeMap('## Guarantee: X\n\n## Guarantee: Y\n- `a.ts` › "t"\n');
  deepStrictEqual([...broken.entries()].map(([k, v]) => [k, v.length]), [["X", 0], ["Y", 1]]);
});

const CONTRACT = `${ROOT}/../shared/ENFORCEMENT_GUARANTEES.md`;
let contract: string | null = null;
try {
  contract = await Deno.readTextFile(CONTRACT);
} catch { /* not beside this checkout (CI clone): the quoted lines are checked where it is */ }

Deno.test({
  name: contract === null
    ? `guarantee map: contract text (SKIPPED: ${CONTRACT} is not beside this checkout)`
    : "guarantee map: the quoted lines are exactly the contract's Guaranteed lines",
  ignore: contract === null,
  fn: () => {
    const want = contractGuarantees(contract!);
    ok(want.length > 0, "the contract has a Guaranteed section");
    const have = [...map.keys()].map((k) => k.replaceAll("`", ""));
    deepStrictEqual(have, want);
  },
});
