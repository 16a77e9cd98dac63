import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { AegisError } from "../errors.ts";
import { eventFilePerms, octal, parseLogFileGroup, parseLogFileMode } from "./file_perms.ts";

/** A usage error whose message names `option` and matches `what`. */
function usage(option: string, what: RegExp) {
  return (e: unknown) =>
    e instanceof AegisError && e.code === "USAGE" && e.message.includes(option) &&
    what.test(e.message);
}

Deno.test("--log-file-mode: 0600, 0640, 0660 (and 0620) in any octal spelling", () => {
  for (const [v, m] of [["0600", 0o600], ["640", 0o640], ["0o660", 0o660], ["0620", 0o620]]) {
    strictEqual(parseLogFileMode(v as string), m, String(v));
  }
  strictEqual(parseLogFileMode(" 0640 "), 0o640);
  strictEqual(octal(0o640), "0640");
  strictEqual(octal(0o100600), "0600");
});

Deno.test("--log-file-mode: wider than 0660, world bits, setuid, exec, no owner write: refused, naming the option", () => {
  const cases: [string, RegExp][] = [
    ["0644", /others may not read/],
    ["0604", /others may not read/],
    ["0666", /world-writable/],
    ["0602", /world-writable/],
    ["0777", /world-writable/],
    ["4640", /setuid/],
    ["2640", /setuid, setgid/],
    ["1640", /sticky/],
    ["0700", /execute/],
    ["0650", /execute/],
    ["0440", /owner .* read and write/],
    ["0060", /owner/],
    ["0400", /owner/],
    ["640x", /not an octal mode/],
    ["0800", /not an octal mode/],
    ["", /not an octal mode/],
    ["-0640", /not an octal mode/],
    ["0x1a0", /not an octal mode/],
    ["0640 0600", /not an octal mode/],
    ["064", /others may not read/],
  ];
  for (const [v, what] of cases) {
    throws(() => parseLogFileMode(v), usage(`--log-file-mode "${v}"`, what), JSON.stringify(v));
  }
});

Deno.test("--log-file-group: a name from the group file, or a numeric gid; unknown refused", () => {
  const dir = Deno.makeTempDirSync({ prefix: "aegis-groups-" });
  try {
    const groups = `${dir}/group`;
    Deno.writeTextFileSync(
      groups,
      "root:x:0:\nadm:x:4:syslog\n# a comment\nbroken\naegisbpf-log:x:998:vector,fluent-bit\n" +
        "machine$:x:1001:\n",
    );
    strictEqual(parseLogFileGroup("aegisbpf-log", groups), 998);
    strictEqual(parseLogFileGroup("adm", groups), 4);
    strictEqual(parseLogFileGroup("machine$", groups), 1001);
    strictEqual(parseLogFileGroup("0", groups), 0);
    strictEqual(parseLogFileGroup("4294967294", groups), 4294967294);
    strictEqual(parseLogFileGroup("12345", groups), 12345, "a gid only NSS knows");
    throws(
      () => parseLogFileGroup("shippers", groups),
      usage('--log-file-group "shippers"', /no such group in .*groupadd/),
    );
    // a prefix or a member name is not the group
    throws(() => parseLogFileGroup("aegisbpf", groups), usage("--log-file-group", /no such/));
    throws(() => parseLogFileGroup("vector", groups), usage("--log-file-group", /no such/));
    for (const bad of ["4294967295", "99999999999999999999"]) {
      throws(() => parseLogFileGroup(bad, groups), usage("--log-file-group", /out of range/));
    }
    for (const bad of ["", "a:b", "../etc", "-1", "x y", "a\nroot", "g".repeat(40)]) {
      throws(
        () => parseLogFileGroup(bad, groups),
        usage("--log-file-group", /not a group name/),
        JSON.stringify(bad),
      );
    }
    throws(
      () => parseLogFileGroup("adm", `${dir}/missing`),
      usage("--log-file-group", /cannot read .*numeric gid/),
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("event file perms: only for file sinks; a group needs group bits; default 0600, group untouched", () => {
  deepStrictEqual(eventFilePerms(true, undefined, undefined), { mode: 0o600, gid: null });
  deepStrictEqual(eventFilePerms(false, undefined, undefined), { mode: 0o600, gid: null });
  deepStrictEqual(eventFilePerms(true, 0o640, 998), { mode: 0o640, gid: 998 });
  deepStrictEqual(eventFilePerms(true, 0o640, undefined), { mode: 0o640, gid: null });
  throws(() => eventFilePerms(false, 0o640, undefined), usage("--log-file-mode", /file:PATH/));
  throws(() => eventFilePerms(false, undefined, 4), usage("--log-file-group", /file:PATH/));
  throws(
    () => eventFilePerms(true, undefined, 998),
    usage("--log-file-group", /gives the group nothing.*0640/),
  );
  throws(() => eventFilePerms(true, 0o600, 998), usage("--log-file-group", /nothing/));
});
