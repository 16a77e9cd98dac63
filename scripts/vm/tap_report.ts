// Turn one cell's `deno test --reporter=tap` output into report lines.
// Usage: deno run --allow-read scripts/vm/tap_report.ts <cell-label> <tap-file>
// Prints "vm <cell>  <file>: <test> ... ok|FAILED|skipped" per top-level test
// (failed steps and failure messages indented below), then a last line
// "@@counts <passed> <failed> <skipped>" for scripts/vm/test_vm.sh.
const enc = new TextEncoder();
const print = (s: string, fd = Deno.stdout): void => {
  fd.writeSync(enc.encode(s + "\n"));
};
const [cell, tapFile] = Deno.args;
if (!cell || !tapFile) {
  print("usage: tap_report.ts <cell-label> <tap-file>", Deno.stderr);
  Deno.exit(2);
}
let text = "";
try {
  text = Deno.readTextFileSync(tapFile);
} catch {
  text = "";
}
// deno-lint-ignore no-control-regex
const stripAnsi = (s: string): string => s.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "");

const lines = text.split("\n");
let file = "";
let passed = 0, failed = 0, skipped = 0;
const out: string[] = [];
const pendingSteps: string[] = [];
const result = /^(\s*)(not ok|ok) \d+ - (.*?)(\s+# (SKIP|TODO)\b.*)?$/;

function yamlMessage(start: number): [string[], number] {
  // lines[start] is "  ---"; JSON (one line) until "  ..."
  const msg: string[] = [];
  let i = start + 1;
  for (; i < lines.length && lines[i].trim() !== "..."; i++) {
    try {
      const o = JSON.parse(lines[i].trim());
      if (typeof o.message === "string") {
        msg.push(...stripAnsi(o.message).split("\n").slice(0, 12));
      }
    } catch {
      msg.push(stripAnsi(lines[i].trim()));
    }
  }
  return [msg, i];
}

for (let i = 0; i < lines.length; i++) {
  const line = lines[i];
  const f = /^# (\.\/.*\.(ts|js|mts|tsx))$/.exec(line);
  if (f) {
    file = f[1].replace(/^\.\//, "");
    continue;
  }
  const m = result.exec(line);
  if (!m) continue;
  const [, indent, verdict, name, , directive] = m;
  let msg: string[] = [];
  if (lines[i + 1]?.trim() === "---") [msg, i] = yamlMessage(i + 1);
  if (indent.length > 0) { // a step of the next top-level test
    const v = verdict === "ok" ? (directive ? "skipped" : "ok") : "FAILED";
    pendingSteps.push(`${indent}  step: ${name} ... ${v}`);
    if (v === "FAILED") pendingSteps.push(...msg.map((l) => `${indent}      ${l}`));
    continue;
  }
  let v: string;
  if (verdict === "not ok") {
    v = "FAILED";
    failed++;
  } else if (directive) {
    v = "skipped";
    skipped++;
  } else {
    v = "ok";
    passed++;
  }
  out.push(`vm ${cell}  ${file ? file + ": " : ""}${name} ... ${v}`);
  if (v === "FAILED") {
    out.push(...pendingSteps);
    out.push(...msg.map((l) => `      ${l}`));
  }
  pendingSteps.length = 0;
}
if (out.length > 0) print(out.join("\n"));
print(`@@counts ${passed} ${failed} ${skipped}`);
