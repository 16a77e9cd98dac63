/**
 * VM tier: exec identity by the daemon's content scan, where the kernel
 * gives no content (docs/engine.md "The content scan"). The agent runs with
 * bpf_ima_file_hash hidden from its view of the kernel's BTF
 * (AEGIS_TEST_HIDE_HOOKS, tests/lib/agent_main.ts): what it does on a kernel
 * without the helper — the three exec-hash programs are not loaded, the
 * identity source is "scan". A [deny_binary_hash] policy with [scan_paths]
 * applied on the control socket then:
 *  - finds the file in the scanned directory: exec, open, a hard link and
 *    `ld.so FILE` are refused (an inode rule: file_open and bprm_check);
 *  - reports it: block event with rule_type hash, the digest, identity_source
 *    scan and the hash line; capabilities source "scan", content_scan counts,
 *    ENFORCE, health 200;
 *  - denies a copy written into the scanned directory later (the watch);
 *  - does NOT deny a copy outside the scanned directories (the documented
 *    limit of this source: with IMA every copy is denied, exec_hash_vmtest).
 * On both lsm-on kernels.
 */
import { deepStrictEqual, match, ok, strictEqual } from "node:assert/strict";
import { CapabilitiesReport } from "../../src/posture/report.ts";
import { daemonRequest } from "../../src/control/client.ts";
import { encodeBase64 } from "../../src/util/bytes.ts";
import { Agent, agentEnv, cleanupAgent, httpGet, waitUntil } from "../lib/agent.ts";
import { gcc, sha256, wordProgram } from "../lib/exec_hash_testing.ts";
import { LOADER } from "../lib/exec_vm.ts";

const LSM_ON = Deno.env.get("AEGIS_VM_LSM") === "on";

/** "ok" when the program ran and printed `word`, else the errno name (or its output). */
function tryRun(path: string, word: string, via?: string): string {
  try {
    const o = new Deno.Command(via ?? path, { args: via ? [path] : [] }).outputSync();
    const out = new TextDecoder().decode(o.stdout).trim();
    if (out === word) return "ok";
    return `${out} ${new TextDecoder().decode(o.stderr).trim()}`.trim();
  } catch (e) {
    if (e instanceof Deno.errors.PermissionDenied) return "EPERM";
    throw e;
  }
}

function tryRead(path: string): string {
  try {
    Deno.readFileSync(path);
    return "ok";
  } catch (e) {
    if (e instanceof Deno.errors.PermissionDenied) return "EPERM";
    throw e;
  }
}

