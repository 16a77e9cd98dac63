/**
 * The file and exec decisions, replayed (src/policy/decide.ts): the file
 * hooks' aegis_inode_match (bpf/lib/inode.h), bprm_check_security's
 * binary and comm checks (bpf/exec.bpf.c) and the content checks of
 * bpf/exec_hash.bpf.c (deny_binary_hash, allow_binary_hash).
 *
 * @module
 */
import type { ReplayEvent } from "./event_input.ts";
import { inodeId, type RuleRef, type RuleSet, type RuleVal } from "./ruleset.ts";
import {
  agentOrAllowCgroup,
  allowCgroup,
  type Ask,
  cgRule,
  Chain,
  describe,
  enforced,
  type Facts,
  noMatch,
  type Run,
} from "./decide_steps.ts";

/** The file decision (bpf/lib/inode.h, aegis_inode_match) on an inode; null inode: an exec event. */
export function fileDecision(
  rs: RuleSet,
  ev: ReplayEvent & { surface: "file" | "exec" },
  hook: string,
  facts: Facts,
  ask: Ask,
  c: Chain,
): Run | null {
  if (!rs.hasFileRules) {
    c.add(
      "file rules",
      "skipped",
      "the policy has no file rules: the hook allows without a lookup",
    );
    return null;
  }
  let r: RuleVal | null = null;
  let ruleType = "inode";
  let cr: RuleVal | null = null;
  if (ev.ino === null || ev.dev === null) {
    const any = ask("binary rule", {
      unknown: "an exec event carries no inode or path of the binary; the policy has file rules",
    });
    c.add(
      "deny/protect inode",
      "unknown",
      "the event does not say which file was executed: an inode rule " +
        (any ? "is assumed to match" : "is assumed not to match"),
    );
    if (any) {
      return {
        outcome: "block",
        rule: null,
        ruleType: "inode",
        exemptBy: null,
        hook,
        chain: c.steps,
      };
    }
  } else {
    const key = inodeId(ev.dev, ev.ino);
    let v = rs.inodes.get(key) ?? null;
    if (!v && ev.path !== null) {
      const byPath = rs.paths.get(ev.path);
      if (byPath) {
        const same = ask("path identity", {
          unknown: `the rule names the path ${ev.path}, which does not resolve here to the ` +
            `event's file ${key}: whether it named that file when the event happened is unknown`,
        });
        if (same) {
          v = byPath;
          ruleType = "path";
        }
      }
    }
    r = enforced(v, ask, facts);
    if (v && !r) {
      c.add(
        "deny/protect inode",
        "no_match",
        `${describe(v.ref)} is protect-only and the task is verified`,
        v.ref,
      );
    } else if (r) {
      c.add(
        "deny/protect inode",
        "match",
        `${ruleType === "path" ? "by path " : ""}${key}: ${describe(r.ref)}` +
          (r.deny ? "" : " (protect: the task is not verified)"),
        r.ref,
      );
    } else c.add("deny/protect inode", "no_match", `no global rule on ${key}`);
    if (rs.hasCgroupRules) {
      cr = enforced(cgRule(rs.cgInodes.get(key), ev, ask), ask, facts);
      c.add(
        "cgroup-scoped inode",
        cr ? "match" : "no_match",
        cr ? describe(cr.ref) : `no cgroup_deny_inode rule on ${key} for this cgroup`,
        cr?.ref,
      );
    }
  }
  if (!r && !cr) return null;
  if (ask("survival", facts.survival)) {
    c.add("survival allowlist", "exempt", "the file is on the survival allowlist: allowed");
    const w = (r ?? cr)!;
    return {
      outcome: "allow",
      rule: w.ref,
      ruleType,
      exemptBy: "survival",
      hook,
      chain: c.steps,
    };
  }
  c.add("survival allowlist", "not_exempt", "not on the survival allowlist");
  if (ask("agent", facts.agent)) {
    c.add("agent cgroup", "exempt", "the agent's own cgroup: no rule applies");
    return {
      outcome: "allow",
      rule: (r ?? cr)!.ref,
      ruleType,
      exemptBy: "agent",
      hook,
      chain: c.steps,
    };
  }
  c.add("agent cgroup", "not_exempt", "not the agent");
  if (r) {
    const a = allowCgroup(rs, ev, ask);
    if (!a) {
      c.add("allow_cgroup", "not_exempt", "not in an allowed cgroup");
      return { outcome: "block", rule: r.ref, ruleType, exemptBy: null, hook, chain: c.steps };
    }
    c.add("allow_cgroup", "exempt", `waives the global rule: ${describe(a)}`, a);
    if (!cr) {
      return {
        outcome: "allow",
        rule: r.ref,
        ruleType,
        exemptBy: "allow_cgroup",
        hook,
        chain: c.steps,
      };
    }
  }
  return {
    outcome: "block",
    rule: cr!.ref,
    ruleType: "cg_inode",
    exemptBy: null,
    hook,
    chain: c.steps,
  };
}

