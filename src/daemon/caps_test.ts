import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import {
  CAPABILITY_BITS,
  capabilityNames,
  capsBeyond,
  keepMask,
  KEPT_CAPABILITIES,
  limitCapabilities,
  parseThreadCaps,
  type ThreadCaps,
} from "./caps.ts";

const STATUS = `Name:\tdeno
CapInh:\t0000000000000000
CapPrm:\t000001ffffffffff
CapEff:\t000001ffffffffff
CapBnd:\t000001ffffffffff
CapAmb:\t0000000000000000
NoNewPrivs:\t1
`;

Deno.test("caps: the kept set names real capabilities, each with its reason; names and masks agree", () => {
  const keep = keepMask();
  strictEqual(capabilityNames(keep).length, Object.keys(KEPT_CAPABILITIES).length);
  for (const [name, why] of Object.entries(KEPT_CAPABILITIES)) {
    ok(name in CAPABILITY_BITS, name);
    ok(why.length > 10, `${name} has a reason`);
  }
  // what a root daemon must never keep once started
  for (const no of ["CAP_SETUID", "CAP_SETPCAP", "CAP_SYS_RAWIO", "CAP_SYS_BOOT", "CAP_NET_RAW"]) {
    strictEqual((keep >> BigInt(CAPABILITY_BITS[no])) & 1n, 0n, no);
  }
  deepStrictEqual(capabilityNames(0b101n), ["CAP_CHOWN", "CAP_DAC_READ_SEARCH"]);
  strictEqual(Object.values(CAPABILITY_BITS).length, 41, "0..40, CAP_CHECKPOINT_RESTORE last");
});

Deno.test("caps: a status file's sets parse; a thread holding more than kept is named with the extra ones", () => {
  const t = parseThreadCaps("42", STATUS)!;
  strictEqual(t.eff, 0x1ffffffffffn);
  strictEqual(t.bnd, 0x1ffffffffffn);
  strictEqual(parseThreadCaps("1", "Name:\tx\n"), null);
  const keep = keepMask(["CAP_BPF", "CAP_SYS_ADMIN"]);
  const lean: ThreadCaps = { tid: "43", eff: keep, prm: keep, bnd: keep, amb: 0n, inh: 0n };
  deepStrictEqual(capsBeyond([lean], keep), []);
  const bounding = { ...lean, tid: "44", bnd: keep | (1n << 7n) };
  deepStrictEqual(capsBeyond([lean, bounding], keep), ["thread 44: CAP_SETUID"]);
});

Deno.test("caps: limited only when the kernel's sets, read back, hold nothing more; a refusal or a straggler is reported", () => {
  const keep = keepMask();
  const full: ThreadCaps = {
    tid: "1",
    eff: 0x1ffffffffffn,
    prm: 0x1ffffffffffn,
    bnd: 0x1ffffffffffn,
    amb: 0n,
    inh: 0n,
  };
  const lean: ThreadCaps = { tid: "1", eff: keep, prm: keep, bnd: keep, amb: 0n, inh: 0n };
  let reads = 0;
  const asked: bigint[] = [];
  const r = limitCapabilities({
    shim: { capsLimit: (k) => (asked.push(k), 7) },
    read: () => (reads++ === 0 ? [full] : [lean, { ...lean, tid: "2" }]),
  }, true);
  strictEqual(r.limited, true, r.detail);
  strictEqual(r.threads, 7);
  deepStrictEqual(asked, [keep]);
  ok(r.dropped.includes("CAP_SETUID") && !r.dropped.includes("CAP_BPF"), r.dropped.join());
  ok(r.kept.includes("CAP_BPF") && r.kept.length === Object.keys(KEPT_CAPABILITIES).length);

  const straggler = limitCapabilities({
    shim: { capsLimit: () => 2 },
    read: () => [lean, { ...lean, tid: "9", eff: keep | 1n << 22n }],
  }, true);
  strictEqual(straggler.limited, false);
  ok(straggler.detail.includes("thread 9: CAP_SYS_BOOT"), straggler.detail);

  const refused = limitCapabilities({
    shim: {
      capsLimit: () => {
        throw new Error("aegis_caps_limit failed: ETIMEDOUT (110)");
      },
    },
    read: () => [full],
  }, true);
  strictEqual(refused.limited, false);
  strictEqual(refused.detail, "not limited: aegis_caps_limit failed: ETIMEDOUT (110)");

  const off = limitCapabilities({
    shim: {
      capsLimit: () => {
        throw new Error("never called");
      },
    },
    read: () => [full],
  }, false);
  deepStrictEqual(off, {
    limited: false,
    kept: [],
    dropped: [],
    threads: 0,
    detail: "run --no-drop-caps",
  });
});
