/**
 * The stored desired state in the state directory (docs/engine.md, "Pins
 * and restarts"): `policy.applied` (the body now applied), `policy.prev`,
 * `policy.sha256` (the commit point), the signed bundle a body came from
 * (`policy.bundle-<sha256>`) and the anti-rollback counter; read back and
 * checked again at start.
 *
 * @module
 */
import { AegisError } from "../errors.ts";
import { writeFileAtomic } from "./atomic.ts";
import { isBundle, verifyAppliedBundle } from "./bundle.ts";
import { parsePolicy, type ParseResult } from "./parse.ts";
import { sha256Hex } from "../util/bytes.ts";

/** Who signed the bundle a policy came from. */
export interface BundleSigner {
  policy_version: number;
  signer: string;
}

/** `policy.applied`: the body applied now. */
/** `policy.applied`: the body of the applied policy. */
export function appliedFile(stateDir: string): string {
  return `${stateDir}/policy.applied`;
}

/** `policy.applied` parsed, with the SHA-256 of the very bytes parsed. */
export interface AppliedParse {
  file: string;
  sha: string;
  result: ParseResult;
}

/**
 * The applied policy parsed as it is at the daemon's start, before the
 * engine: the map sizes come from it, and the restore takes it instead of
 * parsing again when the body it checked has the same SHA-256
 * (restoreAppliedPolicy). Null when none was applied or it cannot be read.
 */
export async function parseAppliedPolicy(stateDir: string): Promise<AppliedParse | null> {
  const file = appliedFile(stateDir);
  let bytes: Uint8Array;
  try {
    bytes = Deno.readFileSync(file);
  } catch {
    return null;
  }
  return { file, sha: await sha256Hex(new Uint8Array(bytes)), result: parsePolicy(bytes, file) };
}

/** The policy (or bundle) was refused; `issues` are "file:line: error: …" lines. */
export class PolicyRejectedError extends AegisError {
  readonly issues: string[];
  constructor(code: string, message: string, issues: string[] = []) {
    super(code, message);
    this.issues = issues;
  }
}

/** Anti-rollback counter of signed bundles. */
export function counterPath(stateDir: string): string {
  return `${stateDir}/policy_version.json`;
}

/** The signed bundle a body was applied from: `policy.bundle-<body sha256>`. */
export function bundleFileFor(stateDir: string, bodySha: string): string {
  return `${stateDir}/policy.bundle-${bodySha}`;
}

/** `policy.sha256`: the SHA-256 of the applied body, written last by an apply (the commit point). */
function recordedShaFile(stateDir: string): string {
  return `${stateDir}/policy.sha256`;
}

/**
 * What `policy.sha256` records, trimmed but otherwise as written (an apply
 * writes 64 lower-case hex); null when it cannot be read (none applied yet,
 * older state). No format check: each caller judges the value itself.
 */
export function readRecordedSha(stateDir: string): string | null {
  try {
    return Deno.readTextFileSync(recordedShaFile(stateDir)).trim();
  } catch {
    return null;
  }
}

/**
 * policy.applied (now), policy.prev (before), policy.sha256; 0600 in a 0700
 * dir. A body applied from a signed bundle also keeps that bundle, named by
 * the body's hash, so the restore at start can check the signature again.
 * policy.sha256 is written last: it is the commit point (a bundle file of a
 * body that never got there is ignored and removed by the next apply).
 */
