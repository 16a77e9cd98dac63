/**
 * VM tier: `aegisbpf run --self-protect` (bpf/self.bpf.c; docs/security.md,
 * "Self-protection").
 *
 * lsm-on: as root, outside the agent's cgroup, with tools that are not the
 * agent's executable (rm, mv, touch, sh, kill, umount, python3 doing raw
 * bpf() calls; the agent under `deno run` trusts every deno process, so no
 * tamper goes through Deno): every tamper fails with EPERM and writes a
 * tamper_block event naming the actor; a denied file stays denied and read-only
 * map access keeps working; emergency disable turns the guards to report-only
 * and emergency enable back. A clean stop disarms (the pinned switch reads
 * 0, the same tools then succeed). A second start is SIGKILLed: the guards
 * stay armed with no agent, and `aegisbpf uninstall` still removes
 * everything. (That a default start arms the guards and a start with
 * --no-self-protect disarms them is in agent_vmtest.ts.)
 *
 * lsm-off: --self-protect cannot arm (the agent refuses enforce anyway:
 * posture_vmtest.ts); nothing to prove here.
 */
import { deepStrictEqual, match, ok, strictEqual } from "node:assert/strict";
import { openEmbeddedShim } from "../../src/assets/mod.ts";
import { AEGIS_CFG_SELF_PROTECT } from "../../src/bpf/abi_gen.ts";
import { PinnedMaps } from "../../src/bpf/pins.ts";
import { EventLine } from "../../src/events/schema.ts";
import { capsBeyond, keepMask, parseThreadCaps } from "../../src/daemon/caps.ts";
import { cgroup2MountFrom } from "../../src/util/mountinfo.ts";
import { AGENT, Agent, agentEnv, type Json } from "../lib/agent.ts";
import { eventually, run, tryOpen } from "../lib/helpers.ts";

const LSM_ON = Deno.env.get("AEGIS_VM_LSM") === "on";

/** Raw bpf() and ptrace calls, so that the actor is python3, not deno. */
const PY = `
import ctypes, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
NR_BPF = 321
def bpf(cmd, attr):
    buf = ctypes.create_string_buffer(attr, 128)
    r = libc.syscall(NR_BPF, cmd, buf, 128)
    return r if r >= 0 else -ctypes.get_errno()
def out(r):
    print("ok" if r >= 0 else "err %d" % -r)
op = sys.argv[1]
if op == "objget":  # BPF_OBJ_GET path flags
    p = ctypes.create_string_buffer(sys.argv[2].encode())
    out(bpf(7, struct.pack("=QII", ctypes.addressof(p), 0, int(sys.argv[3]))))
elif op == "mapbyid":  # BPF_MAP_GET_FD_BY_ID id flags
    out(bpf(14, struct.pack("=III", int(sys.argv[2]), 0, int(sys.argv[3]))))
elif op == "linkbyid":  # BPF_LINK_GET_FD_BY_ID id
    out(bpf(30, struct.pack("=III", int(sys.argv[2]), 0, 0)))
elif op == "ptrace":  # PTRACE_SEIZE pid
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    r = libc.ptrace(0x4206, int(sys.argv[2]), None, None)
    out(r if r >= 0 else -ctypes.get_errno())
elif op == "umount":
    libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
    r = libc.umount2(sys.argv[2].encode(), 0)
    out(r if r >= 0 else -ctypes.get_errno())
elif op == "truncate":
    try:
        os.truncate(sys.argv[2], 0); print("ok")
    except OSError as e:
        print("err %d" % e.errno)
`;
const BPF_F_RDONLY = 8;
const EPERM = "err 1";

/** A command that is not deno: "ok", "EPERM", or what else happened. */
async function attempt(cmd: string, args: string[]): Promise<string> {
  const r = await run(cmd, args);
  if (r.code === 0) return "ok";
  if (/Operation not permitted/.test(r.stderr)) return "EPERM";
  return `code ${r.code}: ${r.stderr.trim()}`;
}

async function py(py: string, args: string[]): Promise<string> {
  const r = await run("/usr/bin/python3", [py, ...args]);
  strictEqual(r.code, 0, r.stderr);
  return r.stdout.trim();
}

/** umount2("/sys/fs/bpf"); should it ever succeed, bpffs is mounted again for the next tests. */
async function umountBpffs(script: string): Promise<string> {
  const r = await py(script, ["umount", "/sys/fs/bpf"]);
  if (r === "ok") await run("mount", ["-t", "bpf", "bpf", "/sys/fs/bpf"]);
  return r;
}

