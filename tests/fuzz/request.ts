/**
 * The fuzz inputs of the HTTP targets: a request as text, close to the wire
 * form so byte mutations make plausible requests.
 *
 *   POST /policy/apply
 *   content-type: application/json
 *
 *   {"file": "p.conf", "policy_b64": "..."}
 *
 * Line 1 is method and request target; header lines follow up to an empty
 * line; the rest is the body (bytes, kept as they are).
 *
 * @module
 */
import { decodeBase64, encodeBase64 } from "../../src/util/bytes.ts";
import { concat, DICTIONARY, mutate, type Rng } from "./lib.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
/** Origin of every fuzzed request (never contacted: app.request has no network). */
const ORIGIN = "http://127.0.0.1:8080";

export interface RequestParts {
  method: string;
  target: string;
  headers: [string, string][];
  body: Uint8Array;
}

/** Split an input into its parts (never fails). */
export function splitRequest(input: Uint8Array): RequestParts {
  let headEnd = -1;
  for (let i = 0; i + 1 < input.length; i++) {
    if (input[i] === 0x0a && input[i + 1] === 0x0a) {
      headEnd = i;
      break;
    }
  }
  const head = dec.decode(headEnd < 0 ? input : input.subarray(0, headEnd));
  const body = headEnd < 0 ? new Uint8Array() : input.slice(headEnd + 2);
  const [first = "", ...rest] = head.split("\n");
  const sp = first.indexOf(" ");
  const method = sp < 0 ? first : first.slice(0, sp);
  const target = sp < 0 ? "/" : first.slice(sp + 1);
  const headers: [string, string][] = [];
  for (const l of rest) {
    const c = l.indexOf(":");
    if (c > 0) headers.push([l.slice(0, c).trim(), l.slice(c + 1).trim()]);
  }
  return { method, target, headers, body };
}

export function joinRequest(p: RequestParts): Uint8Array {
  const head = [`${p.method} ${p.target}`, ...p.headers.map(([k, v]) => `${k}: ${v}`)].join("\n");
  return concat(enc.encode(head + "\n\n"), p.body);
}

/**
 * The Request an input stands for, or null when no HTTP server could hand
 * such a request to the app (a method or header value the Request
 * constructor refuses: hyper refuses those on the wire too).
 */
export function toRequest(input: Uint8Array): Request | null {
  const p = splitRequest(input);
  const target = p.target.startsWith("/") ? p.target : `/${p.target}`;
  const method = p.method === "" ? "GET" : p.method;
  const bodyless = /^(GET|HEAD)$/i.test(method);
  try {
    const headers = new Headers();
    for (const [k, v] of p.headers) headers.append(k, v);
    return new Request(ORIGIN + target, {
      method,
      headers,
      body: bodyless || p.body.length === 0 ? undefined : new Uint8Array(p.body),
    });
  } catch (e) {
    if (e instanceof TypeError) return null;
    throw e;
  }
}

/** Interesting JSON values to put anywhere in a body. */
function jsonValue(rng: Rng): unknown {
  switch (rng.int(12)) {
    case 0:
      return rng.pick(DICTIONARY);
    case 1:
      return rng.pick([0, -1, 1.5, 1e308, -1e308, 2 ** 53 + 2, 65536, 4294967296, 86400 * 400]);
    case 2:
      return null;
    case 3:
      return rng.oneIn(2);
    case 4:
      return [];
    case 5:
      return {};
    case 6:
      return JSON.parse('{"__proto__": {"polluted": 1}, "constructor": {"prototype": {}}}');
    case 7: {
      let v: unknown = 1;
      for (let i = 0, n = 10 + rng.int(200); i < n; i++) v = rng.oneIn(2) ? [v] : { a: v };
      return v;
    }
    case 8:
      return "x".repeat(rng.int(70000));
    case 9:
      return "\0\r\n\uFEFF\u{1F600}\uD800";
    case 10:
      return rng.pick(["ip", "cidr", "port", "ip_port", "path", "cgroup", "tcp", "bind"]);
    default:
      return rng.pick(["10.0.0.1", "::1", "10.0.0.0/8", "1.2.3.4:80", "/etc/shadow", "cgid:1"]);
  }
}

/** Replace or add one member somewhere in a parsed JSON value. */
function mutateJson(rng: Rng, v: unknown, depth = 0): unknown {
  if (depth > 4 || v === null || typeof v !== "object" || rng.oneIn(4)) return jsonValue(rng);
  if (Array.isArray(v)) {
    const o = v.slice();
    if (o.length === 0 || rng.oneIn(3)) o.push(jsonValue(rng));
    else {
      const i = rng.int(o.length);
      o[i] = mutateJson(rng, o[i], depth + 1);
    }
    return o;
  }
  const o: Record<string, unknown> = { ...(v as Record<string, unknown>) };
  const keys = Object.keys(o);
  if (keys.length === 0 || rng.oneIn(4)) {
    o[rng.pick(["__proto__", "constructor", "toString", "extra", "rule", "kind", "reason"])] =
      jsonValue(rng);
  } else if (rng.oneIn(6)) {
    delete o[rng.pick(keys)];
  } else {
    const k = rng.pick(keys);
    o[k] = mutateJson(rng, o[k], depth + 1);
  }
  return o;
}

/**
 * Structure-aware mutation of a request: the JSON body (a value anywhere,
 * or the policy inside `policy_b64` mutated as bytes), a header, the
 * method or the target.
 */
export function mutateRequest(rng: Rng, input: Uint8Array, policySeeds: Uint8Array[]): Uint8Array {
  const p = splitRequest(input);
  switch (rng.int(6)) {
    case 0:
    case 1:
    case 2: {
      let v: unknown;
      try {
        v = JSON.parse(dec.decode(p.body));
      } catch {
        return mutate(rng, input, []);
      }
      const o = v as Record<string, unknown>;
      if (o && typeof o === "object" && typeof o.policy_b64 === "string" && rng.oneIn(2)) {
        let bytes: Uint8Array;
        try {
          bytes = decodeBase64(o.policy_b64);
        } catch {
          bytes = rng.pick(policySeeds) ?? new Uint8Array();
        }
        for (let i = 0, n = 1 + rng.int(4); i < n; i++) bytes = mutate(rng, bytes, policySeeds);
        v = { ...o, policy_b64: encodeBase64(bytes) };
      } else {
        v = mutateJson(rng, v);
      }
      p.body = enc.encode(JSON.stringify(v) ?? "");
      break;
    }
    case 3:
      p.method = rng.pick(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"]);
      break;
    case 4: {
      const names = [
        "content-length",
        "content-type",
        "transfer-encoding",
        "host",
        "x-aegis-caller-uid",
      ];
      const values = ["0", "-1", "99999999999999999999", "1e3", "text/plain", "chunked", "\u00e9"];
      p.headers.push([rng.pick(names), rng.pick(values)]);
      break;
    }
    default: {
      const extras = [
        "?group=block",
        "?group=constructor",
        "?detailed=1",
        "/..",
        "%2e%2e/",
        "//",
        "?a=%zz",
      ];
      p.target = rng.oneIn(2) ? p.target + rng.pick(extras) : rng.pick(extras) + p.target;
    }
  }
  return joinRequest(p);
}
