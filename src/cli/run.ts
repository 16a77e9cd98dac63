/**
 * `aegisbpf run`: the daemon.
 *
 * This version implements the audit path (exec/openat tracepoints streamed
 * as JSON events) and the fail-closed gate on the BPF-LSM fact; kernel
 * enforcement programs are not in this version, so an enforce start that
 * passes the gate still refuses instead of pretending to enforce.
 *
 * @module
 */
import { type Command, Option } from "@commander-js/extra-typings";
import { bpfObjectBytes, openEmbeddedShim } from "../assets/mod.ts";
import { TraceSet } from "../bpf/trace.ts";
import { AegisError } from "../errors.ts";
import { EventDrain } from "../events/drain.ts";
import { recordToEvent } from "../events/json.ts";
import { log, writeStdout } from "../log.ts";
import { probeBpfLsmActive } from "../posture/lsm.ts";
import { hostFs } from "../posture/probe.ts";

const GATE_MODES = ["fail-closed", "audit-fallback"] as const;
type GateMode = (typeof GATE_MODES)[number];

function parseRingBytes(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 4096 || (n & (n - 1)) !== 0) {
    throw new AegisError("USAGE", `--ringbuf-bytes "${v}": must be a power of two >= 4096`);
  }
  return n;
}

export function addRunCommand(program: Command): void {
  program.command("run")
    .description("run the agent daemon (enforce by default; see --audit)")
    .addOption(new Option("--enforce", "enforce rules in the kernel (default)").conflicts("audit"))
    .addOption(new Option("--audit", "observe and report only; deny nothing"))
    .addOption(
      new Option("--enforce-gate-mode <mode>", "what to do when enforcement is impossible")
        .choices(GATE_MODES).env("AEGIS_ENFORCE_GATE_MODE").default("fail-closed" as GateMode),
    )
    .option("--trace-opens", "also report every openat() (busy on a real host)")
    .option("--ringbuf-bytes <bytes>", "event ring buffer size", parseRingBytes, 4 << 20)
    .action(async (opts) => {
      const lg = log("run");
      let audit = opts.audit === true;
      if (!audit) {
        const bpfLsm = await probeBpfLsmActive(hostFs);
        const blocker = bpfLsm.status === "supported"
          ? "kernel enforcement programs are not part of this version of aegisbpf"
          : bpfLsm.status === "unsupported"
          ? `BPF_LSM_DISABLED: ${bpfLsm.reason}`
          : `BPF_LSM_DISABLED: cannot tell whether BPF LSM is active (${bpfLsm.error})`;
        if (opts.enforceGateMode === "fail-closed") {
          throw new AegisError(
            "ENFORCE_GATE",
            `Refusing to start in enforce mode (gate fail-closed): ${blocker}. ` +
              `Use --audit to observe only, or --enforce-gate-mode=audit-fallback to accept a reduced-security posture.`,
          );
        }
        lg.warn("enforce impossible, continuing in AUDIT_FALLBACK: {blocker}", { blocker });
        audit = true;
      }

      using shim = await openEmbeddedShim();
      using trace = TraceSet.load(shim, await bpfObjectBytes(), {
        opens: opts.traceOpens === true,
        ringBytes: opts.ringbufBytes,
      });
      using ring = shim.openRing(trace.eventsFd());
      using drain = new EventDrain(ring, (r) => {
        writeStdout(JSON.stringify(recordToEvent(r)) + "\n");
      });
      lg.info("agent started in audit mode: {programs}", {
        programs: trace.attach.filter((a) => a.status === "attached").map((a) => a.section),
      });
      drain.start();
      await waitForStopSignal();
      drain.stop();
      const c = trace.counters();
      lg.info("agent stopping: {records} records, {drops} ring-buffer drops", {
        records: drain.stats.records,
        drops: c.ringbufDrops.toString(),
      });
    });
}

/** Resolves on SIGINT or SIGTERM. */
function waitForStopSignal(): Promise<void> {
  return new Promise((resolve) => {
    const stop = () => {
      Deno.removeSignalListener("SIGINT", stop);
      Deno.removeSignalListener("SIGTERM", stop);
      resolve();
    };
    Deno.addSignalListener("SIGINT", stop);
    Deno.addSignalListener("SIGTERM", stop);
  });
}