export function keepSnapshots(
  stateDir: string,
  body: Uint8Array,
  sha: string,
  bundle: Uint8Array | null = null,
): void {
  Deno.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  try {
    const prev = Deno.readFileSync(appliedFile(stateDir));
    writeFileAtomic(`${stateDir}/policy.prev`, prev, 0o600);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const keep = bundleFileFor(stateDir, sha);
  if (bundle) writeFileAtomic(keep, bundle, 0o600);
  writeFileAtomic(appliedFile(stateDir), body, 0o600);
  writeFileAtomic(recordedShaFile(stateDir), new TextEncoder().encode(`${sha}\n`), 0o600);
  for (const e of Deno.readDirSync(stateDir)) {
    const path = `${stateDir}/${e.name}`;
    if (e.name.startsWith("policy.bundle-") && (path !== keep || !bundle)) Deno.removeSync(path);
  }
}

/**
 * Undo an apply that was killed between writing policy.applied and its
 * commit point (policy.sha256): the new body then sits beside the old
 * record, and the restore at start would refuse both. The commit never
 * happened, so the previous body, which keepSnapshots saved to policy.prev
 * first, is the applied one: it is put back. Only that exact state is
 * repaired (the body disagrees with the record and policy.prev agrees);
 * anything else is left for readAppliedPolicy to refuse. Returns what was
 * done, for the log, or null. Called before anything reads the store: at
 * agent start and at the start of every apply.
 */
export async function repairInterruptedApply(stateDir: string): Promise<string | null> {
  const recorded = readRecordedSha(stateDir)?.toLowerCase();
  if (!recorded) return null;
  let body: Uint8Array, prev: Uint8Array;
  try {
    body = Deno.readFileSync(appliedFile(stateDir));
    prev = Deno.readFileSync(`${stateDir}/policy.prev`);
  } catch {
    return null;
  }
  if ((await sha256Hex(new Uint8Array(body))) === recorded) return null;
  if ((await sha256Hex(new Uint8Array(prev))) !== recorded) return null;
  writeFileAtomic(appliedFile(stateDir), prev, 0o600);
  return `an apply was interrupted before its commit point (${recordedShaFile(stateDir)} ` +
    `still records ${recorded}): ${appliedFile(stateDir)} is the previous policy again`;
}

/**
 * Whether `bytes` (a policy file or a signed bundle) is what is applied
 * now: the same plain file, or the very bundle the applied body came from.
 * With `requireSignature`, a plain file equal to the applied body is not
 * "the same" (it must come as a bundle).
 */
export async function isAppliedPolicy(
  stateDir: string,
  bytes: Uint8Array,
  requireSignature: boolean,
): Promise<boolean> {
  // compared with our own lower-case hex: the record's case does not matter
  const recorded = readRecordedSha(stateDir)?.toLowerCase();
  if (recorded === undefined) return false;
  if (!isBundle(bytes)) {
    return !requireSignature && (await sha256Hex(new Uint8Array(bytes))) === recorded;
  }
  try {
    const kept = Deno.readFileSync(bundleFileFor(stateDir, recorded));
    return kept.length === bytes.length && kept.every((b, i) => b === bytes[i]);
  } catch {
    return false;
  }
}

/**
 * The stored policy's body, checked: against policy.sha256 and, when it was
 * applied from a signed bundle, that bundle's signature, trusted key and
 * counter again (verifyAppliedBundle). Throws POLICY_RESTORE_FAILED.
 */
export async function readAppliedPolicy(
  stateDir: string,
  keys: { dir: string; ownerUid?: number },
  requireSignature: boolean,
): Promise<
  {
    file: string;
    body: Uint8Array;
    sha: string;
    signed: BundleSigner | null;
    warnings: string[];
  } | null
> {
  const file = appliedFile(stateDir);
  const refuse = (why: string, issues: string[] = []) =>
    new PolicyRejectedError("POLICY_RESTORE_FAILED", why, issues);
  let body: Uint8Array;
  try {
    body = Deno.readFileSync(file);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw refuse(`cannot read the applied policy ${file}: ${e instanceof Error ? e.message : e}`);
  }
  const sha = await sha256Hex(new Uint8Array(body));
  // compared with our own lower-case hex: the record's case does not matter
  const recorded = readRecordedSha(stateDir)?.toLowerCase() ?? null;
  if (recorded !== sha) {
    throw refuse(
      `${file} has SHA-256 ${sha} but ${recordedShaFile(stateDir)} records ${
        recorded === null ? "nothing" : recorded
      }: the stored policy was changed or damaged since it was applied; apply a good policy ` +
        `again (aegisbpf policy apply)`,
    );
  }
  const bundleFile = bundleFileFor(stateDir, sha);
  let bundle: Uint8Array | null = null;
  try {
    bundle = Deno.readFileSync(bundleFile);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) {
      throw refuse(`cannot read ${bundleFile}: ${e instanceof Error ? e.message : e}`);
    }
  }
  if (!bundle) {
    if (requireSignature) {
      throw refuse(
        `${file} was applied from a plain policy file, not a signed bundle, and ` +
          `--require-signature was given: apply a signed bundle`,
      );
    }
    return { file, body, sha, signed: null, warnings: [] };
  }
  const { result, warnings } = await verifyAppliedBundle(bundle, {
    keysDir: keys.dir,
    ownerUid: keys.ownerUid ?? 0,
    counterPath: counterPath(stateDir),
  });
  if (!result.ok) {
    throw refuse(`the bundle ${bundleFile} the policy was applied from: ${result.message}`);
  }
  if ((await sha256Hex(new Uint8Array(result.body))) !== sha) {
    throw refuse(`${bundleFile} does not hold the body of ${file}`);
  }
  return {
    file,
    body,
    sha,
    signed: { policy_version: result.policyVersion, signer: result.signer },
    warnings,
  };
}
