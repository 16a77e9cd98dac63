/**
 * `aegisbpf keys keygen|list|add`: Ed25519 signing keys for policy bundles.
 *
 * @module
 */
import type { Command } from "@commander-js/extra-typings";
import { out, outJson, writeStderr } from "../log.ts";
import { addKey, keygen, keysDir, loadTrustedKeys } from "../policy/keys.ts";

export function addKeysCommand(program: Command): void {
  const keys = program.command("keys").description("signing keys for policy bundles");

  keys.command("keygen")
    .description("create PREFIX.key (secret, 0600) and PREFIX.pub; never overwrites")
    .requiredOption("--out <prefix>", "path prefix of the two files")
    .option("--json", "print one JSON object {ok, key_path, pub_path, fingerprint}")
    .action(async (opts) => {
      const r = await keygen(opts.out);
      if (opts.json) {
        return outJson({
          ok: true,
          key_path: r.keyPath,
          pub_path: r.pubPath,
          fingerprint: r.fingerprint,
        });
      }
      out(`wrote ${r.keyPath} (secret: keep it off the agent hosts) and ${r.pubPath}`);
      out(`fingerprint ${r.fingerprint}`);
    });

  keys.command("list")
    .description("list the trusted public keys (fingerprints) and skipped files")
    .option("--json", "machine-readable output")
    .action(async (opts) => {
      const { keys: k, warnings } = await loadTrustedKeys(keysDir());
      for (const w of warnings) writeStderr(`warning: ${w}\n`);
      if (opts.json) return outJson({ dir: keysDir(), fingerprints: [...k.keys()], warnings });
      if (k.size === 0) out(`no trusted keys in ${keysDir()}`);
      for (const fp of k.keys()) out(fp);
    });

  keys.command("add")
    .description("install a public key file into the trusted key folder")
    .argument("<pubfile>")
    .option("--json", "print one JSON object {ok, path, fingerprint, added}")
    .action(async (pubfile, opts) => {
      const r = await addKey(pubfile, keysDir());
      if (opts.json) return outJson({ ok: true, ...r });
      // the one-line JSON this command always printed, kept for scripts that read it
      out(JSON.stringify(r));
    });
}
