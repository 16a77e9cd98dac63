/**
 * Tier 1 (artifacts): the Kubernetes delivery (packaging/kubernetes/,
 * docs/install.md "Kubernetes"). No cluster runs here; what can be checked
 * without one is checked:
 *
 * - every object, rendered by `kubectl kustomize` (the base, and the example
 *   overlay with a key and a bundle made by our own CLI), validates against
 *   the Kubernetes OpenAPI schemas (npm kubernetes-models; the ServiceMonitor
 *   against @kubernetes-models/prometheus-operator);
 * - the agent's own rules hold on the rendered DaemonSet: readiness on
 *   /readyz and liveness on /livez of the --probe-listen port, metrics on a
 *   port of their own, every hostPath on an allow-list with its reason and
 *   read-only where it can be, privileged only with its reasons, resources,
 *   the rollout settings, the Secret and ConfigMap wired to the paths the
 *   agent reads;
 * - negative controls: a mutated object is refused by the validator and by
 *   the rules.
 *
 * Without kubectl (or with one whose kustomize is older than v5) the
 * rendering tests are skipped with the reason printed; the base's files are
 * still parsed, validated and checked on their own (the generated ConfigMap
 * and Secret built from config.env and secret/ the way kustomize would).
 * The schemas accept fields they do not know (additionalProperties is not
 * closed in them): a misspelt field is caught only where a rule below looks
 * for the right one.
 */
