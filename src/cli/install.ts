/**
 * `aegisbpf install` and the file part of `aegisbpf uninstall`: put the agent
 * on a host from its single binary (docs/install.md).
 *
 * Layout (every path under `--root`, default `/`):
 *   PREFIX/bin/aegisbpf                 0755  the running compiled binary
 *                                             (--bundle: a wrapper script, below)
 *   PREFIX/lib/aegisbpf/deno            0755  --bundle only: the running Deno runtime
 *   PREFIX/lib/aegisbpf/aegisbpf.js     0644  --bundle only: deno bundle of src/main.ts
 *   /etc/systemd/system/aegisbpf.service 0644 packaging/systemd/aegisbpf.service
 *   /etc/aegisbpf/                       0755
 *   /etc/aegisbpf/aegisbpf.env           0600  settings (kept once it exists)
 *   /etc/aegisbpf/keys/                  0700  trusted policy keys
 *   /etc/aegisbpf/policy/                0700  policy files and bundles
 *   /var/lib/aegisbpf/                   0700  state
 *   /var/lib/aegisbpf/install.json       0600  what install made (SHA-256 each)
 *
 * Rules: every check runs before the first change, so a refusal changes
 * nothing; no path component below the root may be a symbolic link; a file
 * that exists with other content is replaced only when install.json says
 * install wrote it (and it is unchanged since), or with --force; a second
 * run changes nothing and says so; --dry-run lists the changes and makes none.
 *
 * @module
 */
import type { Command } from "@commander-js/extra-typings";
import { AegisError } from "../errors.ts";
import { out, outJson } from "../log.ts";
import { writeFileAtomic } from "../policy/atomic.ts";
import { sha256Hex } from "../util/bytes.ts";
import { LAUNCHER_PERMISSIONS, UNIT_TEMPLATE } from "./install_unit.ts";

export const LAYOUT_VERSION = 1;
export const MANIFEST_PATH = "/var/lib/aegisbpf/install.json";
export const UNIT_PATH = "/etc/systemd/system/aegisbpf.service";
export const ENV_PATH = "/etc/aegisbpf/aegisbpf.env";
/** Directories install owns (removed by uninstall --purge), deepest last. */
export const OWN_DIRS = ["/etc/aegisbpf", "/var/lib/aegisbpf"];

export const ENV_TEMPLATE = `# aegisbpf settings, read by the systemd unit (EnvironmentFile=).
# Uncomment to change a default; see "aegisbpf run --help" and docs/install.md.
# AEGIS_ENFORCE_GATE_MODE=fail-closed
# AEGIS_HTTP_LISTEN=127.0.0.1:80
# AEGIS_EVENT_LOG=stdout
# A policy file or signed bundle applied at start and on "systemctl reload":
# AEGIS_POLICY=/etc/aegisbpf/policy.bundle
# Accept only signed bundles (for AEGIS_POLICY and the policy restored at start):
# AEGIS_REQUIRE_SIGNATURE=1
`;

/** Files `install --bundle` puts in PREFIX/lib/aegisbpf (uninstall removes exactly these). */
export const LIB_FILES = ["deno", "aegisbpf.js"] as const;

/**
 * The agent as the development launcher runs it, made installable: the Deno
 * runtime and a `deno bundle` of src/main.ts, copied to PREFIX/lib/aegisbpf
 * (owned by root, so nothing outside the install decides what root runs).
 */
export interface LauncherPayload {
  /** the Deno executable's bytes */
  runtime: Uint8Array<ArrayBuffer>;
  /** the bundled agent (one JavaScript module) */
  bundle: Uint8Array<ArrayBuffer>;
}

export interface InstallOptions {
  /** install prefix; the binary goes to PREFIX/bin/aegisbpf (default /usr/local) */
  prefix?: string;
  /** prepended to every path (packaging, tests); default "/" */
  root?: string;
  /** the program to install (the compiled binary's bytes); ignored with `launcher` */
  binary?: Uint8Array<ArrayBuffer>;
  /** install the runtime + bundle and a wrapper at PREFIX/bin/aegisbpf instead of a binary */
  launcher?: LauncherPayload;
  dryRun?: boolean;
  force?: boolean;
}