/** The digest of a hash block record whose file had no SHA-256 (unknown identity). */
export const NO_SHA256 = "0".repeat(64);

/** Hooks of an executable mapping of a file by content (bpf/exec_hash.bpf.c). */
export const MAPPING_HASH_HOOKS: ReadonlySet<string> = new Set([
  "mmap_file_hash",
  "file_mprotect_hash",
]);

/** kbasename(filename) cut to TASK_COMM_LEN - 1 = 15 bytes (begin_new_exec). */
export function commOf(filename: string): string {
  const base = filename.slice(filename.lastIndexOf("/") + 1);
  const bytes = new TextEncoder().encode(base);
  if (bytes.length <= 15) return base;
  return new TextDecoder().decode(bytes.subarray(0, 15));
}

/** A list of contents that alone may run (allow_binary_hash, trusted_exec_hash). */
interface ContentList {
  step: string;
  fact: "allowlisted" | "trusted";
  /** "on the allowlist" / "trusted", after "not " */
  on: string;
  ruleType: string;
  ref: RuleRef;
  hashes: Map<string, RuleRef>;
  /** a file with no SHA-256 is denied */
  failClosed: boolean;
}

/** The content lists of the rules, in the kernel's order (lib/exec_identity.h). */
function contentLists(rs: RuleSet): ContentList[] {
  const out: ContentList[] = [];
  if (rs.allowlist) {
    out.push({
      step: "allow_binary_hash",
      fact: "allowlisted",
      on: "on the allowlist",
      ruleType: "hash_allowlist",
      ref: rs.allowlist,
      hashes: rs.allowHashes,
      failClosed: true,
    });
  }
  if (rs.trusted) {
    out.push({
      step: "trusted_exec_hash",
      fact: "trusted",
      on: "trusted",
      ruleType: "hash_trusted",
      ref: rs.trusted,
      hashes: rs.trustedHashes,
      failClosed: rs.imaFailClosed,
    });
  }
  return out;
}