import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { parseAllDocuments } from "yaml";
import { Namespace } from "kubernetes-models/v1/Namespace";
import { ServiceAccount } from "kubernetes-models/v1/ServiceAccount";
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { Secret } from "kubernetes-models/v1/Secret";
import { Service } from "kubernetes-models/v1/Service";
import { DaemonSet } from "kubernetes-models/apps/v1/DaemonSet";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";
import { PodMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor";
import { LAUNCHER, ROOT, run } from "../lib/helpers.ts";

const K8S = `${ROOT}/packaging/kubernetes`;
const BASE = `${K8S}/base`;

// deno-lint-ignore no-explicit-any
type Obj = any;

/** A validator per apiVersion/kind: throws when the object breaks the schema. */
const VALIDATORS: Record<string, (o: Obj) => void> = {
  "v1/Namespace": (o) => new Namespace(o).validate(),
  "v1/ServiceAccount": (o) => new ServiceAccount(o).validate(),
  "v1/ConfigMap": (o) => new ConfigMap(o).validate(),
  "v1/Secret": (o) => new Secret(unwrapBase64(o)).validate(),
  "v1/Service": (o) => new Service(o).validate(),
  "apps/v1/DaemonSet": (o) => new DaemonSet(o).validate(),
  "monitoring.coreos.com/v1/ServiceMonitor": (o) => new ServiceMonitor(o).validate(),
  "monitoring.coreos.com/v1/PodMonitor": (o) => new PodMonitor(o).validate(),
};

/**
 * kustomize writes Secret data as base64 wrapped at 70 columns (a YAML block
 * with newlines). The API server decodes it with Go's base64, which skips
 * CR and LF; the schema's "byte" format does not. Compare like the server.
 */
function unwrapBase64(o: Obj): Obj {
  const data = Object.fromEntries(
    Object.entries(o.data ?? {}).map((
      [k, v],
    ) => [k, typeof v === "string" ? v.replace(/[\r\n]/g, "") : v]),
  );
  return { ...o, data };
}

function validate(o: Obj): void {
  const key = `${o?.apiVersion}/${o?.kind}`;
  const v = VALIDATORS[key];
  if (!v) throw new Error(`no schema validator for ${key} (add one, do not skip it)`);
  v(o);
}

/**
 * Host paths the agent may mount, each with its reason (docs/install.md,
 * "Kubernetes") and whether the mount must be read-only.
 */
export const HOST_PATHS: Record<string, { readOnly: boolean; why: string }> = {
  "/sys/fs/bpf": { readOnly: false, why: "pins: enforcement that outlives the pod" },
  "/sys/kernel/btf": { readOnly: true, why: "kernel BTF for CO-RE and hook discovery" },
  "/sys/kernel/tracing": { readOnly: true, why: "tracepoint ids (exec/open, audit fallback)" },
  "/var/lib/aegisbpf": { readOnly: false, why: "applied policy, anti-rollback counter, report" },
  "/run/aegisbpf": { readOnly: false, why: "control socket for root on the node, shim, sentinel" },
};

/** Why the container is privileged; the rules below check the consequences hold. */
export const PRIVILEGED_BECAUSE = [
  "a writable cgroup2 file system: the agent's own cgroup and the canary cgroup",
  "mountPropagation Bidirectional on /sys/fs/bpf (allowed only to privileged containers)",
  "CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN, CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH",
];

function parseYaml(text: string, where: string): Obj[] {
  const docs = parseAllDocuments(text);
  const out: Obj[] = [];
  for (const d of docs) {
    if (d.errors.length > 0) throw new Error(`${where}: ${d.errors[0].message}`);
    const v = d.toJS();
    if (v !== null && v !== undefined) out.push(v);
  }
  return out;
}

function memMi(q: string | undefined): number {
  const m = /^(\d+)(Mi|Gi)$/.exec(q ?? "");
  if (!m) return NaN;
  return Number(m[1]) * (m[2] === "Gi" ? 1024 : 1);
}

/** A port given by name or number, resolved against the container's ports. */
function portOf(c: Obj, p: string | number | undefined): number | undefined {
  if (typeof p === "number") return p;
  return c.ports?.find((x: Obj) => x.name === p)?.containerPort;
}

function listenPort(args: string[], flag: string): number | undefined {
  const a = args.find((x) => x.startsWith(`${flag}=`));
  const m = a ? /^\$\(POD_IP\):(\d+)$/.exec(a.slice(flag.length + 1)) : null;
  return m ? Number(m[1]) : undefined;
}

/**
 * The agent's rules on a set of rendered objects; returns every problem
 * (empty: all hold). Exported for the negative controls.
 */
export function agentRules(objs: Obj[]): string[] {
  const bad: string[] = [];
  const need = (cond: unknown, what: string) => {
    if (!cond) bad.push(what);
  };
  const of = (kind: string) => objs.filter((o) => o.kind === kind);
  const dss = of("DaemonSet");
  if (dss.length !== 1) return [`exactly one DaemonSet expected, got ${dss.length}`];
  const ds = dss[0];
  const pod = ds.spec?.template?.spec ?? {};
  const c = (pod.containers ?? []).find((x: Obj) => x.name === "agent");
  if (!c) return ["no container named agent"];
  const args: string[] = [...(c.command ?? []), ...(c.args ?? [])];

  // probes: a listener of their own on the pod IP, readiness ≠ liveness
  need(args.includes("run"), "the container runs `aegisbpf run`");
  const probePort = listenPort(args, "--probe-listen");
  const metricsPort = listenPort(args, "--metrics-listen");
  need(probePort !== undefined, "--probe-listen=$(POD_IP):PORT in the container's arguments");
  const podIp = (c.env ?? []).find((e: Obj) => e.name === "POD_IP");
  need(podIp?.valueFrom?.fieldRef?.fieldPath === "status.podIP", "POD_IP from status.podIP");
  const rp = c.readinessProbe?.httpGet;
  const lp = c.livenessProbe?.httpGet;
  need(rp?.path === "/readyz", "readinessProbe GET /readyz");
  need(lp?.path === "/livez", "livenessProbe GET /livez");
  need(portOf(c, rp?.port) === probePort, "readinessProbe on the --probe-listen port");
  need(portOf(c, lp?.port) === probePort, "livenessProbe on the --probe-listen port");
  need(!c.readinessProbe?.exec && !c.livenessProbe?.exec, "no exec probes (~210 ms, ~65 MB)");
  need(
    metricsPort !== undefined && metricsPort !== probePort,
    "metrics on a --metrics-listen port of their own, never on the probe listener",
  );
  need(
    !args.some((a) => a.startsWith("--http-allow-remote")),
    "the full HTTP API stays on loopback (no --http-allow-remote)",
  );

  // Prometheus reaches the metrics listener and nothing else
  for (const sm of of("ServiceMonitor")) {
    for (const ep of sm.spec?.endpoints ?? []) {
      need(ep.path === "/metrics", "ServiceMonitor path /metrics");
      const svc = of("Service").find((s) =>
        Object.entries(sm.spec.selector?.matchLabels ?? {}).every(([k, v]) =>
          s.metadata?.labels?.[k] === v
        )
      );
      const sp = svc?.spec?.ports?.find((p: Obj) => p.name === ep.port);
      need(sp !== undefined, `a Service selected by the ServiceMonitor has port ${ep.port}`);
      need(portOf(c, sp?.targetPort) === metricsPort, "the scraped port is --metrics-listen's");
      need(svc?.spec?.publishNotReadyAddresses === true, "not-ready agents are scraped too");
    }
  }

  // host namespaces and privilege, each with its reason
  need(pod.hostPID === true, "hostPID (the survival allowlist reads the host's processes)");
  need(!pod.hostNetwork, "no hostNetwork");
  need(!pod.hostIPC, "no hostIPC");
  need(pod.automountServiceAccountToken === false, "no API token in the pod");
  for (const sa of of("ServiceAccount")) {
    need(sa.automountServiceAccountToken === false, "the ServiceAccount mounts no token");
  }
  const sc = c.securityContext ?? {};
  if (sc.privileged === true) {
    // the reasons (PRIVILEGED_BECAUSE) only hold with the Bidirectional bpffs mount
    const bpf = (c.volumeMounts ?? []).find((m: Obj) => m.mountPath === "/sys/fs/bpf");
    need(bpf?.mountPropagation === "Bidirectional", "privileged: for the bpffs propagation");
  }
  need(sc.readOnlyRootFilesystem === true, "read-only root file system");

  // host paths: on the allow-list, read-only where they can be
  const volumes: Obj[] = pod.volumes ?? [];
  for (const v of volumes.filter((v) => v.hostPath)) {
    const allowed = HOST_PATHS[v.hostPath.path];
    if (!allowed) {
      bad.push(`hostPath ${v.hostPath.path} is not on the allow-list`);
      continue;
    }
    const mounts = (c.volumeMounts ?? []).filter((m: Obj) => m.name === v.name);
    need(mounts.length > 0, `hostPath ${v.hostPath.path} is mounted`);
    for (const m of mounts) {
      need(m.mountPath === v.hostPath.path, `${v.hostPath.path} mounted at the same path`);
      if (allowed.readOnly) need(m.readOnly === true, `${v.hostPath.path} mounted read-only`);
    }
  }
  for (const p of ["/sys/fs/bpf", "/var/lib/aegisbpf"]) {
    need(volumes.some((v) => v.hostPath?.path === p), `${p} from the host`);
  }

  // resources: requests and limits, room for a large apply
  const r = c.resources ?? {};
  need(r.requests?.cpu && r.requests?.memory, "cpu and memory requests");
  need(r.limits?.cpu, "a cpu limit");
  need(memMi(r.limits?.memory) >= 300, "a memory limit of at least 300Mi (a large apply)");
  need(memMi(r.requests?.memory) >= 128, "a memory request above the idle RSS (~115 MiB)");

  // rollout: one node at a time, never two agents on a node
  const us = ds.spec?.updateStrategy;
  need(us?.type === "RollingUpdate", "updateStrategy RollingUpdate");
  need(us?.rollingUpdate?.maxUnavailable === 1, "maxUnavailable 1");
  need(us?.rollingUpdate?.maxSurge === 0, "maxSurge 0");
  need(typeof pod.terminationGracePeriodSeconds === "number", "a terminationGracePeriodSeconds");
  need(pod.priorityClassName === "system-node-critical", "priorityClassName system-node-critical");
  need(
    (pod.tolerations ?? []).some((t: Obj) => t.operator === "Exists" && !t.key && !t.effect),
    "tolerates every taint (runs on every node)",
  );

  // settings and the signed bundle reach the paths the agent reads
  const cmName = (c.envFrom ?? []).find((e: Obj) => e.configMapRef)?.configMapRef?.name;
  const cm = of("ConfigMap").find((o) => o.metadata?.name === cmName);
  need(cm, `the ConfigMap ${cmName} the container reads exists`);
  const policyPath = cm?.data?.AEGIS_POLICY;
  need(cm?.data?.AEGIS_REQUIRE_SIGNATURE === "1", "AEGIS_REQUIRE_SIGNATURE=1");
  const sv = volumes.find((v) => v.secret);
  const secret = of("Secret").find((o) => o.metadata?.name === sv?.secret?.secretName);
  need(secret, `the Secret ${sv?.secret?.secretName} the pod mounts exists`);
  const mounts: Obj[] = (c.volumeMounts ?? []).filter((m: Obj) => m.name === sv?.name);
  const bundle = mounts.find((m) => m.subPath === "policy.bundle");
  need(bundle && bundle.mountPath === policyPath, "the bundle is mounted at AEGIS_POLICY");
  const key = mounts.find((m) => m.subPath === "trusted.pub");
  need(
    key && /^\/etc\/aegisbpf\/keys\/[^/]+\.pub$/.test(key.mountPath),
    "the key is mounted as a .pub file in /etc/aegisbpf/keys",
  );
  need(mounts.every((m) => m.subPath && m.readOnly), "secret files via subPath, read-only");
  for (const k of ["policy.bundle", "trusted.pub"]) {
    need(secret?.data?.[k] !== undefined, `the Secret holds ${k}`);
  }

  // one namespace, which admits this privileged pod and says so
  const ns = of("Namespace");
  need(ns.length === 1, "one Namespace");
  const name = ns[0]?.metadata?.name;
  need(
    ns[0]?.metadata?.labels?.["pod-security.kubernetes.io/enforce"] === "privileged",
    "the Namespace admits privileged pods (Pod Security)",
  );
  for (const o of objs.filter((o) => o.kind !== "Namespace")) {
    need(o.metadata?.namespace === name, `${o.kind} ${o.metadata?.name} in namespace ${name}`);
  }
  return bad;
}

function hasKustomize(): { ok: boolean; why: string } {
  try {
    const out = new Deno.Command("kubectl", { args: ["version", "--client"], stderr: "null" })
      .outputSync();
    const text = new TextDecoder().decode(out.stdout);
    const m = /Kustomize Version: v(\d+)/.exec(text);
    if (!m) return { ok: false, why: `kubectl names no kustomize version: ${text.trim()}` };
    if (Number(m[1]) < 5) return { ok: false, why: `kubectl's kustomize is v${m[1]}, not v5+` };
    return { ok: true, why: "" };
  } catch {
    return { ok: false, why: "kubectl is not installed" };
  }
}

const KUSTOMIZE = hasKustomize();
if (!KUSTOMIZE.ok) {
  Deno.stderr.writeSync(
    new TextEncoder().encode(
      `kubernetes_test: rendering skipped: ${KUSTOMIZE.why}; the base files are still checked\n`,
    ),
  );
}

async function render(dir: string): Promise<Obj[]> {
  const r = await run("kubectl", ["kustomize", dir]);
  if (r.code !== 0) throw new Error(`kubectl kustomize ${dir} failed:\n${r.stderr}`);
  return parseYaml(r.stdout, `kubectl kustomize ${dir}`);
}

/** The base's objects from its files, the generators done by hand (no hash suffix). */
function baseFromFiles(): Obj[] {
  const k = parseYaml(Deno.readTextFileSync(`${BASE}/kustomization.yaml`), "kustomization")[0];
  const ns = k.namespace;
  const objs: Obj[] = [];
  for (const f of k.resources) {
    for (const o of parseYaml(Deno.readTextFileSync(`${BASE}/${f}`), f)) objs.push(o);
  }
  for (const g of k.configMapGenerator) {
    const data: Record<string, string> = {};
    for (const env of g.envs) {
      for (const line of Deno.readTextFileSync(`${BASE}/${env}`).split("\n")) {
        const t = line.trim();
        if (t === "" || t.startsWith("#")) continue;
        const eq = t.indexOf("=");
        data[t.slice(0, eq)] = t.slice(eq + 1);
      }
    }
    objs.push({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: g.name }, data });
  }
  for (const g of k.secretGenerator) {
    const data: Record<string, string> = {};
    for (const f of g.files) {
      const [key, path] = f.split("=");
      data[key] = btoa(Deno.readTextFileSync(`${BASE}/${path}`));
    }
    objs.push({
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: g.name },
      type: "Opaque",
      data,
    });
  }
  for (const o of objs) {
    if (o.kind !== "Namespace") o.metadata = { ...o.metadata, namespace: ns };
  }
  return objs;
}