export interface Change {
  action: "mkdir" | "chmod" | "chown" | "write" | "replace";
  /** the path on the target system (without --root) */
  path: string;
  mode?: string;
  detail: string;
}

export interface InstallResult {
  root: string;
  prefix: string;
  dry_run: boolean;
  layout_version: number;
  changes: Change[];
  kept: string[];
}

interface Manifest {
  layout_version: number;
  prefix: string;
  /** target path -> SHA-256 of the content install wrote */
  files: Record<string, string>;
}

const SAFE_PATH = /^\/[A-Za-z0-9._+\/-]*$/;

/** Validate an absolute path option: no `..`, no odd characters (it goes into ExecStart=). */
export function checkPathOption(what: string, p: string): string {
  if (typeof p !== "string" || p.length === 0 || p.length > 256 || !SAFE_PATH.test(p)) {
    throw new AegisError(
      "INSTALL_BAD_PATH",
      `${what} "${String(p).slice(0, 80)}" must be an absolute path of at most 256 characters ` +
        `made of letters, digits and . _ + - /`,
    );
  }
  if (p.split("/").some((c) => c === ".." || c === ".")) {
    throw new AegisError("INSTALL_BAD_PATH", `${what} "${p}" must not contain "." or ".." parts`);
  }
  return p === "/" ? "/" : p.replace(/\/+/g, "/").replace(/\/$/, "");
}

function modeStr(m: number): string {
  return (m & 0o7777).toString(8).padStart(4, "0");
}

