/**
 * `aegisbpf version [--json]`: what this binary is made of.
 *
 * @module
 */
import type { Command } from "@commander-js/extra-typings";
import { BUILD, EMBEDDED, openEmbeddedShim } from "../assets/mod.ts";
import { out, outJson } from "../log.ts";

export interface VersionInfo {
  agent_version: string;
  deno: string;
  v8: string;
  typescript: string;
  libbpf_version: string;
  libbpf_version_source: "shim" | "build-manifest";
  /** Debian source package version libbpf was built from. */
  libbpf_source_version: string;
  abi: { version: number; fingerprint: string };
  bpf_object: { file: string; sha256: string };
  shim: {
    file: string;
    sha256: string;
    build_id: string;
    loaded: boolean;
    loaded_from?: string;
    error?: string;
  };
}

/** Collect version facts; loads the embedded shim to ask it (if allowed). */
export async function versionInfo(): Promise<VersionInfo> {
  const info: VersionInfo = {
    agent_version: BUILD.agentVersion,
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    typescript: Deno.version.typescript,
    libbpf_version: BUILD.libbpfVersion,
    libbpf_version_source: "build-manifest",
    libbpf_source_version: BUILD.libbpfVersion,
    abi: { version: BUILD.abiVersion, fingerprint: BUILD.abiFingerprint },
    bpf_object: { ...EMBEDDED.bpfObject },
    shim: {
      file: EMBEDDED.shim.file,
      sha256: EMBEDDED.shim.sha256,
      build_id: EMBEDDED.shim.buildId,
      loaded: false,
    },
  };
  try {
    using shim = await openEmbeddedShim();
    info.libbpf_version = shim.libbpfVersion();
    info.libbpf_version_source = "shim";
    info.shim.loaded = true;
    info.shim.loaded_from = shim.loadedPath();
  } catch (e) {
    info.shim.error = e instanceof Error ? e.message : String(e);
  }
  return info;
}

export function addVersionCommand(program: Command): void {
  program.command("version")
    .description("print the agent, runtime, libbpf and embedded-artifact versions")
    .option("--json", "machine-readable output")
    .action(async (opts) => {
      const v = await versionInfo();
      if (opts.json) return outJson(v);
      out(`aegisbpf ${v.agent_version}`);
      out(`  deno ${v.deno}, v8 ${v.v8}, typescript ${v.typescript}`);
      out(
        `  libbpf ${v.libbpf_version} (${v.libbpf_version_source}; built from ${v.libbpf_source_version})`,
      );
      out(`  abi v${v.abi.version} ${v.abi.fingerprint}`);
      out(`  bpf object ${v.bpf_object.file} sha256 ${v.bpf_object.sha256}`);
      out(`  shim ${v.shim.file} sha256 ${v.shim.sha256}`);
      out(
        v.shim.loaded
          ? `  shim loaded from ${v.shim.loaded_from}`
          : `  shim not loaded: ${v.shim.error}`,
      );
    });
}