Deno.test("the base's files: every object validates and the agent's rules hold", () => {
  const objs = baseFromFiles();
  deepStrictEqual(
    objs.map((o) => o.kind).sort(),
    [
      "ConfigMap",
      "DaemonSet",
      "Namespace",
      "Secret",
      "Service",
      "ServiceAccount",
      "ServiceMonitor",
    ],
  );
  for (const o of objs) validate(o);
  deepStrictEqual(agentRules(objs), []);
});

Deno.test("the base's placeholders are not a bundle nor a key (the agent refuses them)", () => {
  for (const f of ["policy.bundle", "trusted.pub"]) {
    const t = Deno.readTextFileSync(`${BASE}/secret/${f}`);
    ok(t.startsWith("PLACEHOLDER:"), f);
  }
});

Deno.test({
  name: "kubectl kustomize base: every rendered object validates and the rules hold",
  ignore: !KUSTOMIZE.ok,
  fn: async () => {
    const objs = await render(BASE);
    strictEqual(objs.length, 7);
    for (const o of objs) validate(o);
    deepStrictEqual(agentRules(objs), []);
    // generated names carry a content hash, and the DaemonSet follows them
    const ds = objs.find((o) => o.kind === "DaemonSet");
    const c = ds.spec.template.spec.containers[0];
    ok(/^aegisbpf-config-[a-z0-9]{10}$/.test(c.envFrom[0].configMapRef.name));
    strictEqual(c.image, "aegisbpf:0.1.0");
  },
});