function lstat(p: string): Deno.FileInfo | null {
  try {
    return Deno.lstatSync(p);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

/** Resolve --root: must exist and be a directory; symlinks in the root itself are the caller's. */
function resolveRoot(root: string): string {
  const r = checkPathOption("--root", root);
  let real: string;
  try {
    real = Deno.realPathSync(r);
  } catch {
    throw new AegisError("INSTALL_BAD_PATH", `--root "${r}" does not exist`);
  }
  if (!Deno.statSync(real).isDirectory) {
    throw new AegisError("INSTALL_BAD_PATH", `--root "${r}" is not a directory`);
  }
  return real;
}

export class Layout {
  constructor(readonly root: string) {}
  /** the real path of a target path */
  at(p: string): string {
    return this.root === "/" ? p : this.root + p;
  }
  /** Refuse if any component of `p` below the root is a symbolic link. */
  checkNoSymlinks(p: string, problems: string[]): void {
    const parts = p.split("/").filter(Boolean);
    let cur = "";
    for (const part of parts) {
      cur += "/" + part;
      const st = lstat(this.at(cur));
      if (st === null) return;
      if (st.isSymlink) {
        problems.push(`${cur} is a symbolic link; install follows none (remove it or use --root)`);
        return;
      }
    }
  }
}

function readManifest(layout: Layout): Manifest | null {
  const p = layout.at(MANIFEST_PATH);
  const st = lstat(p);
  if (st === null) return null;
  if (!st.isFile || st.size > 64 * 1024) {
    throw new AegisError("INSTALL_MANIFEST_BAD", `${MANIFEST_PATH} is not a regular file ≤ 64 KiB`);
  }
  try {
    const m = JSON.parse(Deno.readTextFileSync(p));
    if (
      typeof m !== "object" || m === null || typeof m.layout_version !== "number" ||
      typeof m.prefix !== "string" || typeof m.files !== "object" || m.files === null
    ) throw new Error("missing layout_version, prefix or files");
    const files: Record<string, string> = Object.create(null);
    for (const [k, v] of Object.entries(m.files)) {
      if (typeof v !== "string" || !SAFE_PATH.test(k)) throw new Error(`bad entry "${k}"`);
      files[k] = v;
    }
    if (m.layout_version > LAYOUT_VERSION) {
      throw new AegisError(
        "INSTALL_LAYOUT_NEWER",
        `${MANIFEST_PATH} has layout version ${m.layout_version}; this aegisbpf knows ` +
          `${LAYOUT_VERSION}. Install the newer aegisbpf, or remove it first.`,
      );
    }
    const prefix = checkPathOption("prefix", m.prefix);
    return { layout_version: m.layout_version, prefix, files };
  } catch (e) {
    if (e instanceof AegisError) throw e;
    throw new AegisError(
      "INSTALL_MANIFEST_BAD",
      `${MANIFEST_PATH} is not a valid install record: ${(e as Error).message}`,
    );
  }
}

function manifestBytes(m: Manifest): Uint8Array<ArrayBuffer> {
  const files: Record<string, string> = {};
  for (const k of Object.keys(m.files).sort()) files[k] = m.files[k];
  return new TextEncoder().encode(
    JSON.stringify({ layout_version: m.layout_version, prefix: m.prefix, files }, null, 2) + "\n",
  );
}

interface DirSpec {
  path: string;
  mode: number;
}
interface FileSpec {
  path: string;
  mode: number;
  bytes: Uint8Array<ArrayBuffer>;
  /** the operator's once it exists: never replaced */
  keep?: boolean;
}

/** The unit text for a prefix. */
export function unitFor(prefix: string): string {
  const bin = prefix === "/" ? "/bin" : `${prefix}/bin`;
  return UNIT_TEMPLATE.replaceAll("@BINDIR@", bin);
}

function libDirFor(prefix: string): string {
  return prefix === "/" ? "/lib/aegisbpf" : `${prefix}/lib/aegisbpf`;
}

/**
 * PREFIX/bin/aegisbpf of an `install --bundle`: runs the installed runtime on
 * the installed bundle with the agent's permissions (build/permissions.flags,
 * mirrored by LAUNCHER_PERMISSIONS). `exec` keeps the agent the unit's main
 * process (NotifyAccess=main).
 */
export function launcherScript(prefix: string): string {
  const lib = libDirFor(prefix);
  return `#!/bin/sh
# aegisbpf: the Deno runtime and the bundled agent in ${lib},
# written by "aegisbpf install --bundle" (docs/install.md).
export DENO_NO_UPDATE_CHECK=1
exec ${lib}/deno run --quiet --no-prompt --cached-only ${
    LAUNCHER_PERMISSIONS.join(" ")
  } ${lib}/aegisbpf.js "$@"
`;
}

/** Plan and (unless dryRun) perform the installation. */
export async function install(opts: InstallOptions): Promise<InstallResult> {
  const prefix = checkPathOption("--prefix", opts.prefix ?? "/usr/local");
  const layout = new Layout(resolveRoot(opts.root ?? "/"));
  const dryRun = opts.dryRun === true;
  const force = opts.force === true;
  // Owner of what install makes: root on a host; under --root, the owner of
  // the root directory (a packaging tree belongs to whoever builds it).
  const rootSt = Deno.statSync(layout.root);
  const owner = layout.root === "/"
    ? { uid: 0, gid: 0 }
    : { uid: rootSt.uid ?? 0, gid: rootSt.gid ?? 0 };
  if (layout.root === "/" && Deno.uid() !== 0 && !dryRun) {
    throw new AegisError(
      "INSTALL_NEEDS_ROOT",
      "installing into / needs root (run it as root, or use --root DIR or --dry-run)",
    );
  }
  const binDir = prefix === "/" ? "/bin" : `${prefix}/bin`;
  const binPath = `${binDir}/aegisbpf`;
  const te = new TextEncoder();
  const dirs: DirSpec[] = [
    { path: "/etc/aegisbpf", mode: 0o755 },
    { path: "/etc/aegisbpf/keys", mode: 0o700 },
    { path: "/etc/aegisbpf/policy", mode: 0o700 },
    { path: "/var/lib/aegisbpf", mode: 0o700 },
  ];
  const parents = [binDir, "/etc/systemd/system"];
  const files: FileSpec[] = [];
  if (opts.launcher) {
    const lib = libDirFor(prefix);
    parents.push(lib);
    files.push(
      { path: binPath, mode: 0o755, bytes: te.encode(launcherScript(prefix)) },
      { path: `${lib}/deno`, mode: 0o755, bytes: opts.launcher.runtime },
      { path: `${lib}/aegisbpf.js`, mode: 0o644, bytes: opts.launcher.bundle },
    );
  } else {
    if (!opts.binary) {
      throw new AegisError("INSTALL_BAD_ARGS", "install needs the binary or a launcher payload");
    }
    files.push({ path: binPath, mode: 0o755, bytes: opts.binary });
  }
  files.push(
    { path: UNIT_PATH, mode: 0o644, bytes: te.encode(unitFor(prefix)) },
    { path: ENV_PATH, mode: 0o600, bytes: te.encode(ENV_TEMPLATE), keep: true },
  );

  const problems: string[] = [];
  for (const p of [...dirs.map((d) => d.path), ...parents, ...files.map((f) => f.path)]) {
    layout.checkNoSymlinks(p, problems);
  }
  layout.checkNoSymlinks(MANIFEST_PATH, problems);
  if (problems.length) throw refusal(problems);
  const old = readManifest(layout);
  const manifest: Manifest = {
    layout_version: LAYOUT_VERSION,
    prefix,
    files: Object.assign(Object.create(null), old?.files ?? {}),
  };

  const changes: Change[] = [];
  const kept: string[] = [];
  const mkdirs: string[] = [];
  // Missing ancestors (e.g. PREFIX/bin, /etc/systemd/system, or all of them
  // in an empty --root) are created 0755; existing ones are left alone.
  const own = new Set(dirs.map((d) => d.path));
  const ancestors = new Set<string>();
  for (const p of [...dirs.map((d) => d.path), ...parents, ...files.map((f) => f.path)]) {
    const parts = p.split("/").filter(Boolean);
    for (let i = 1; i < parts.length; i++) ancestors.add("/" + parts.slice(0, i).join("/"));
  }
  for (const p of parents) ancestors.add(p);
  for (const p of [...ancestors].sort()) {
    if (own.has(p)) continue;
    const st = lstat(layout.at(p));
    if (st === null) {
      mkdirs.push(p);
      changes.push({ action: "mkdir", path: p, mode: "0755", detail: "create directory" });
    } else if (!st.isDirectory) problems.push(`${p} exists and is not a directory`);
  }
  for (const d of dirs) {
    const st = lstat(layout.at(d.path));
    if (st === null) {
      changes.push({ action: "mkdir", path: d.path, mode: modeStr(d.mode), detail: "create" });
      continue;
    }
    if (!st.isDirectory) {
      problems.push(`${d.path} exists and is not a directory`);
      continue;
    }
    if (st.uid !== owner.uid || st.gid !== owner.gid) {
      if (!force) {
        problems.push(
          `${d.path} is owned by ${st.uid}:${st.gid}, not ${owner.uid}:${owner.gid} ` +
            `(check who made it; --force takes it over)`,
        );
      } else {
        changes.push({
          action: "chown",
          path: d.path,
          detail: `owner ${st.uid}:${st.gid} -> ${owner.uid}:${owner.gid}`,
        });
      }
    }
    if ((st.mode! & 0o7777) !== d.mode) {
      changes.push({
        action: "chmod",
        path: d.path,
        mode: modeStr(d.mode),
        detail: `mode ${modeStr(st.mode!)} -> ${modeStr(d.mode)}`,
      });
    }
  }
  const writes: FileSpec[] = [];
  for (const f of files) {
    const want = await sha256Hex(f.bytes);
    const real = layout.at(f.path);
    const st = lstat(real);
    if (st === null) {
      writes.push(f);
      manifest.files[f.path] = want;
      changes.push({ action: "write", path: f.path, mode: modeStr(f.mode), detail: "create" });
      continue;
    }
    if (!st.isFile) {
      problems.push(`${f.path} exists and is not a regular file`);
      continue;
    }
    if (f.keep) {
      kept.push(f.path);
      continue;
    }
    const have = await sha256Hex(Deno.readFileSync(real));
    if (have === want) {
      if (!(f.path in manifest.files)) manifest.files[f.path] = want;
      if ((st.mode! & 0o7777) !== f.mode) {
        changes.push({
          action: "chmod",
          path: f.path,
          mode: modeStr(f.mode),
          detail: `mode ${modeStr(st.mode!)} -> ${modeStr(f.mode)}`,
        });
      }
      continue;
    }
    const ours = manifest.files[f.path] === have;
    if (!ours && !force) {
      problems.push(
        `${f.path} exists with other content and was not written by aegisbpf install ` +
          `(not in ${MANIFEST_PATH} or changed since); move it away or use --force`,
      );
      continue;
    }
    writes.push(f);
    manifest.files[f.path] = want;
    changes.push({
      action: "replace",
      path: f.path,
      mode: modeStr(f.mode),
      detail: ours ? "replace the previously installed version" : "replace (--force)",
    });
  }
  if (old && old.prefix !== prefix && `${old.prefix}/bin/aegisbpf` in manifest.files) {
    problems.push(
      `already installed with --prefix ${old.prefix}; run "aegisbpf uninstall" first to move it`,
    );
  }
  if (problems.length) throw refusal(problems);
  const mBytes = manifestBytes(manifest);
  const mPath = layout.at(MANIFEST_PATH);
  const mOld = lstat(mPath);
  const manifestChanged = mOld === null ||
    (await sha256Hex(Deno.readFileSync(mPath))) !== (await sha256Hex(mBytes));
  if (manifestChanged) {
    changes.push({
      action: "write",
      path: MANIFEST_PATH,
      mode: "0600",
      detail: "record what install made",
    });
  }
  const result: InstallResult = {
    root: layout.root,
    prefix,
    dry_run: dryRun,
    layout_version: LAYOUT_VERSION,
    changes,
    kept,
  };
  if (dryRun) return result;

  for (const p of mkdirs) {
    Deno.mkdirSync(layout.at(p), { mode: 0o755 });
    Deno.chmodSync(layout.at(p), 0o755);
  }
  for (const d of dirs) {
    const real = layout.at(d.path);
    if (lstat(real) === null) Deno.mkdirSync(real, { mode: d.mode });
    Deno.chownSync(real, owner.uid, owner.gid);
    Deno.chmodSync(real, d.mode);
  }
  for (const f of writes) {
    writeFileAtomic(layout.at(f.path), f.bytes, f.mode);
    Deno.chownSync(layout.at(f.path), owner.uid, owner.gid);
  }
  for (const c of changes) {
    if (c.action === "chmod" && files.some((f) => f.path === c.path)) {
      Deno.chmodSync(layout.at(c.path), parseInt(c.mode!, 8));
    }
  }
  if (manifestChanged) writeFileAtomic(mPath, mBytes, 0o600);
  return result;
}

function refusal(problems: string[]): AegisError {
  return new AegisError(
    "INSTALL_REFUSED",
    `install refused, nothing was changed:\n  - ${[...new Set(problems)].join("\n  - ")}`,
  );
}

export interface UninstallFilesResult {
  root: string;
  purge: boolean;
  dry_run: boolean;
  removed: string[];
  kept: string[];
}

/**
 * Remove what install made. Without purge: the binary and the unit (when
 * unchanged since install); /etc/aegisbpf and /var/lib/aegisbpf stay. With
 * purge: also the settings file, /etc/aegisbpf (keys and policy included) and
 * /var/lib/aegisbpf. Files changed since install are kept and named.
 */
export async function uninstallFiles(
  opts: { root?: string; purge?: boolean; dryRun?: boolean },
): Promise<UninstallFilesResult> {
  const layout = new Layout(resolveRoot(opts.root ?? "/"));
  const purge = opts.purge === true;
  const dryRun = opts.dryRun === true;
  const problems: string[] = [];
  const manifest = readManifest(layout);
  const targets = [...Object.keys(manifest?.files ?? {}), ...(purge ? OWN_DIRS : [])];
  for (const p of [...targets, MANIFEST_PATH]) layout.checkNoSymlinks(p, problems);
  if (problems.length) throw refusal(problems);
  const removed: string[] = [];
  const kept: string[] = [];
  const remaining: Record<string, string> = {};
  // Only paths install writes are ever removed, whatever install.json lists.
  const removable = new Set([UNIT_PATH, ENV_PATH]);
  if (manifest) {
    removable.add(`${manifest.prefix === "/" ? "" : manifest.prefix}/bin/aegisbpf`);
    for (const f of LIB_FILES) removable.add(`${libDirFor(manifest.prefix)}/${f}`);
  }
  for (const [p, sha] of Object.entries(manifest?.files ?? {})) {
    if (!removable.has(p)) {
      kept.push(`${p} (listed in ${MANIFEST_PATH} but not a path install writes)`);
      continue;
    }
    const real = layout.at(p);
    const st = lstat(real);
    if (st === null) continue;
    const inOwnDir = OWN_DIRS.some((d) => p.startsWith(d + "/"));
    if (inOwnDir && !purge) {
      remaining[p] = sha;
      continue;
    }
    const same = st.isFile && (await sha256Hex(Deno.readFileSync(real))) === sha;
    if (!same && !(purge && inOwnDir)) {
      kept.push(`${p} (changed since install)`);
      continue;
    }
    if (!dryRun) Deno.removeSync(real);
    removed.push(p);
  }
  // PREFIX/lib/aegisbpf (install --bundle) goes once nothing is left in it.
  if (manifest && !dryRun) {
    const lib = layout.at(libDirFor(manifest.prefix));
    const st = lstat(lib);
    if (st?.isDirectory && [...Deno.readDirSync(lib)].length === 0) Deno.removeSync(lib);
  }
  if (purge) {
    for (const d of OWN_DIRS) {
      if (lstat(layout.at(d)) === null) continue;
      if (!dryRun) Deno.removeSync(layout.at(d), { recursive: true });
      removed.push(d);
    }
  } else if (manifest && !dryRun) {
    writeFileAtomic(
      layout.at(MANIFEST_PATH),
      manifestBytes({ ...manifest, files: remaining }),
      0o600,
    );
  }
  return { root: layout.root, purge, dry_run: dryRun, removed, kept };
}

/**
 * The program install copies: the compiled binary itself. From the
 * development launcher (deno running src/main.ts) there is no single file to
 * install; install refuses and names the command that builds one (or
 * --bundle, below).
 */
export function runningBinary(): Uint8Array<ArrayBuffer> {
  if (!Deno.build.standalone) {
    throw new AegisError(
      "INSTALL_NOT_COMPILED",
      "install copies the running program, and this is the development launcher (deno " +
        "running src/main.ts from a checkout), not the single binary. Build it with " +
        '"deno task compile" and run "dist/aegisbpf install", or install the runtime and ' +
        'a bundle with "install --bundle FILE" (docs/install.md).',
    );
  }
  return Deno.readFileSync(Deno.execPath());
}

/** Largest bundle --bundle accepts (the agent's is ~3 MB). */
const MAX_BUNDLE = 64 * 1024 * 1024;

/**
 * `install --bundle FILE`: the running Deno runtime plus FILE, a `deno bundle`
 * of src/main.ts. Only from the launcher: the compiled binary installs itself.
 */
export function launcherPayload(bundlePath: string): LauncherPayload {
  if (Deno.build.standalone) {
    throw new AegisError(
      "INSTALL_BUNDLE_COMPILED",
      "--bundle installs the Deno runtime and a bundle in place of the single binary; this " +
        "is the single binary, which installs itself: drop --bundle",
    );
  }
  let st: Deno.FileInfo;
  try {
    st = Deno.statSync(bundlePath);
  } catch (e) {
    throw new AegisError(
      "INSTALL_BAD_PATH",
      `--bundle "${bundlePath}" cannot be read: ${(e as Error).message}`,
      { cause: e },
    );
  }
  if (!st.isFile || st.size === 0 || st.size > MAX_BUNDLE) {
    throw new AegisError(
      "INSTALL_BAD_PATH",
      `--bundle "${bundlePath}" is not a regular file of 1 byte to 64 MiB ` +
        '(make it with "deno bundle --platform deno src/main.ts -o FILE")',
    );
  }
  return { runtime: Deno.readFileSync(Deno.execPath()), bundle: Deno.readFileSync(bundlePath) };
}

function printChanges(r: { changes: Change[]; kept: string[]; dry_run: boolean }): void {
  const verb = r.dry_run ? "would" : "did";
  for (const c of r.changes) {
    out(`${verb} ${c.action} ${c.path}${c.mode ? ` (${c.mode})` : ""}: ${c.detail}`);
  }
  for (const k of r.kept) out(`kept ${k} (the operator's settings; never overwritten)`);
}

/**
 * A root process refused a write: the running agent's self-protection (on by
 * default) guards its binary, /etc/aegisbpf and /var/lib/aegisbpf from every
 * other executable. Say so, with the way out; anything else is passed on.
 */
export function refusedWhileArmed(e: unknown, uid: number | null = Deno.uid()): unknown {
  if (!(e instanceof Deno.errors.PermissionDenied) || uid !== 0) return e;
  return new AegisError(
    "INSTALL_WRITE_REFUSED",
    `${e.message}: refused to root, which is what the running agent's self-protection does ` +
      "to every other program writing its binary, /etc/aegisbpf or /var/lib/aegisbpf; stop it " +
      "first (systemctl stop aegisbpf: a clean stop disarms the guards), then install again " +
      '(it completes what this run began; docs/install.md, "Upgrade")',
    { cause: e },
  );
}

export function addInstallCommand(program: Command): void {
  program.command("install")
    .description("install this binary, the systemd unit, /etc/aegisbpf and /var/lib/aegisbpf")
    .option("--prefix <dir>", "install the binary to PREFIX/bin/aegisbpf", "/usr/local")
    .option("--root <dir>", "prefix every path with DIR (packaging, tests)", "/")
    .option("--dry-run", "print every change and make none")
    .option("--force", "replace files and take over directories that install did not make")
    .option(
      "--bundle <file>",
      "from the development launcher: install this Deno runtime and FILE (deno bundle of " +
        "src/main.ts) to PREFIX/lib/aegisbpf, with a wrapper at PREFIX/bin/aegisbpf",
    )
    .option("--json", "machine-readable output")
    .addHelpText(
      "after",
      `
Idempotent: a second run changes nothing and says so. Refuses (changing
nothing) when a path below the root is a symbolic link or a file exists that
install did not write (unless --force). /etc/aegisbpf/aegisbpf.env is never
overwritten once it exists. Afterwards:
  systemctl daemon-reload && systemctl enable --now aegisbpf
See docs/install.md.`,
    )
    .action(async (opts) => {
      const r = await install({
        prefix: opts.prefix,
        root: opts.root,
        ...(opts.bundle !== undefined
          ? { launcher: launcherPayload(opts.bundle) }
          : { binary: runningBinary() }),
        dryRun: opts.dryRun === true,
        force: opts.force === true,
      }).catch((e) => {
        throw refusedWhileArmed(e);
      });
      if (opts.json) return outJson(r);
      printChanges(r);
      if (r.changes.length === 0) {
        out(`nothing to change: aegisbpf is installed as requested under ${r.root}`);
      } else if (r.dry_run) out(`${r.changes.length} changes; none made (--dry-run)`);
      else if (r.changes.some((c) => c.action === "replace")) {
        out(`${r.changes.length} changes made (an upgrade). Apply them with:`);
        out("  systemctl daemon-reload && systemctl restart aegisbpf");
      } else {
        out(`${r.changes.length} changes made. Start it with:`);
        out("  systemctl daemon-reload && systemctl enable --now aegisbpf");
      }
    });
}
