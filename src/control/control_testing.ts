/**
 * Helpers for the control tests: a fake kernel flag and a private temp
 * state directory (owner read from the directory itself, so the tests run
 * as any user and without --allow-sys).
 *
 * @module
 */
import type { EmergencyFlag } from "./emergency.ts";

/** An in-memory emergency flag that records every set(). */
export class FakeFlag implements EmergencyFlag {
  value = false;
  sets: boolean[] = [];
  failSet = false;
  get(): boolean {
    return this.value;
  }
  set(on: boolean): void {
    if (this.failSet) throw new Error("map update failed (test)");
    this.sets.push(on);
    this.value = on;
  }
}

/** A fresh 0700 temp dir and its owner uid. */
export function privateTempDir(prefix = "aegis-ctl-"): { dir: string; owner: number } {
  const dir = Deno.makeTempDirSync({ prefix });
  Deno.chmodSync(dir, 0o700);
  return { dir, owner: Deno.statSync(dir).uid! };
}