Deno.test({
  name:
    "content scan (kernel without bpf_ima_file_hash): a denied content in a scanned directory is refused by inode; reported with identity_source scan; a later copy there too; a copy elsewhere is not covered",
  ignore: !LSM_ON,
  fn: async () => {
    const e = agentEnv({ AEGIS_TEST_HIDE_HOOKS: "bpf_ima_file_hash" });
    const scanDir = `${e.dir}/sbin`;
    const elsewhere = `${e.dir}/elsewhere`;
    Deno.mkdirSync(scanDir);
    Deno.mkdirSync(elsewhere);
    // a content of its own (the run's directory in the word): denying it denies nothing else
    const word = `scan-denied-${e.dir.split("-").pop()}`;
    gcc(wordProgram(word), `${scanDir}/tool`, ["-static"]);
    const sha = await sha256(`${scanDir}/tool`);
    Deno.copyFileSync(`${scanDir}/tool`, `${elsewhere}/tool`);
    strictEqual(tryRun(`${scanDir}/tool`, word), "ok", "runs before the policy");
    let a: Agent | null = null;
    try {
      a = new Agent([], e.env);
      await a.ready();
      const before = CapabilitiesReport.parse(JSON.parse(Deno.readTextFileSync(e.report)));
      strictEqual(before.exec_identity.source, "scan", JSON.stringify(before.exec_identity));
      match(before.exec_identity.source_detail ?? "", /bpf_ima_file_hash/);
      strictEqual(before.hook_details.lsm_bprm_ima_check.attached, false);
      match(a.err, /no bpf_ima_file_hash/, "the start log says why the exec-hash programs are out");

      const text = `version=3\n[deny_binary_hash]\nsha256:${sha}\n[scan_paths]\n${scanDir}\n`;
      const r = await daemonRequest("POST", "/policy/apply", {
        file: `${e.dir}/scan.conf`,
        policy_b64: encodeBase64(new TextEncoder().encode(text)),
      }, e.socket);
      ok(r, "the daemon answers on its control socket");
      strictEqual(r.status, 200, JSON.stringify(r.body).slice(0, 2000));
      const scan = (r.body as { content_scan?: { matches: { path: string; line: number }[] } })
        .content_scan;
      deepStrictEqual(scan?.matches.map((m) => [m.path, m.line]), [[`${scanDir}/tool`, 3]]);

      // the inode is denied under every route
      strictEqual(tryRun(`${scanDir}/tool`, word), "EPERM", "exec");
      strictEqual(tryRead(`${scanDir}/tool`), "EPERM", "open (a copy needs to read it)");
      Deno.linkSync(`${scanDir}/tool`, `${e.dir}/hardlink`);
      strictEqual(tryRun(`${e.dir}/hardlink`, word), "EPERM", "a hard link: the same inode");
      notOk(tryRun(`${scanDir}/tool`, word, LOADER), "ld.so FILE");
      const ev = await a.event(
        (x) => x.type === "block" && x.sha256 === sha,
        "the block event named as the hash rule",
      );
      strictEqual(ev.rule_type, "hash");
      strictEqual(ev.identity_source, "scan");
      strictEqual(ev.rule_id, 3, "the [deny_binary_hash] line");
      ok(["file_open", "bprm_check_security"].includes(ev.hook), ev.hook);
      ok([`${scanDir}/tool`, `${e.dir}/hardlink`].includes(ev.path), ev.path);

      const rep = CapabilitiesReport.parse(JSON.parse(Deno.readTextFileSync(e.report)));
      strictEqual(rep.runtime_state, "ENFORCE", a.err.slice(-2000));
      strictEqual(rep.requirements_met.exec_identity, true);
      deepStrictEqual(rep.enforce_blockers, []);
      strictEqual(rep.exec_identity.content_scan?.matches, 1);
      ok((rep.exec_identity.content_scan?.files_hashed ?? 0) >= 1);
      deepStrictEqual(rep.exec_identity.content_scan?.dirs.at(-1), scanDir);
      strictEqual((await httpGet(e.port, "/health?require_enforce=1")).status, 200);

      // a copy written into the scanned directory after the apply: denied once written
      const t0 = Date.now();
      Deno.copyFileSync(`${elsewhere}/tool`, `${scanDir}/later`);
      await waitUntil(
        () => tryRead(`${scanDir}/later`) === "EPERM",
        "the later copy denied",
        30_000,
      );
      strictEqual(tryRun(`${scanDir}/later`, word), "EPERM");
      await a.waitFor(
        () => a!.err.includes(`${scanDir}/later appeared with a denied content`),
        "the log line of the watch",
      );
      // to the cell's results folder (the TAP reporter hides stderr)
      const times = `${Deno.env.get("AEGIS_VM_RESULTS") ?? e.dir}/exec_scan_vmtest.times`;
      Deno.writeTextFileSync(times, `copy written to denied: ${Date.now() - t0} ms\n`, {
        append: true,
      });
      // the limit of this source: a copy outside the scanned directories runs
      strictEqual(tryRun(`${elsewhere}/tool`, word), "ok", "not scanned: not denied (docs)");
    } finally {
      await cleanupAgent(a, e);
    }
  },
});

function notOk(result: string, what: string): void {
  ok(result !== "ok", `${what}: ran (${result})`);
}
