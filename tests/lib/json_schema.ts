/**
 * A small JSON Schema (draft 2020-12) checker for the keywords the C++
 * agent's published schemas use (../shared/reference/aegisbpf-cpp-schemas):
 * type, required, properties, additionalProperties, enum, const, minimum,
 * maximum, minLength, maxLength, pattern, items, $ref into $defs, oneOf.
 * Any other keyword is an error (so a schema it cannot judge is never passed
 * silently). Test-only: our own schemas are zod (src/).
 *
 * `relax.additionalProperties`: accept properties a schema does not list
 * (our own extra fields; the contract tests say so where they use it).
 *
 * @module
 */

// deno-lint-ignore no-explicit-any
type Schema = any;

const ANNOTATIONS = new Set(["$schema", "$id", "title", "description", "examples", "$defs"]);
const KNOWN = new Set([
  ...ANNOTATIONS,
  "type",
  "required",
  "properties",
  "additionalProperties",
  "enum",
  "const",
  "minimum",
  "maximum",
  "minLength",
  "maxLength",
  "pattern",
  "items",
  "$ref",
  "oneOf",
]);

export interface Relax {
  additionalProperties?: boolean;
}

function typeOk(t: string, v: unknown): boolean {
  switch (t) {
    case "object":
      return typeof v === "object" && v !== null && !Array.isArray(v);
    case "array":
      return Array.isArray(v);
    case "string":
      return typeof v === "string";
    case "integer":
      return typeof v === "number" && Number.isInteger(v);
    case "number":
      return typeof v === "number" && Number.isFinite(v);
    case "boolean":
      return typeof v === "boolean";
    case "null":
      return v === null;
  }
  throw new Error(`json_schema: unknown type ${t}`);
}

/** Every violation of `schema` by `value`, as "path: what" lines ([] = valid). */
export function validate(schema: Schema, value: unknown, relax: Relax = {}): string[] {
  const root = schema;
  const errors: string[] = [];
  const walk = (s: Schema, v: unknown, at: string) => {
    if (s === true) return;
    if (s === false) return void errors.push(`${at}: not allowed here`);
    for (const k of Object.keys(s)) {
      if (!KNOWN.has(k)) throw new Error(`json_schema: keyword ${k} at ${at} is not supported`);
    }
    if (s.$ref !== undefined) {
      const m = /^#\/\$defs\/(.+)$/.exec(s.$ref);
      if (!m || !(m[1] in (root.$defs ?? {}))) throw new Error(`json_schema: bad $ref ${s.$ref}`);
      walk(root.$defs[m[1]], v, at);
    }
    if (s.type !== undefined) {
      const types: string[] = Array.isArray(s.type) ? s.type : [s.type];
      if (!types.some((t) => typeOk(t, v))) {
        return void errors.push(`${at}: ${JSON.stringify(v)} is not ${types.join(" or ")}`);
      }
    }
    if (s.const !== undefined && JSON.stringify(v) !== JSON.stringify(s.const)) {
      errors.push(`${at}: ${JSON.stringify(v)} is not ${JSON.stringify(s.const)}`);
    }
    if (
      s.enum !== undefined && !s.enum.some((e: unknown) => JSON.stringify(e) === JSON.stringify(v))
    ) {
      errors.push(`${at}: ${JSON.stringify(v)} is not one of ${JSON.stringify(s.enum)}`);
    }
    if (typeof v === "number") {
      if (s.minimum !== undefined && v < s.minimum) errors.push(`${at}: ${v} < ${s.minimum}`);
      if (s.maximum !== undefined && v > s.maximum) errors.push(`${at}: ${v} > ${s.maximum}`);
    }
    if (typeof v === "string") {
      const n = [...v].length;
      if (s.minLength !== undefined && n < s.minLength) {
        errors.push(`${at}: shorter than ${s.minLength}`);
      }
      if (s.maxLength !== undefined && n > s.maxLength) {
        errors.push(`${at}: longer than ${s.maxLength}`);
      }
      if (s.pattern !== undefined && !new RegExp(s.pattern, "u").test(v)) {
        errors.push(`${at}: ${JSON.stringify(v)} does not match ${s.pattern}`);
      }
    }
    if (Array.isArray(v) && s.items !== undefined) {
      v.forEach((x, i) => walk(s.items, x, `${at}[${i}]`));
    }
    if (typeof v === "object" && v !== null && !Array.isArray(v)) {
      const o = v as Record<string, unknown>;
      for (const r of s.required ?? []) {
        if (!Object.hasOwn(o, r)) errors.push(`${at}: missing ${r}`);
      }
      const props = s.properties ?? {};
      for (const [k, x] of Object.entries(o)) {
        if (Object.hasOwn(props, k)) walk(props[k], x, `${at}.${k}`);
        else if (s.additionalProperties === false && !relax.additionalProperties) {
          errors.push(`${at}: unexpected property ${k}`);
        } else if (typeof s.additionalProperties === "object") {
          walk(s.additionalProperties, x, `${at}.${k}`);
        }
      }
    }
    if (s.oneOf !== undefined) {
      const passing = s.oneOf.filter((alt: Schema) => {
        const sub = validate({ ...alt, $defs: root.$defs }, v, relax);
        return sub.length === 0;
      }).length;
      if (passing !== 1) errors.push(`${at}: matches ${passing} of the oneOf alternatives, not 1`);
    }
  };
  walk(schema, value, "$");
  return errors;
}

/** A schema of ../shared/reference/aegisbpf-cpp-schemas, or null when that folder is not beside the repo. */
export function cppSchema(name: string): Schema | null {
  const url = new URL(`../../../shared/reference/aegisbpf-cpp-schemas/${name}`, import.meta.url);
  try {
    return JSON.parse(Deno.readTextFileSync(url));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}
