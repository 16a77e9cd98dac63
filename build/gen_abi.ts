// deno-lint-ignore-file no-console -- a build tool: its output is for the person building
/**
 * Generates src/bpf/abi_gen.ts from the BTF of bpf/include/aegis_abi.h.
 *
 *   deno run -A build/gen_abi.ts           write src/bpf/abi_gen.ts
 *   deno run -A build/gen_abi.ts --check   exit 1 when the file is stale
 *
 * The header is compiled (build/abi_anchor.bpf.c) with clang for the BPF
 * target and its BTF read back with bpftool, so the TypeScript codecs come
 * from exactly the layout the kernel programs use.
 *
 * @module
 */
import { abiLayoutFromBtf, renderAbiModule } from "./abi_layout.ts";

const root = new URL("../", import.meta.url).pathname;
const out = `${root}src/bpf/abi_gen.ts`;

async function run(cmd: string, args: string[]): Promise<Uint8Array> {
  const r = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (!r.success) {
    throw new Error(`${cmd} ${args.join(" ")} failed:\n${new TextDecoder().decode(r.stderr)}`);
  }
  return r.stdout;
}

/** Format TypeScript text with `deno fmt` (the project's settings). */
async function formatTs(text: string): Promise<string> {
  const p = new Deno.Command(Deno.execPath(), {
    args: ["fmt", "--config", `${root}deno.json`, "--ext", "ts", "-"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = p.stdin.getWriter();
  await w.write(new TextEncoder().encode(text));
  await w.close();
  const r = await p.output();
  if (!r.success) throw new Error(`deno fmt failed: ${new TextDecoder().decode(r.stderr)}`);
  return new TextDecoder().decode(r.stdout);
}

/** BTF JSON (bpftool -j btf dump) of an object file. */
export async function btfJson(objPath: string): Promise<unknown> {
  const raw = await run("bpftool", ["-j", "btf", "dump", "file", objPath]);
  return JSON.parse(new TextDecoder().decode(raw));
}

/**
 * The names user space may ask the object for: every map declared in
 * bpf/include/aegis_maps.h and every program in bpf/*.bpf.c (the function
 * after each SEC("…") that is not "license"). Read from the sources, like
 * the layout from the header's BTF; tests/artifacts/abi_test.ts checks
 * them against the built object.
 */
export async function objectNames(): Promise<{ maps: string[]; programs: string[] }> {
  const header = await Deno.readTextFile(`${root}bpf/include/aegis_maps.h`);
  const maps = [...header.matchAll(/^\}\s*(\w+)\s+SEC\("\.maps"\);/gm)].map((m) => m[1]);
  const programs: string[] = [];
  for await (const e of Deno.readDir(`${root}bpf`)) {
    if (!e.isFile || !e.name.endsWith(".bpf.c")) continue;
    const src = await Deno.readTextFile(`${root}bpf/${e.name}`);
    for (const m of src.matchAll(/SEC\("([^"]+)"\)\s*\nint\s+(?:BPF_PROG\()?(\w+)/g)) {
      programs.push(m[2]);
    }
  }
  return { maps, programs: programs.sort() };
}

function renderNames(n: { maps: string[]; programs: string[] }): string {
  const list = (xs: string[]) => xs.map((x) => `  ${JSON.stringify(x)},`).join("\n");
  return `
/** Every map of the object (bpf/include/aegis_maps.h), in declaration order. */
export const MAP_NAMES = [
${list(n.maps)}
] as const;
/** A map of the object: a typo in a map name is a type error. */
export type MapName = typeof MAP_NAMES[number];

/** Every program of the object (bpf/*.bpf.c), sorted. */
export const PROGRAM_NAMES = [
${list(n.programs)}
] as const;
/** A program of the object. */
export type ProgramName = typeof PROGRAM_NAMES[number];
`;
}

async function main(): Promise<void> {
  const tmp = await Deno.makeTempDir({ prefix: "aegis-abi-" });
  try {
    const obj = `${tmp}/anchor.o`;
    await run("clang", [
      "-g",
      "-O2",
      "-target",
      "bpf",
      "-Wall",
      "-Werror",
      "-I",
      `${root}bpf/include`,
      "-I",
      "/usr/include/x86_64-linux-gnu",
      "-c",
      `${root}build/abi_anchor.bpf.c`,
      "-o",
      obj,
    ]);
    const layout = abiLayoutFromBtf(await btfJson(obj), "aegis_abi_anchor");
    const text = await formatTs(
      (await renderAbiModule(layout)) + renderNames(await objectNames()),
    );
    if (Deno.args.includes("--check")) {
      let current = "";
      try {
        current = await Deno.readTextFile(out);
      } catch { /* missing counts as stale */ }
      if (current !== text) {
        console.error(
          "src/bpf/abi_gen.ts is stale: bpf/include/aegis_abi.h, aegis_maps.h or a program name changed. Run: deno run -A build/gen_abi.ts",
        );
        Deno.exit(1);
      }
      console.log("src/bpf/abi_gen.ts is up to date");
    } else {
      await Deno.writeTextFile(out, text);
      console.log(`wrote ${out}`);
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}

if (import.meta.main) await main();