Deno.test({
  name: "the example overlay with a key and a bundle from our CLI: the Secret carries them",
  ignore: !KUSTOMIZE.ok,
  fn: async () => {
    const tmp = await Deno.makeTempDir({ prefix: "aegis-k8s-" });
    try {
      await run("cp", ["-r", K8S, `${tmp}/k8s`]);
      const ov = `${tmp}/k8s/overlays/example`;
      const kg = await run(LAUNCHER, ["keys", "keygen", "--out", `${tmp}/signing`]);
      strictEqual(kg.code, 0, kg.stderr);
      await Deno.writeTextFile(`${tmp}/policy.conf`, "version=6\n\n[deny_path]\n/usr/bin/nc\n");
      // sign policy.conf with the test key into the overlay's bundle
      const sign = async () => {
        const r = await run(LAUNCHER, [
          "policy",
          "sign",
          `${tmp}/policy.conf`,
          "--key",
          `${tmp}/signing.key`,
          "--out",
          `${ov}/policy.bundle`,
        ]);
        strictEqual(r.code, 0, r.stderr);
      };
      await sign();
      await Deno.copyFile(`${tmp}/signing.pub`, `${ov}/trusted.pub`);

      const objs = await render(ov);
      for (const o of objs) validate(o);
      deepStrictEqual(agentRules(objs), []);
      const secret = objs.find((o) => o.kind === "Secret");
      const b64 = (k: string) => atob(secret.data[k].replace(/\n/g, ""));
      strictEqual(
        b64("policy.bundle"),
        await Deno.readTextFile(`${ov}/policy.bundle`),
      );
      strictEqual(b64("trusted.pub"), await Deno.readTextFile(`${ov}/trusted.pub`));
      // the agent's view: the rendered files, placed where the pod mounts them, verify
      // (the key folder must be root's: docs/signing.md)
      if (Deno.uid() === 0) {
        const etc = `${tmp}/etc`;
        await Deno.mkdir(`${etc}/keys`, { recursive: true, mode: 0o755 });
        await Deno.mkdir(`${etc}/state`, { mode: 0o700 });
        await Deno.writeTextFile(`${etc}/keys/trusted.pub`, b64("trusted.pub"), { mode: 0o400 });
        await Deno.writeTextFile(`${etc}/policy.bundle`, b64("policy.bundle"), { mode: 0o400 });
        const v = await run(LAUNCHER, ["policy", "verify", `${etc}/policy.bundle`], {
          ...Deno.env.toObject(),
          AEGIS_KEYS_DIR: `${etc}/keys`,
          AEGIS_STATE_DIR: `${etc}/state`,
        });
        strictEqual(v.code, 0, v.stderr);
        ok(/signature OK/.test(v.stdout), v.stdout);
      } else {
        Deno.stderr.writeSync(
          new TextEncoder().encode(
            "kubernetes_test: bundle verification skipped: the key folder must be root's\n",
          ),
        );
      }
      const ds = objs.find((o) => o.kind === "DaemonSet");
      const c = ds.spec.template.spec.containers[0];
      strictEqual(c.image, "registry.example.com/security/aegisbpf:0.1.0");
      const cm = objs.find((o) => o.kind === "ConfigMap");
      strictEqual(cm.data.AEGIS_ENFORCE_GATE_MODE, "audit-fallback");
      strictEqual(cm.data.AEGIS_REQUIRE_SIGNATURE, "1", "the base's settings are kept");

      // a new bundle is a new Secret name: the DaemonSet's pod template changes (a rollout)
      const before = ds.spec.template.spec.volumes.find((v: Obj) => v.secret).secret.secretName;
      await Deno.writeTextFile(`${tmp}/policy.conf`, "version=6\n\n[deny_path]\n/usr/bin/ncat\n");
      await sign();
      const again = (await render(ov)).find((o) => o.kind === "DaemonSet");
      const after = again.spec.template.spec.volumes.find((v: Obj) => v.secret).secret.secretName;
      ok(before !== after, `the Secret's name changed (${before} → ${after})`);
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});

Deno.test("negative controls: the schema validator refuses wrong field types", () => {
  const base = baseFromFiles();
  const ds = () => structuredClone(base.find((o) => o.kind === "DaemonSet"));
  validate(ds()); // the unmutated one passes
  const cases: [string, (o: Obj) => void, RegExp][] = [
    ["a port as a word", (o) => {
      o.spec.template.spec.containers[0].ports[0].containerPort = "probe";
    }, /containerPort must be integer/],
    ["args as a string", (o) => {
      o.spec.template.spec.containers[0].args = "--probe-listen=x";
    }, /args must be array/],
    ["hostPID as a string", (o) => {
      o.spec.template.spec.hostPID = "true";
    }, /hostPID must be boolean/],
    ["a container without a name", (o) => {
      delete o.spec.template.spec.containers[0].name;
    }, /containers\/0 must have required property name/],
    ["no selector", (o) => {
      delete o.spec.selector;
    }, /spec must have required property selector/],
  ];
  for (const [what, mutate, why] of cases) {
    const o = ds();
    mutate(o);
    throws(() => validate(o), why, what);
  }
  const sm = structuredClone(base.find((o) => o.kind === "ServiceMonitor"));
  sm.spec.endpoints[0].interval = 30;
  throws(() => validate(sm), /interval must be string/);
  throws(() => validate({ apiVersion: "v1", kind: "Pod", metadata: {} }), /no schema validator/);
  const secret = structuredClone(base.find((o) => o.kind === "Secret"));
  secret.data["policy.bundle"] = "not base64!";
  throws(() => validate(secret), /policy\.bundle must match format "byte"/);
});

Deno.test("negative controls: the agent's rules catch each broken setting", () => {
  const base = baseFromFiles();
  const agent = (o: Obj[]) =>
    o.find((x) => x.kind === "DaemonSet").spec.template.spec.containers[0];
  const pod = (o: Obj[]) => o.find((x) => x.kind === "DaemonSet").spec.template.spec;
  const cases: [string, (o: Obj[]) => void, RegExp][] = [
    ["readiness on /livez", (o) => {
      agent(o).readinessProbe.httpGet.path = "/livez";
    }, /readinessProbe GET \/readyz/],
    ["readiness on the metrics port", (o) => {
      agent(o).readinessProbe.httpGet.port = "metrics";
    }, /readinessProbe on the --probe-listen port/],
    ["probe listener on another port than the probes", (o) => {
      agent(o).args[0] = "--probe-listen=$(POD_IP):9999";
    }, /on the --probe-listen port/],
    ["an exec readiness probe", (o) => {
      agent(o).readinessProbe = { exec: { command: ["aegisbpf", "health"] } };
    }, /no exec probes/],
    ["metrics on the probe port", (o) => {
      agent(o).args[1] = "--metrics-listen=$(POD_IP):9440";
    }, /metrics on a --metrics-listen port of their own/],
    ["a host path off the list", (o) => {
      pod(o).volumes.push({ name: "root", hostPath: { path: "/" } });
      agent(o).volumeMounts.push({ name: "root", mountPath: "/host" });
    }, /hostPath \/ is not on the allow-list/],
    ["BTF writable", (o) => {
      agent(o).volumeMounts.find((m: Obj) => m.name === "btf").readOnly = false;
    }, /\/sys\/kernel\/btf mounted read-only/],
    ["privileged without the bpffs propagation", (o) => {
      delete agent(o).volumeMounts.find((m: Obj) => m.name === "bpffs").mountPropagation;
    }, /privileged: for the bpffs propagation/],
    ["hostNetwork", (o) => {
      pod(o).hostNetwork = true;
    }, /no hostNetwork/],
    ["a token mounted", (o) => {
      pod(o).automountServiceAccountToken = true;
    }, /no API token/],
    ["no memory limit", (o) => {
      delete agent(o).resources.limits.memory;
    }, /memory limit/],
    ["a surge", (o) => {
      o.find((x) => x.kind === "DaemonSet").spec.updateStrategy.rollingUpdate.maxSurge = 1;
    }, /maxSurge 0/],
    ["OnDelete", (o) => {
      o.find((x) => x.kind === "DaemonSet").spec.updateStrategy = { type: "OnDelete" };
    }, /RollingUpdate/],
    ["no toleration", (o) => {
      pod(o).tolerations = [];
    }, /tolerates every taint/],
    ["the bundle elsewhere than AEGIS_POLICY", (o) => {
      o.find((x) => x.kind === "ConfigMap").data.AEGIS_POLICY = "/etc/aegisbpf/other.bundle";
    }, /bundle is mounted at AEGIS_POLICY/],
    ["signatures not required", (o) => {
      delete o.find((x) => x.kind === "ConfigMap").data.AEGIS_REQUIRE_SIGNATURE;
    }, /AEGIS_REQUIRE_SIGNATURE=1/],
    ["the full API opened", (o) => {
      agent(o).args.push("--http-allow-remote");
    }, /stays on loopback/],
    ["an object in another namespace", (o) => {
      o.find((x) => x.kind === "Service").metadata.namespace = "default";
    }, /Service aegisbpf-metrics in namespace aegisbpf/],
  ];
  for (const [what, mutate, why] of cases) {
    const o = structuredClone(base);
    mutate(o);
    const problems = agentRules(o);
    ok(problems.some((p) => why.test(p)), `${what}: ${JSON.stringify(problems)}`);
  }
});

Deno.test("every allowed host path and the privilege have their reason in the docs", () => {
  const doc = Deno.readTextFileSync(`${ROOT}/docs/install.md`);
  const ds = Deno.readTextFileSync(`${BASE}/daemonset.yaml`);
  for (const p of Object.keys(HOST_PATHS)) {
    ok(doc.includes(`\`${p}\``), `docs/install.md explains ${p}`);
    ok(ds.includes(`path: ${p}\n`), `daemonset.yaml mounts ${p}`);
  }
  for (const w of ["privileged", "hostPID", "mountPropagation", "/readyz", "/livez"]) {
    ok(doc.includes(w), `docs/install.md explains ${w}`);
  }
  ok(PRIVILEGED_BECAUSE.length > 0);
});
