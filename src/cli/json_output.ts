/**
 * The JSON the CLI prints with `--json` for the commands whose output is
 * defined here (docs/cli.md, "JSON output"): one object per invocation on
 * stdout, snake_case fields, `ok` first. A failure is {@link JsonFailure}
 * whatever the command. The tests parse real output with these schemas
 * (strict: a field added here is a field documented here).
 *
 * @module
 */
import { z } from "zod";
import { PolicyIssue } from "../policy/model.ts";

/** Any command given `--json` that fails: exit code 1, 2, 3 as without --json. */
export const JsonFailure = z.object({
  ok: z.literal(false),
  error: z.object({
    /** stable machine-readable code, e.g. USAGE, POLICY_INVALID, NOT_RUNNING */
    code: z.string(),
    message: z.string(),
    /** structured details when the error has them (policy errors: the issues) */
    details: z.unknown().optional(),
  }).strict(),
}).strict();
export type JsonFailure = z.infer<typeof JsonFailure>;

/** `details` of a POLICY_INVALID failure: every error and warning, with file and line. */
export const PolicyIssuesDetails = z.object({
  errors: z.array(PolicyIssue),
  warnings: z.array(PolicyIssue),
}).strict();

/** What `policy validate` and `policy lint` both report of the file they read. */
const PolicyFileJson = z.object({
  ok: z.literal(true),
  file: z.string(),
  /** the policy's `version=` */
  version: z.number().int(),
  warnings: z.array(PolicyIssue),
});

/** `policy validate --json` */
export const PolicyValidateJson = PolicyFileJson.extend({
  /** with --verbose: the policy in canonical form */
  canonical: z.string().optional(),
}).strict();

/** `policy lint --json` */
export const PolicyLintJson = PolicyFileJson.extend({
  /** with --fix: where the canonical form was written; else null */
  wrote: z.string().nullable(),
}).strict();

/** `policy export --json` */
export const PolicyExportJson = z.object({
  ok: z.literal(true),
  /** the state-directory snapshot read (policy.applied) */
  file: z.string(),
  version: z.number().int(),
  /** the applied policy in canonical form */
  policy: z.string(),
}).strict();

/** `policy verify --json` */
export const PolicyVerifyJson = z.object({
  ok: z.literal(true),
  file: z.string(),
  /** fingerprint of the trusted key that signed it */
  signer: z.string(),
  /** the bundle's anti-rollback counter */
  policy_version: z.number().int(),
  /** the policy's `version=` */
  version: z.number().int(),
  /** bundle warnings (e.g. the anti-rollback counter could not be read) */
  bundle_warnings: z.array(z.string()),
  warnings: z.array(PolicyIssue),
}).strict();

/** `policy sign --json` */
export const PolicySignJson = z.object({
  ok: z.literal(true),
  file: z.string(),
  /** where the bundle was written */
  out: z.string(),
  policy_version: z.number().int(),
  /** unix seconds */
  timestamp: z.number().int(),
  /** unix seconds */
  expires: z.number().int(),
  expires_in_s: z.number().int(),
  /** the signer's public key (hex), as in the bundle header */
  signer_key: z.string(),
  policy_sha256: z.string(),
}).strict();

/** `keys keygen --json` */
export const KeygenJson = z.object({
  ok: z.literal(true),
  /** the secret key (mode 0600): keep it off the agent hosts */
  key_path: z.string(),
  pub_path: z.string(),
  fingerprint: z.string(),
}).strict();

/** `keys add --json` */
export const KeyAddJson = z.object({
  ok: z.literal(true),
  path: z.string(),
  fingerprint: z.string(),
  /** false: the same key was installed already */
  added: z.boolean(),
}).strict();

/** `break-glass token --json` */
export const BreakGlassTokenJson = z.object({
  ok: z.literal(true),
  node: z.string(),
  out: z.string(),
  /** unix seconds */
  not_before: z.number().int(),
  expires_at: z.number().int(),
}).strict();

/** Each output above by its command, for the shipped JSON Schema (build/gen_cli_schemas.ts). */
export const CLI_JSON_OUTPUTS = {
  "failure": JsonFailure,
  "policy validate": PolicyValidateJson,
  "policy lint": PolicyLintJson,
  "policy export": PolicyExportJson,
  "policy verify": PolicyVerifyJson,
  "policy sign": PolicySignJson,
  "keys keygen": KeygenJson,
  "keys add": KeyAddJson,
  "break-glass token": BreakGlassTokenJson,
} as const;
