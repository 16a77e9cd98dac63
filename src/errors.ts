/**
 * The agent's error classes. Messages say what failed (value quoted), why,
 * and what to do; the errno or code is always kept as a field.
 *
 * @module
 */
import { errnoName } from "./errno.ts";

/** Base class: every aegisbpf error has a stable machine-readable code. */
export class AegisError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A shim call returned -errno. */
export class NativeCallError extends AegisError {
  readonly call: string;
  readonly errno: number;
  readonly errnoName: string;
  /** libbpf log text captured around the call, if any. */
  readonly log: string;
  constructor(call: string, errno: number, detail = "", log = "", options?: ErrorOptions) {
    const name = errnoName(errno);
    super(
      "NATIVE_CALL_FAILED",
      `${call} failed: ${name} (${errno})${detail ? `: ${detail}` : ""}`,
      options,
    );
    this.call = call;
    this.errno = errno;
    this.errnoName = name;
    this.log = log;
  }
}

/** The kernel verifier rejected a program. */
export class VerifierError extends AegisError {
  readonly program: string;
  readonly errno: number;
  readonly logLines: readonly string[];
  constructor(program: string, errno: number, logLines: readonly string[]) {
    const last = logLines.filter((l) => l.trim() !== "").slice(-3).join(" | ");
    super(
      "BPF_VERIFIER_REJECT",
      `The kernel verifier rejected BPF program "${program}" (${errnoName(errno)}): ${last}`,
    );
    this.program = program;
    this.errno = errno;
    this.logLines = logLines;
  }
}

/** Embedded asset or ABI does not match what the build recorded. */
export class AbiMismatchError extends AegisError {
  constructor(message: string, options?: ErrorOptions) {
    super("ABI_MISMATCH", message, options);
  }
}

/** Bad input from a user (CLI argument, file, HTTP body). */
export class UsageError extends AegisError {
  constructor(message: string, options?: ErrorOptions) {
    super("USAGE", message, options);
  }
}