function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** The pinned switch and a map/link id, read by the test (deno: trusted, read-only use). */
async function pinned(root: string): Promise<{ armed: bigint; mapId: number; linkId: number }> {
  using shim = await openEmbeddedShim();
  using pins = new PinnedMaps(shim, root);
  const armed = pins.map("aegis_config").sumU64(AEGIS_CFG_SELF_PROTECT);
  const mapId = shim.objId(pins.map("aegis_deny_inode").fd);
  const fd = shim.getPinned(`${root}/links/aegis_file_open`);
  try {
    return { armed, mapId, linkId: shim.objId(fd) };
  } finally {
    shim.closeFd(fd);
  }
}

Deno.test({
  name:
    "run --self-protect: root outside the agent gets EPERM and a tamper_block for each tamper; " +
    "a clean stop disarms; after a SIGKILL the guards hold and uninstall still works" +
    (LSM_ON ? "" : " (SKIPPED here: the guards are BPF LSM programs; without bpf in lsm= " +
      "the enforce start is refused, posture_vmtest.ts)"),
  ignore: !LSM_ON,
  fn: async () => {
    const e = agentEnv();
    const { dir, pinRoot: root, stateDir } = e;
    const etc = `${dir}/etc`;
    Deno.mkdirSync(`${etc}/keys`, { recursive: true });
    Deno.writeTextFileSync(`${etc}/keys/k.pub`, "key\n");
    const env = { ...e.env, AEGIS_ETC_DIR: etc, AEGIS_KEYS_DIR: `${etc}/keys` };
    const script = `${dir}/tamper.py`;
    Deno.writeTextFileSync(script, PY);
    const denied = `${dir}/denied`;
    Deno.writeTextFileSync(denied, "secret");
    let agent = new Agent(["--self-protect"], env);
    try {
      await agent.ready();
      match(agent.err, /self-protection armed: \d+ inodes, \d+ maps, \d+ links guarded/);
      strictEqual((await run(AGENT, ["block", "add", denied], env)).code, 0);
      strictEqual(tryOpen(denied), "EPERM/EACCES");
      const pid = agent.proc.pid;
      const cgPath = Deno.readTextFileSync(`/proc/${pid}/cgroup`).trim().split("::")[1];
      const cgroup = `${cgroup2MountFrom(Deno.readTextFileSync("/proc/self/mountinfo"))}${cgPath}`;
      ok(cgroup.endsWith("/aegisbpf.agent"), cgroup);
      const stateFile = [...Deno.readDirSync(stateDir)].find((f) => f.isFile)!.name;
      const outside = `${dir}/outside`; // on the state directory's file system, not guarded
      Deno.writeTextFileSync(outside, "x");
      const ids = await pinned(root);
      strictEqual(ids.armed, 1n, "armed in the pinned config map");

      // [what, result, op, guard] for each tamper, in order
      const tampers: [string, string, string, string][] = [
        [
          "rm link pin",
          await attempt("rm", ["-f", `${root}/links/aegis_file_open`]),
          "unlink",
          "link_pin",
        ],
        ["rm -rf pin root", await attempt("rm", ["-rf", root]), "unlink", "pin_dir"],
        [
          "mv map pin",
          await attempt("mv", [`${root}/maps/aegis_deny_inode`, `${root}/x`]),
          "rename",
          "pin_dir",
        ],
        ["rmdir links/", await attempt("rmdir", [`${root}/links`]), "rmdir", "pin_dir"],
        ["umount bpffs", await umountBpffs(script), "umount", "pin_fs"],
        [
          "map pin RDWR",
          await py(script, ["objget", `${root}/maps/aegis_deny_inode`, "0"]),
          "map_write",
          "map",
        ],
        ["map id RDWR", await py(script, ["mapbyid", `${ids.mapId}`, "0"]), "map_write", "map"],
        [
          "link pin open",
          await py(script, ["objget", `${root}/links/aegis_file_open`, "0"]),
          "link_fd",
          "link_pin",
        ],
        ["link id", await py(script, ["linkbyid", `${ids.linkId}`]), "link_fd", "link"],
        [
          "state write",
          await attempt("sh", ["-c", `echo x > ${stateDir}/${stateFile}`]),
          "write",
          "state_dir",
        ],
        [
          "state truncate(2)",
          await py(script, ["truncate", `${stateDir}/${stateFile}`]),
          "truncate",
          "state_dir",
        ],
        [
          "state rm",
          await attempt("rm", ["-f", `${stateDir}/${stateFile}`]),
          "unlink",
          "state_dir",
        ],
        [
          "state mv",
          await attempt("mv", [`${stateDir}/${stateFile}`, `${dir}/moved`]),
          "rename",
          "state_dir",
        ],
        ["state create", await attempt("touch", [`${stateDir}/new`]), "create", "state_dir"],
        [
          "state symlink",
          await attempt("ln", ["-s", "/etc/passwd", `${stateDir}/sym`]),
          "create",
          "state_dir",
        ],
        [
          "state hard link in",
          await attempt("ln", [outside, `${stateDir}/linked`]),
          "create",
          "state_dir",
        ],
        [
          "state hard link out",
          await attempt("ln", [`${stateDir}/${stateFile}`, `${dir}/second-name`]),
          "create",
          "state_dir",
        ],
        ["control socket rm", await attempt("rm", ["-f", e.socket]), "unlink", "run_dir"],
        [
          "key add",
          await attempt("sh", ["-c", `echo evil > ${etc}/keys/evil.pub`]),
          "create",
          "config_dir",
        ],
        ["key rm", await attempt("rm", ["-f", `${etc}/keys/k.pub`]), "unlink", "config_dir"],
        [
          "join agent cgroup",
          await attempt("sh", ["-c", `echo $$ > ${cgroup}/cgroup.procs`]),
          "write",
          "cgroup_dir",
        ],
        [
          "cgroup.kill",
          await attempt("sh", ["-c", `echo 1 > ${cgroup}/cgroup.kill`]),
          "write",
          "cgroup_dir",
        ],
        ["rmdir agent cgroup", await attempt("rmdir", [cgroup]), "rmdir", "cgroup_dir"],
        ["ptrace", await py(script, ["ptrace", `${pid}`]), "ptrace", "agent"],
        ["SIGTERM", await attempt("kill", ["-TERM", `${pid}`]), "signal", "agent"],
        ["SIGKILL", await attempt("kill", ["-KILL", `${pid}`]), "signal", "agent"],
        ["SIGSTOP", await attempt("kill", ["-STOP", `${pid}`]), "signal", "agent"],
        ["SIGUSR1", await attempt("kill", ["-USR1", `${pid}`]), "signal", "agent"],
      ];
      for (const [what, result] of tampers) {
        ok(result === "EPERM" || result === EPERM, `${what}: ${result}`);
      }
      // read-only access still works: bpftool map show/dump, status
      strictEqual(
        await py(script, ["objget", `${root}/maps/aegis_deny_inode`, `${BPF_F_RDONLY}`]),
        "ok",
        "a read-only fd of a pinned map",
      );
      strictEqual(await py(script, ["mapbyid", `${ids.mapId}`, `${BPF_F_RDONLY}`]), "ok");
      if (exists("/usr/sbin/bpftool")) {
        const show = await run("/usr/sbin/bpftool", [
          "map",
          "dump",
          "pinned",
          `${root}/maps/aegis_deny_inode`,
        ]);
        // bpftool 7.1 asks for a read-write fd: refused, and said so
        ok(show.code === 0 || /Operation not permitted/.test(show.stderr), show.stderr);
        const detach = await run("/usr/sbin/bpftool", [
          "link",
          "detach",
          "pinned",
          `${root}/links/aegis_file_open`,
        ]);
        ok(detach.code !== 0 && /Operation not permitted/.test(detach.stderr), detach.stderr);
      }
      // (without bpftool on the host the raw bpf() calls above stand for it)

      // enforcement and the agent are intact
      strictEqual(agent.exited, null, "the agent still runs");
      for (const p of ["links/aegis_file_open", "maps/aegis_deny_inode"]) {
        ok(exists(`${root}/${p}`), p);
      }
      ok(exists(`${stateDir}/${stateFile}`) && exists(`${etc}/keys/k.pub`) && exists(e.socket));
      ok(!exists(`${etc}/keys/evil.pub`) && !exists(`${stateDir}/new`));
      ok(
        !exists(`${stateDir}/sym`) && !exists(`${stateDir}/linked`) &&
          !exists(`${dir}/second-name`),
      );
      ok(exists(cgroup), "the agent's cgroup is still there");
      strictEqual(tryOpen(denied), "EPERM/EACCES", "the rule still denies");

      // one tamper_block event per refusal, naming the actor
      for (const [what, , op, guard] of tampers) {
        await agent.event(
          (ev) => ev.type === "tamper_block" && ev.op === op && ev.guard === guard,
          what,
        );
      }
      const tamperEvents = agent.events().filter((ev: Json) => ev.type === "tamper_block");
      for (const ev of tamperEvents) {
        EventLine.parse(ev);
        strictEqual(ev.action, "BLOCK");
        strictEqual(ev.uid, 0);
        ok(ev.pid !== pid && ev.cgid !== undefined && !/deno/.test(ev.comm), JSON.stringify(ev));
      }
      const sig = tamperEvents.filter((ev: Json) => ev.op === "signal").map((ev: Json) =>
        ev.detail
      );
      deepStrictEqual([...new Set(sig)].sort((a, b) => a - b), [9, 10, 15, 19]);
      ok(tamperEvents.some((ev: Json) => ev.comm === "rm" && ev.name === "aegis_file_open"));
      // that many refusals within a minute are an attack in progress: DEGRADED (TAMPER_ATTEMPTS),
      // and the readiness check says so (the guards held: the rule above still denies)
      const degraded = await agent.event(
        (ev) => ev.type === "state_change" && ev.reason_code === "TAMPER_ATTEMPTS",
        "the posture degraded by the tamper attempts",
      );
      strictEqual(degraded.to, "DEGRADED");
      match(degraded.detail, /\d+ tamper attempts on the agent refused in the last 60 s/);
      const health = await run(AGENT, ["health", "--require-enforce", "--json"], env);
      strictEqual(health.code, 1, `health --require-enforce while under attack: ${health.stdout}`);
      strictEqual(JSON.parse(health.stdout).runtime_state, "DEGRADED");
      const report = JSON.parse(Deno.readTextFileSync(e.report));
      strictEqual(report.self_protection.armed, true);
      ok(report.self_protection.guarded_links > 0 && report.self_protection.guarded_maps > 0);
      // user-space hardening on this kernel: every thread of the agent runs under the seccomp
      // filter with no_new_privs and holds only the kept capabilities, as the report says
      strictEqual(
        report.self_protection.seccomp.installed,
        true,
        report.self_protection.seccomp.detail,
      );
      strictEqual(
        report.self_protection.capabilities.limited,
        true,
        report.self_protection.capabilities.detail,
      );
      const keep = keepMask();
      for (const t of Deno.readDirSync(`/proc/${pid}/task`)) {
        const st = Deno.readTextFileSync(`/proc/${pid}/task/${t.name}/status`);
        match(st, /^Seccomp:\s+2$/m, `thread ${t.name}`);
        match(st, /^NoNewPrivs:\s+1$/m, `thread ${t.name}`);
        deepStrictEqual(capsBeyond([parseThreadCaps(t.name, st)!], keep), [], `thread ${t.name}`);
      }
      const metrics = await run(AGENT, ["metrics", "--detailed"], env);
      match(metrics.stdout, /aegisbpf_tamper_blocks_total\{action="block"\} [1-9]/);
      match(
        metrics.stdout,
        /aegisbpf_hook_blocks_total\{action="block",hook="self_inode_unlink"\} [1-9]/,
      );

      // the emergency path works while armed; under emergency disable the guards only report
      const dis = await run(AGENT, ["emergency-disable", "--reason", "self-protect VM test"], env);
      strictEqual(dis.code, 0, dis.stderr);
      strictEqual(await attempt("touch", [`${stateDir}/audited`]), "ok", "reported, not refused");
      await agent.event(
        (ev) => ev.type === "tamper_block" && ev.action === "AUDIT" && ev.name === "audited",
        "an AUDIT tamper_block under emergency disable",
      );
      const en = await run(AGENT, ["emergency-enable", "--reason", "self-protect VM test"], env);
      strictEqual(en.code, 0, en.stderr);
      strictEqual(await attempt("rm", ["-f", `${stateDir}/audited`]), "EPERM", "refused again");

      // a clean stop (SIGTERM from the test: deno, the agent's executable) disarms
      strictEqual((await agent.stop("SIGTERM")).code, 0, agent.err);
      match(agent.err, /self-protection disarmed/);
      strictEqual((await pinned(root)).armed, 0n, "disarmed in the pinned config map");
      strictEqual(await attempt("touch", [`${stateDir}/new`]), "ok", "no guard after a clean stop");
      strictEqual(tryOpen(denied), "EPERM/EACCES", "the pins still enforce");

      // armed again, then SIGKILL: the guards hold with no agent; uninstall still works
      agent = new Agent(["--self-protect"], env);
      await agent.ready();
      match(agent.err, /self-protection armed/);
      strictEqual((await agent.stop("SIGKILL")).signal, "SIGKILL");
      strictEqual((await pinned(root)).armed, 1n, "still armed after SIGKILL");
      strictEqual(await attempt("rm", ["-f", `${root}/links/aegis_file_open`]), "EPERM");
      strictEqual(await attempt("rm", ["-f", `${stateDir}/new`]), "EPERM");
      const un = await run(AGENT, ["uninstall"], env);
      strictEqual(un.code, 0, un.stderr);
      match(un.stdout, /links\/aegis_self_unlink/);
      ok(!exists(root), "nothing left pinned");
      strictEqual(await eventually(() => tryOpen(denied)), "ok", "enforcement ended");
      // the kernel frees the unpinned links from a work queue: the guards go a moment later
      let rm = "";
      for (let i = 0; i < 50 && rm !== "ok"; i++) {
        if (i > 0) await new Promise((r) => setTimeout(r, 100));
        rm = await attempt("rm", ["-f", `${stateDir}/new`]);
      }
      strictEqual(rm, "ok", "no guard left armed");
    } finally {
      try {
        agent.proc.kill("SIGKILL");
      } catch { /* already gone */ }
      await run(AGENT, ["uninstall"], env);
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
