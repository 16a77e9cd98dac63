/**
 * The agent with test faults injected: the shipped CLI (src/cli/mod.ts)
 * whose `run` passes DaemonOptions.faults read from AEGIS_TEST_* here, in
 * test code (the shipped agent reads none of them; src/imports_test.ts).
 *
 *   AEGIS_TEST_HIDE_HOOKS=a,b     LSM hooks (file_open, ...) or BTF functions
 *                                 (bpf_ima_file_hash) treated as absent from BTF
 *   AEGIS_TEST_FAIL_ATTACH=s1,s2  program sections treated as failed to attach
 *   AEGIS_TEST_ASSUME_BPF_LSM=1   "bpf" treated as an active LSM
 *
 * Started by tests/lib/agent.ts whenever an agent's environment names one.
 *
 * @module
 */
import { main } from "../../src/cli/mod.ts";
import { type Faults, runDaemon } from "../../src/daemon/daemon.ts";

function list(name: string): Set<string> {
  return new Set(
    (Deno.env.get(name) ?? "").split(",").map((s) => s.trim()).filter((s) => s !== ""),
  );
}

export function faultsFromEnv(): Faults {
  return {
    hideHooks: list("AEGIS_TEST_HIDE_HOOKS"),
    failAttach: list("AEGIS_TEST_FAIL_ATTACH"),
    assumeBpfLsm: Deno.env.get("AEGIS_TEST_ASSUME_BPF_LSM") === "1",
  };
}

if (import.meta.main) {
  const faults = faultsFromEnv();
  Deno.exit(await main(Deno.args, { runDaemon: (o) => runDaemon({ ...o, faults }) }));
}
