import { deepStrictEqual as eq, strictEqual } from "node:assert/strict";
import {
  NETWORK_MAPS,
  objectDefinesMaps,
  objectFacts,
  pinFacts,
  REQUIRED_MAPS,
} from "./agent_facts.ts";
import { AGENT_OK } from "./posture_testing.ts";

const elf = (names: readonly string[]) =>
  new TextEncoder().encode(`\x7fELF\0junk\0${names.join("\0")}\0.maps\0`);

Deno.test("objectDefinesMaps: whole NUL-delimited names only", () => {
  strictEqual(objectDefinesMaps(elf(["aegis_deny_ip4_port"]), ["aegis_deny_ip4_port"]), true);
  strictEqual(
    objectDefinesMaps(elf(["aegis_deny_ip4_port"]), ["aegis_deny_ip4"]),
    false,
    "a longer name does not count",
  );
  strictEqual(objectDefinesMaps(elf([]), []), true);
});

Deno.test("objectFacts: a verified object with its maps; a mismatch has no maps to show", () => {
  const bytes = elf([...REQUIRED_MAPS, ...NETWORK_MAPS]);
  eq(objectFacts({ found: true, hashVerified: true, bytes }), AGENT_OK.object);
  const bad = objectFacts({ found: true, hashVerified: false, bytes: null });
  eq([bad.found, bad.hash_verified, bad.required_maps, bad.network_maps], [
    true,
    false,
    false,
    false,
  ]);
  strictEqual(
    objectFacts({ found: true, hashVerified: true, bytes: elf(REQUIRED_MAPS) }).network_maps,
    false,
  );
});

Deno.test("pinFacts: all pinned, none, partly, and pins that cannot be looked at", () => {
  const root = "/sys/fs/bpf/aegisbpf";
  const lstatOf = (present: Set<string>, denied = new Set<string>()) => (p: string) => {
    if (denied.has(p)) throw new Deno.errors.PermissionDenied(p);
    if (!present.has(p)) throw new Deno.errors.NotFound(p);
    return {};
  };
  const all = new Set([...REQUIRED_MAPS, ...NETWORK_MAPS].map((m) => `${root}/maps/${m}`));
  eq(pinFacts(root, lstatOf(all)), { present: true, required: true, network: true });
  eq(pinFacts(root, lstatOf(new Set())), { present: false, required: false, network: false });
  const noNet = new Set(REQUIRED_MAPS.map((m) => `${root}/maps/${m}`));
  eq(pinFacts(root, lstatOf(noNet)), { present: true, required: true, network: false });
  eq(pinFacts(root, lstatOf(new Set(), all)), { present: null, required: null, network: null });
});