export function execDecision(
  rs: RuleSet,
  ev: ReplayEvent & { surface: "exec" },
  facts: Facts,
  ask: Ask,
): Run {
  const c = new Chain();
  // the exec opens the binary first: the file hook decides before bprm_check
  const f = fileDecision(rs, ev, "file_open", facts, ask, c);
  if (f && f.outcome === "block") {
    c.add("exec", "skipped", "the open of the binary is denied first (file_open)");
    return f;
  }
  let hook = ev.hook === "exec" ? "bprm_check_security" : ev.hook;
  const hashes = rs.hashes.size > 0;
  if (!rs.hasFileRules && !rs.hasCommRules && !hashes && !rs.allowlist && !rs.trusted) {
    c.add(
      "exec rules",
      "skipped",
      "no file, comm or hash rules: bprm_check allows without a lookup",
    );
    return noMatch(hook, c);
  }
  let r: RuleVal | null = null;
  let ruleType = "inode";
  if (!rs.hasFileRules && !rs.hasCommRules) {
    c.add("exec rules", "skipped", "no file or comm rules");
  } else if (ev.ino !== null && ev.dev !== null) {
    const v = rs.inodes.get(inodeId(ev.dev, ev.ino));
    if (v?.deny) r = v;
    c.add(
      "binary inode",
      r ? "match" : "no_match",
      r
        ? describe(r.ref)
        : v
        ? `${describe(v.ref)} is protect-only (not checked at exec)`
        : "no deny rule on the binary",
      r?.ref,
    );
  } else if (f === null && rs.hasFileRules) {
    // fileDecision asked "binary rule" already and it was false in this branch
    c.add("binary inode", "no_match", "assumed (the event carries no inode)");
  }
  // an executable mapping (ld.so, dlopen) is not an exec: no new comm
  const mapping = MAPPING_HASH_HOOKS.has(ev.hook);
  if (!r && rs.hasCommRules && !mapping) {
    let comm: string | null = null;
    if (ev.hook === "exec") comm = ev.comm;
    else if (ev.path !== null) comm = commOf(ev.path);
    if (comm === null) {
      c.add("deny_comm", "unknown", "the event names no file name or comm");
    } else {
      const v = rs.comms.get(comm);
      if (v) {
        r = v;
        ruleType = "comm";
      }
      c.add(
        "deny_comm",
        v ? "match" : "no_match",
        v
          ? `comm ${JSON.stringify(comm)}: ${describe(v.ref)}`
          : `no rule for comm ${JSON.stringify(comm)}`,
        v?.ref,
      );
    }
  }
  // deny_binary_hash (bpf/exec_hash.bpf.c): after the inode and comm rules
  // (an earlier deny on the same hook is passed on), by content
  if (!r && ev.unverified && rs.unverified) {
    // lsm/file_mprotect cannot hash: a file no executable mapping verified
    // under the live policy, unchanged since, is refused (fail closed)
    r = { deny: true, protect: false, ref: rs.unverified, merged: [] };
    ruleType = "hash_unverified";
    hook = ev.hook;
    c.add(
      rs.unverified.section,
      "match",
      "a file mapping made executable with mprotect, whose file was not verified by an " +
        "executable mapping of it (unchanged, under the live policy): refused, nothing can " +
        "hash there",
      rs.unverified,
    );
  } else if (!r && hashes) {
    if (ev.sha256 === null) {
      c.add(
        "deny_binary_hash",
        "unknown",
        "the event does not carry the executed file's SHA-256 (only a hash block record does)",
      );
    } else {
      const v = rs.hashes.get(ev.sha256);
      if (v) {
        r = v;
        ruleType = "hash";
        hook = mapping ? ev.hook : "bprm_check_hash";
      }
      c.add(
        "deny_binary_hash",
        v ? "match" : "no_match",
        v ? `sha256:${ev.sha256}: ${describe(v.ref)}` : `no rule for sha256:${ev.sha256}`,
        v?.ref,
      );
    }
  }
  // allow_binary_hash, then trusted_exec_hash (the exec program; the
  // mappings only under protect_runtime_deps): the same lookup; a content
  // not listed is denied; a file with no SHA-256 (unknown identity) is
  // denied by the allowlist, by the trusted list only with ima_fail_closed
  const lists = mapping && !rs.runtimeDeps ? [] : contentLists(rs);
  for (const l of lists) {
    if (r) break;
    let unlisted: boolean;
    if (ev.sha256 === null) {
      unlisted = !ask(l.fact, {
        unknown: `the event does not carry the executed file's SHA-256; the policy has ` +
          `[${l.step}]`,
      });
      c.add(
        l.step,
        "unknown",
        `the executed content is not known: assumed ${unlisted ? "not " : ""}${l.on}`,
      );
    } else if (ev.sha256 === NO_SHA256 && (ev.unlisted || ev.untrusted)) {
      unlisted = l.failClosed;
      c.add(
        l.step,
        unlisted ? "match" : "no_match",
        unlisted
          ? `the file had no SHA-256 (unknown identity): not ${l.on}, denied (fail closed)`
          : `the file had no SHA-256 (unknown identity): allowed (fail open; ` +
            "[ima_fail_closed] would deny it)",
        l.ref,
      );
    } else {
      const listed = l.hashes.get(ev.sha256);
      unlisted = !listed;
      c.add(
        l.step,
        listed ? "no_match" : "match",
        listed
          ? `sha256:${ev.sha256} is listed: ${describe(listed)}`
          : `sha256:${ev.sha256} is not ${l.on}: ${describe(l.ref)}`,
        listed ?? l.ref,
      );
    }
    if (unlisted) {
      r = { deny: true, protect: false, ref: l.ref, merged: [] };
      ruleType = l.ruleType;
      hook = mapping ? ev.hook : "bprm_check_hash";
    }
  }
  if (!r) {
    if (f) return f; // the file hook matched and was exempt
    return noMatch(hook, c);
  }
  const allow = (by: string): Run => ({
    outcome: "allow",
    rule: r!.ref,
    ruleType,
    exemptBy: by,
    hook,
    chain: c.steps,
  });
  if (ask("survival", facts.survival)) {
    c.add("survival allowlist", "exempt", "the binary is on the survival allowlist: allowed");
    return allow("survival");
  }
  c.add("survival allowlist", "not_exempt", "not on the survival allowlist");
  const exempt = agentOrAllowCgroup(rs, ev, facts, ask, c);
  if (exempt) return allow(exempt);
  return { outcome: "block", rule: r.ref, ruleType, exemptBy: null, hook, chain: c.steps };
}
