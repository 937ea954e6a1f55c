#!/usr/bin/env node
// Offline validation of rendered Kubernetes manifests (helm template output).
//
//   node deploy/tools/validate_manifests.mjs --node-modules DIR [options] FILE.yaml...
//
// DIR holds kubernetes-models and js-yaml (deploy/tools/setup_ops_tools.sh installs them).
// For every document:
//   - built-in kinds: kubernetes-models' JSON-schema validation (types, required fields,
//     enums) plus a strict unknown-field check walked from kubernetes-models' type
//     declarations (a typo such as `readOnlyRootFileSystem` is an error, as with
//     `kubectl apply --validate=strict`);
//   - CRDs that kubernetes-models lacks (ServiceMonitor, PrometheusRule, ScaledObject):
//     a minimal structural check written here;
//   - anything else: an error (unknown kind).
// Then cross-references between the objects: selectors match a Deployment's pod labels,
// Service target ports and probe ports exist, scale targets exist (and their Deployment
// leaves `replicas` to the autoscaler), configMapRefs / PVCs / `$(VAR)` references resolve,
// HPA custom metrics are served by the prometheus-adapter rules, and the smolserve stage
// flags agree with the pod spec (--threads = CPU request, --shutdown_grace_s below
// terminationGracePeriodSeconds, --vision_target/--decoder_target name a headless Service,
// --port/--metrics_port/--http_port/--health_port = the grpc/metrics/http/health container
// ports, every key or certificate flag names a file on a read-only Secret volume, the front
// holds a client certificate when vision/decoder require one, the front and the decoder get
// the same generation limits (--max_new_tokens_limit, --max_stop_strings,
// --max_stop_string_bytes, after $(VAR) expansion)). Probes: a gRPC probe targets the gRPC
// port or the --health_port, never a port that needs TLS (the kubelet's gRPC probe speaks
// plaintext); no Service exposes a health port; container ports are unique in a pod.
// Ingress backends and NetworkPolicy selectors and ports resolve; no PEM key or certificate
// appears in a ConfigMap, arg or env value.
//
// Options:
//   --expect-count Kind=N        exactly N objects of Kind (repeatable)
//   --expect-gpu a,b             these Deployments (by app.kubernetes.io/component) request nvidia.com/gpu; others don't
//   --external-claim NAME        a PVC that exists outside the rendered set
//   --dump-promql OUT.yaml       write every PromQL expression found (PrometheusRule, KEDA
//                                triggers, prometheus-adapter rules) as a rules file for
//                                `promtool check rules`
//   --adapter-values FILE        prometheus-adapter chart values whose rules.custom must
//                                equal the rules in the rendered adapter ConfigMap
//   --stage-flags NAME=main.cc   every --flag passed to the container NAME must be an
//                                ABSL_FLAG defined in that source file (repeatable)
//   --expect-flag C=f1,f2        the Deployment of component C (app.kubernetes.io/component;
//                                * = every one) passes --f1 and --f2 (repeatable)
//   --reject-flag C=f1,f2        ... passes neither (repeatable)
//   --expect-port C=p1,p2        the stage container of component C (* = every one) has
//                                container ports named p1 and p2 (repeatable)
//   --reject-port C=p1,p2        ... has neither (repeatable)
//   --expect-probes C=SPEC       the startup, readiness and liveness probes of component C
//                                (* = every one): SPEC is one handler for all three, or three
//                                joined by commas (startup,readiness,liveness); a handler is
//                                grpc:<port>, tcp:<port>, http:<port><path>, exec or none,
//                                <port> a container port's name (repeatable)
//   --expect-ingress C/PORT=PEERS
//                                who may reach container port PORT (a name) of component C
//                                under the rendered NetworkPolicies, exactly: "any" (no policy
//                                selects the pod, or a rule without `from`), "none", or the
//                                allowed peers sorted and joined by "|": pods:<component>
//                                (a rendered Deployment's pods), pods:<k=v,...>, ns:<k=v,...>,
//                                ns:<...>&pods:<...>, ip:<cidr> (repeatable)
// Exit status 0 when everything holds, 1 on any error (each one printed), 2 on bad usage.
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const args = process.argv.slice(2);
const opts = { nodeModules: '', expectCount: {}, expectGpu: null, externalClaims: new Set(),
  dumpPromql: '', adapterValues: '', stageFlags: {}, expectFlags: [], rejectFlags: [], expectIngress: [],
  expectPorts: [], rejectPorts: [], expectProbes: [], files: [] };
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  const val = () => { if (i + 1 >= args.length) usage(`${a} needs a value`); return args[++i]; };
  if (a === '--node-modules') opts.nodeModules = val();
  else if (a === '--expect-count') { const [k, n] = val().split('='); opts.expectCount[k] = Number(n); }
  else if (a === '--expect-gpu') opts.expectGpu = new Set(val().split(',').filter(Boolean));
  else if (a === '--external-claim') opts.externalClaims.add(val());
  else if (a === '--dump-promql') opts.dumpPromql = val();
  else if (a === '--adapter-values') opts.adapterValues = val();
  else if (a === '--stage-flags') { const [k, f] = val().split('='); opts.stageFlags[k] = f; }
  else if (a === '--expect-flag' || a === '--reject-flag') {
    const [k, f] = val().split('=');
    (a === '--expect-flag' ? opts.expectFlags : opts.rejectFlags).push({ comp: k, flags: (f || '').split(',').filter(Boolean) });
  } else if (a === '--expect-port' || a === '--reject-port') {
    const [k, f] = val().split('=');
    (a === '--expect-port' ? opts.expectPorts : opts.rejectPorts).push({ comp: k, ports: (f || '').split(',').filter(Boolean) });
  } else if (a === '--expect-probes') {
    const v = val(); const eq = v.indexOf('=');
    const spec = v.slice(eq + 1).split(',');
    if (eq < 1 || ![1, 3].includes(spec.length) || spec.some((h) => !h)) usage(`--expect-probes needs COMPONENT=HANDLER or COMPONENT=STARTUP,READINESS,LIVENESS, got ${v}`);
    opts.expectProbes.push({ comp: v.slice(0, eq), want: spec.length === 1 ? [spec[0], spec[0], spec[0]] : spec });
  } else if (a === '--expect-ingress') {
    const v = val(); const eq = v.indexOf('=');
    const [comp, port] = v.slice(0, eq).split('/');
    if (eq < 0 || !comp || !port) usage(`--expect-ingress needs COMPONENT/PORT=PEERS, got ${v}`);
    opts.expectIngress.push({ comp, port, peers: v.slice(eq + 1) });
  }
  else if (a.startsWith('--')) usage(`unknown option ${a}`);
  else opts.files.push(a);
}
function usage(msg) {
  console.error(`validate_manifests: ${msg}\nusage: node validate_manifests.mjs --node-modules DIR [options] FILE...`);
  process.exit(2);
}
if (!opts.nodeModules || !opts.files.length) usage('need --node-modules and at least one file');
const NM = path.resolve(opts.nodeModules);
for (const m of ['kubernetes-models/package.json', 'js-yaml/package.json']) {
  if (!fs.existsSync(path.join(NM, m))) {
    console.error(`validate_manifests: ${path.join(NM, m)} is missing: run ./smolserve setup (deploy/tools/setup_ops_tools.sh)`);
    process.exit(1);
  }
}
const yaml = (await import(pathToFileURL(path.join(NM, 'js-yaml/index.js')).href)).default;

const errors = [];
let currentObj = null;  // the object strictFields() is walking (for messages)
const dtsCache = new Map();  // .d.ts file -> {props, imports}
const promql = [];  // every PromQL expression seen: {expr, from}
const err = (obj, msg) => errors.push(`${obj ? `${obj.kind}/${obj.metadata?.name}: ` : ''}${msg}`);

// ---------------------------------------------------------------- load documents
const objects = [];
for (const f of opts.files) {
  let docs;
  try {
    docs = yaml.loadAll(fs.readFileSync(f, 'utf8'));
  } catch (e) {
    err(null, `${f}: YAML does not parse: ${e.message}`);
    continue;
  }
  for (const d of docs) {
    if (d === null || d === undefined) continue;
    if (typeof d !== 'object' || Array.isArray(d)) { err(null, `${f}: a document is not a mapping`); continue; }
    if (!d.apiVersion || !d.kind || !d.metadata?.name) {
      err(null, `${f}: document without apiVersion/kind/metadata.name: ${JSON.stringify(d).slice(0, 120)}`);
      continue;
    }
    objects.push(d);
  }
}
const seen = new Set();
for (const o of objects) {
  const key = `${o.kind}/${o.metadata.namespace || ''}/${o.metadata.name}`;
  if (seen.has(key)) err(o, 'defined twice');
  seen.add(key);
  checkName(o);
}
function checkName(o) {
  const n = o.metadata.name;
  const dns1123 = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
  if (!dns1123.test(n) || n.length > 253) err(o, `metadata.name "${n}" is not a DNS subdomain`);
  if (['Service', 'Deployment'].includes(o.kind) && (n.length > 63 || n.includes('.'))) {
    err(o, `metadata.name "${n}" must be a DNS label (63 characters, no dots)`);
  }
  for (const [k, v] of Object.entries(o.metadata.labels || {})) {
    if (typeof v !== 'string') err(o, `label ${k} is not a string`);
    else if (v.length > 63 || !/^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/.test(v)) err(o, `label ${k}="${v}" is not a valid label value`);
  }
  for (const [k, v] of Object.entries(o.metadata.annotations || {})) {
    if (typeof v !== 'string') err(o, `annotation ${k} is not a string`);
  }
}

// ---------------------------------------------------------------- built-in kinds
const CRDS = {
  'monitoring.coreos.com/v1/ServiceMonitor': checkServiceMonitor,
  'monitoring.coreos.com/v1/PrometheusRule': checkPrometheusRule,
  'keda.sh/v1alpha1/ScaledObject': checkScaledObject,
};
function modelPath(apiVersion, kind) {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
  const dir = group ? path.join(NM, 'kubernetes-models', group, version) : path.join(NM, 'kubernetes-models', version);
  return path.join(dir, `${kind}.js`);
}
// Unknown-field check from the TypeScript declarations that ship with kubernetes-models.
function parseDts(file) {
  if (dtsCache.has(file)) return dtsCache.get(file);
  let res = null;
  if (fs.existsSync(file)) {
    const src = fs.readFileSync(file, 'utf8');
    const imports = {};
    for (const m of src.matchAll(/import \{ ([^}]+) \} from "([^"]+)";/g)) {
      for (const name of m[1].split(',').map((s) => s.trim()).filter(Boolean)) imports[name] = resolveImport(file, m[2]);
    }
    const start = src.search(/export interface I\w+(?: extends [\w, ]+)? \{/);
    if (start >= 0) {
      const body = src.slice(src.indexOf('{', start) + 1);
      const props = {};
      let depth = 0, cur = null, buf = '';
      for (const line of body.split('\n')) {
        const t = line.trim();
        if (depth === 0) {
          if (t === '}') break;
          const m = t.match(/^"([^"]+)"\??: (.*)$/);
          if (!m) continue;
          cur = m[1]; buf = m[2];
        } else {
          buf += ' ' + t;
        }
        depth += (t.match(/\{/g) || []).length - (t.match(/\}/g) || []).length;
        if (depth === 0 && cur) { props[cur] = buf.replace(/;$/, '').trim(); cur = null; }
      }
      res = { props, imports };
    }
  }
  dtsCache.set(file, res);
  return res;
}
function resolveImport(from, spec) {
  if (spec.startsWith('.')) return path.resolve(path.dirname(from), spec.replace(/\.js$/, '') + '.d.ts');
  return path.join(NM, spec.replace(/\.js$/, '') + '.d.ts');
}
function strictFields(value, dtsFile, where) {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return;
  const info = parseDts(dtsFile);
  if (!info) return;  // a type alias (Quantity, IntOrString, ...): nothing to walk
  for (const [k, v] of Object.entries(value)) {
    const type = info.props[k];
    const at = where ? `${where}.${k}` : k;
    if (type === undefined) { errors.push(`${objName()}unknown field "${at}"`); continue; }
    walkType(v, type, info, at);
  }
}
function objName() { return currentObj ? `${currentObj.kind}/${currentObj.metadata?.name}: ` : ''; }
function walkType(v, type, info, at) {
  let m;
  if ((m = type.match(/^Array<(\w+)>$/)) && info.imports[m[1]]) {
    if (Array.isArray(v)) v.forEach((e, i) => strictFields(e, info.imports[m[1]], `${at}[${i}]`));
  } else if ((m = type.match(/^\{ \[key: string\]: (\w+); \}$/)) && info.imports[m[1]]) {
    if (v && typeof v === 'object') for (const [k2, e] of Object.entries(v)) strictFields(e, info.imports[m[1]], `${at}.${k2}`);
  } else if (info.imports[type]) {
    strictFields(v, info.imports[type], at);
  }
}
// ---------------------------------------------------------------- CRD checks
function isObj(x) { return x !== null && typeof x === 'object' && !Array.isArray(x); }
function onlyKeys(o, obj, allowed, where) {
  if (!isObj(obj)) { err(o, `${where} must be a mapping`); return false; }
  for (const k of Object.keys(obj)) if (!allowed.includes(k)) err(o, `unknown field "${where}.${k}"`);
  return true;
}
const DURATION = /^(\d+(ms|s|m|h|d|w|y))+$/;
function checkServiceMonitor(o) {
  onlyKeys(o, o, ['apiVersion', 'kind', 'metadata', 'spec'], '');
  const s = o.spec;
  if (!onlyKeys(o, s, ['selector', 'namespaceSelector', 'endpoints', 'podTargetLabels', 'targetLabels', 'jobLabel',
    'sampleLimit', 'targetLimit', 'labelLimit', 'attachMetadata', 'scrapeProtocols'], 'spec')) return;
  if (!isObj(s.selector) || (!isObj(s.selector.matchLabels) && !Array.isArray(s.selector.matchExpressions))) err(o, 'spec.selector needs matchLabels or matchExpressions');
  if (s.namespaceSelector !== undefined) {
    onlyKeys(o, s.namespaceSelector, ['any', 'matchNames'], 'spec.namespaceSelector');
    if (s.namespaceSelector.matchNames && !Array.isArray(s.namespaceSelector.matchNames)) err(o, 'spec.namespaceSelector.matchNames must be a list');
  }
  for (const f of ['podTargetLabels', 'targetLabels']) {
    if (s[f] !== undefined && !(Array.isArray(s[f]) && s[f].every((x) => typeof x === 'string'))) err(o, `spec.${f} must be a list of strings`);
  }
  if (!Array.isArray(s.endpoints) || !s.endpoints.length) { err(o, 'spec.endpoints must be a non-empty list'); return; }
  s.endpoints.forEach((e, i) => {
    const w = `spec.endpoints[${i}]`;
    onlyKeys(o, e, ['port', 'targetPort', 'path', 'scheme', 'interval', 'scrapeTimeout', 'honorLabels', 'honorTimestamps',
      'relabelings', 'metricRelabelings', 'params', 'tlsConfig', 'bearerTokenSecret', 'authorization', 'basicAuth',
      'followRedirects', 'enableHttp2', 'proxyUrl', 'filterRunning'], w);
    if (typeof e.port !== 'string' && e.targetPort === undefined) err(o, `${w}.port must name a Service port`);
    for (const d of ['interval', 'scrapeTimeout']) if (e[d] !== undefined && !DURATION.test(String(e[d]))) err(o, `${w}.${d} "${e[d]}" is not a duration`);
    if (e.scheme !== undefined && !['http', 'https'].includes(e.scheme)) err(o, `${w}.scheme must be http or https`);
    if (e.path !== undefined && !String(e.path).startsWith('/')) err(o, `${w}.path must start with /`);
  });
}
function checkPrometheusRule(o) {
  onlyKeys(o, o, ['apiVersion', 'kind', 'metadata', 'spec'], '');
  if (!onlyKeys(o, o.spec, ['groups'], 'spec')) return;
  const groups = o.spec.groups;
  if (!Array.isArray(groups) || !groups.length) { err(o, 'spec.groups must be a non-empty list'); return; }
  const names = new Set();
  groups.forEach((g, i) => {
    const w = `spec.groups[${i}]`;
    onlyKeys(o, g, ['name', 'interval', 'rules', 'partial_response_strategy', 'limit', 'query_offset', 'labels'], w);
    if (typeof g.name !== 'string' || !g.name) err(o, `${w}.name is required`);
    if (names.has(g.name)) err(o, `${w}.name "${g.name}" repeats`);
    names.add(g.name);
    if (g.interval !== undefined && !DURATION.test(String(g.interval))) err(o, `${w}.interval is not a duration`);
    if (!Array.isArray(g.rules) || !g.rules.length) { err(o, `${w}.rules must be a non-empty list`); return; }
    g.rules.forEach((r, j) => {
      const wr = `${w}.rules[${j}]`;
      onlyKeys(o, r, ['record', 'alert', 'expr', 'for', 'keep_firing_for', 'labels', 'annotations'], wr);
      if (!!r.record === !!r.alert) err(o, `${wr} needs exactly one of record and alert`);
      if (r.record && !/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(r.record)) err(o, `${wr}.record "${r.record}" is not a metric name`);
      if (typeof r.expr !== 'string' || !r.expr.trim()) err(o, `${wr}.expr must be a non-empty string`);
      else promql.push({ expr: r.expr, from: `${o.kind}/${o.metadata.name} ${r.record || r.alert}` });
      if (r.for !== undefined && !DURATION.test(String(r.for))) err(o, `${wr}.for is not a duration`);
      if (r.record && (r.for !== undefined || r.annotations !== undefined)) err(o, `${wr}: recording rules take no for/annotations`);
      for (const m of ['labels', 'annotations']) {
        if (r[m] !== undefined && !(isObj(r[m]) && Object.values(r[m]).every((x) => typeof x === 'string'))) err(o, `${wr}.${m} must map to strings`);
      }
    });
  });
}
function checkScaledObject(o) {
  onlyKeys(o, o, ['apiVersion', 'kind', 'metadata', 'spec'], '');
  const s = o.spec;
  if (!onlyKeys(o, s, ['scaleTargetRef', 'minReplicaCount', 'maxReplicaCount', 'idleReplicaCount', 'pollingInterval',
    'cooldownPeriod', 'initialCooldownPeriod', 'advanced', 'triggers', 'fallback'], 'spec')) return;
  if (!isObj(s.scaleTargetRef) || typeof s.scaleTargetRef.name !== 'string') err(o, 'spec.scaleTargetRef.name is required');
  else onlyKeys(o, s.scaleTargetRef, ['name', 'apiVersion', 'kind', 'envSourceContainerName'], 'spec.scaleTargetRef');
  for (const f of ['minReplicaCount', 'maxReplicaCount', 'pollingInterval', 'cooldownPeriod']) {
    if (s[f] !== undefined && !(Number.isInteger(s[f]) && s[f] >= 0)) err(o, `spec.${f} must be a non-negative integer`);
  }
  if (Number.isInteger(s.minReplicaCount) && Number.isInteger(s.maxReplicaCount) && s.minReplicaCount > s.maxReplicaCount) err(o, 'minReplicaCount > maxReplicaCount');
  if (s.advanced !== undefined) {
    onlyKeys(o, s.advanced, ['horizontalPodAutoscalerConfig', 'restoreToOriginalReplicaCount', 'scalingModifiers'], 'spec.advanced');
    const h = s.advanced.horizontalPodAutoscalerConfig;
    if (h !== undefined) onlyKeys(o, h, ['name', 'behavior'], 'spec.advanced.horizontalPodAutoscalerConfig');
  }
  if (!Array.isArray(s.triggers) || !s.triggers.length) { err(o, 'spec.triggers must be a non-empty list'); return; }
  s.triggers.forEach((t, i) => {
    const w = `spec.triggers[${i}]`;
    onlyKeys(o, t, ['type', 'name', 'metadata', 'metricType', 'authenticationRef', 'useCachedMetrics'], w);
    if (typeof t.type !== 'string') err(o, `${w}.type is required`);
    if (t.metricType !== undefined && !['AverageValue', 'Value', 'Utilization'].includes(t.metricType)) err(o, `${w}.metricType is invalid`);
    if (!isObj(t.metadata)) { err(o, `${w}.metadata must be a mapping`); return; }
    for (const [k, v] of Object.entries(t.metadata)) if (typeof v !== 'string') err(o, `${w}.metadata.${k} must be a string (KEDA reads map[string]string)`);
    if (t.type === 'prometheus') {
      if (!/^https?:\/\/[^\s/]+/.test(t.metadata.serverAddress || '')) err(o, `${w}.metadata.serverAddress must be an http(s) URL`);
      if (!t.metadata.query) err(o, `${w}.metadata.query is required`);
      else promql.push({ expr: t.metadata.query, from: `${o.kind}/${o.metadata.name} trigger ${t.name || i}` });
      if (!(Number(t.metadata.threshold) > 0)) err(o, `${w}.metadata.threshold must be a positive number`);
    }
  });
}

// ---------------------------------------------------------------- validate each object
const counts = {};
for (const o of objects) {
  counts[o.kind] = (counts[o.kind] || 0) + 1;
  const crd = CRDS[`${o.apiVersion}/${o.kind}`];
  if (crd) { crd(o); continue; }
  const file = modelPath(o.apiVersion, o.kind);
  if (!fs.existsSync(file)) { err(o, `unknown apiVersion/kind ${o.apiVersion} ${o.kind} (not in kubernetes-models, no CRD check)`); continue; }
  const mod = await import(pathToFileURL(file).href);
  const Model = mod[o.kind];
  try {
    new Model(o).validate();
  } catch (e) {
    err(o, `schema: ${e.message}`);
  }
  currentObj = o;
  strictFields(o, file.replace(/\.js$/, '.d.ts'), '');
  currentObj = null;
}

// ---------------------------------------------------------------- cross-references
const byKind = (k) => objects.filter((o) => o.kind === k);
const deployments = byKind('Deployment');
const services = byKind('Service');
const configMaps = new Map(byKind('ConfigMap').map((c) => [c.metadata.name, c]));
const pvcs = new Set(byKind('PersistentVolumeClaim').map((p) => p.metadata.name));
const matches = (sel, labels) => isObj(sel) && Object.keys(sel).length > 0 && Object.entries(sel).every(([k, v]) => labels?.[k] === v);
const podLabels = (d) => d.spec?.template?.metadata?.labels || {};
const cpuToMilli = (q) => {
  const s = String(q);
  return s.endsWith('m') ? Number(s.slice(0, -1)) : Number(s) * 1000;
};
const SECRET_FILE_FLAGS = ['api_keys_file', 'tls_cert', 'tls_key', 'tls_ca', 'tls_client_ca',
  'downstream_tls_ca', 'downstream_tls_cert', 'downstream_tls_key'];
const PEM = /-----BEGIN [A-Z0-9 ]*(PRIVATE KEY|CERTIFICATE)-----/;
const PROBES = ['startupProbe', 'readinessProbe', 'livenessProbe'];
const flag = (argv, name) => {
  const hit = (argv || []).find((a) => a.startsWith(`--${name}=`));
  return hit === undefined ? undefined : hit.slice(name.length + 3);
};

for (const d of deployments) {
  const sel = d.spec?.selector?.matchLabels;
  if (!matches(sel, podLabels(d))) err(d, 'spec.selector.matchLabels do not match the pod template labels');
  const pod = d.spec?.template?.spec || {};
  const volumes = new Map((pod.volumes || []).map((v) => [v.name, v]));
  const podPorts = new Map();  // containerPort/protocol -> container/name (one network namespace)
  const podPortNames = new Set();
  for (const v of pod.volumes || []) {
    const claim = v.persistentVolumeClaim?.claimName;
    if (claim && !pvcs.has(claim) && !opts.externalClaims.has(claim)) err(d, `volume ${v.name}: PVC ${claim} is not rendered (pass --external-claim ${claim} if it exists elsewhere)`);
  }
  for (const c of [...(pod.initContainers || []), ...(pod.containers || [])]) {
    const envNames = new Set((c.env || []).map((e) => e.name));
    for (const ef of c.envFrom || []) {
      const ref = ef.configMapRef?.name;
      if (ref) {
        if (!configMaps.has(ref)) err(d, `container ${c.name}: envFrom ConfigMap ${ref} is not rendered`);
        else for (const k of Object.keys(configMaps.get(ref).data || {})) envNames.add(k);
      }
    }
    for (const e of c.env || []) {
      const ref = e.valueFrom?.configMapKeyRef;
      if (ref && !(configMaps.get(ref.name)?.data || {})[ref.key]) err(d, `container ${c.name}: env ${e.name} refers to missing ConfigMap key ${ref.name}/${ref.key}`);
    }
    for (const a of [...(c.args || []), ...(c.command || [])]) {
      for (const m of String(a).matchAll(/(?<!\$)\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g)) {
        if (!envNames.has(m[1])) err(d, `container ${c.name}: $(${m[1]}) in "${a}" is not defined in its environment`);
      }
    }
    for (const vm of c.volumeMounts || []) if (!volumes.has(vm.name)) err(d, `container ${c.name}: volumeMount ${vm.name} has no volume`);
    const ports = new Map((c.ports || []).map((p) => [p.name, p.containerPort]));
    const portNums = new Set((c.ports || []).map((p) => p.containerPort));
    for (const p of c.ports || []) {
      const key = `${p.containerPort}/${p.protocol || 'TCP'}`;
      if (podPorts.has(key)) err(d, `container ${c.name}: containerPort ${key} is also ${podPorts.get(key)}`);
      podPorts.set(key, `${c.name}/${p.name}`);
      if (p.name !== undefined) {
        if (podPortNames.has(p.name)) err(d, `container ${c.name}: port name ${p.name} repeats in the pod`);
        podPortNames.add(p.name);
      }
    }
    for (const pr of PROBES) {
      const p = c[pr];
      if (!p) continue;
      const port = p.grpc?.port ?? p.tcpSocket?.port ?? p.httpGet?.port;
      if (typeof port === 'number' && !portNums.has(port)) err(d, `container ${c.name}: ${pr} port ${port} is not a container port`);
      if (typeof port === 'string' && !ports.has(port)) err(d, `container ${c.name}: ${pr} port ${port} is not a named container port`);
    }
    // smolserve stage flags against the pod spec.
    const argv = c.args || [];
    if (opts.stageFlags[c.name]) {
      const defined = new Set([...fs.readFileSync(opts.stageFlags[c.name], 'utf8')
        .matchAll(/ABSL_FLAG\(\s*[\w:<>]+\s*,\s*(\w+)\s*,/g)].map((m) => m[1]));
      if (!defined.size) err(d, `no ABSL_FLAG found in ${opts.stageFlags[c.name]}`);
      for (const a of argv) {
        const m = String(a).match(/^--([A-Za-z0-9_]+)(=|$)/);
        if (m && !defined.has(m[1])) err(d, `container ${c.name}: --${m[1]} is not a flag of ${opts.stageFlags[c.name]}`);
      }
    }
    const threads = flag(argv, 'threads');
    if (threads !== undefined) {
      const req = c.resources?.requests?.cpu;
      if (req === undefined || cpuToMilli(req) !== Number(threads) * 1000) err(d, `container ${c.name}: CPU request ${req} differs from --threads=${threads}`);
    }
    const grace = flag(argv, 'shutdown_grace_s');
    if (grace !== undefined && !((pod.terminationGracePeriodSeconds ?? 30) > Number(grace))) {
      err(d, `terminationGracePeriodSeconds ${pod.terminationGracePeriodSeconds ?? 30} must exceed --shutdown_grace_s=${grace}`);
    }
    const port = flag(argv, 'port');
    if (port !== undefined && ports.get('grpc') !== Number(port)) err(d, `container ${c.name}: --port=${port} but the grpc containerPort is ${ports.get('grpc')}`);
    const mport = flag(argv, 'metrics_port');
    if (mport !== undefined && ports.get('metrics') !== Number(mport)) err(d, `container ${c.name}: --metrics_port=${mport} but the metrics containerPort is ${ports.get('metrics')}`);
    const hport = flag(argv, 'http_port');
    if (hport !== undefined && Number(hport) >= 0 && ports.get('http') !== Number(hport)) err(d, `container ${c.name}: --http_port=${hport} but the http containerPort is ${ports.get('http')}`);
    if (hport !== undefined && Number(hport) < 0 && ports.has('http')) err(d, `container ${c.name}: --http_port=${hport} (off) but it has an http containerPort`);
    // The plaintext health port (grpc.health.v1 only) for the kubelet's probes.
    const health = flag(argv, 'health_port');
    if (health !== undefined && Number(health) === 0) err(d, `container ${c.name}: --health_port=0 listens on a random port no probe can know`);
    if (health !== undefined && Number(health) > 0 && ports.get('health') !== Number(health)) err(d, `container ${c.name}: --health_port=${health} but the health containerPort is ${ports.get('health')}`);
    if ((health === undefined || Number(health) < 0) && ports.has('health')) err(d, `container ${c.name}: a health containerPort without --health_port`);
    if (opts.stageFlags[c.name]) {
      const tls = flag(argv, 'tls_cert') !== undefined;
      for (const pr of PROBES) {
        const gp = c[pr]?.grpc?.port;
        if (gp === undefined) continue;
        const healthNum = health !== undefined && Number(health) > 0 ? Number(health) : undefined;
        if (gp !== ports.get('grpc') && gp !== healthNum) err(d, `container ${c.name}: ${pr} is a gRPC probe on port ${gp}, which is neither the gRPC port nor the --health_port`);
        if (tls && gp === ports.get('grpc')) err(d, `container ${c.name}: ${pr} is a gRPC probe on the gRPC port ${gp}, which needs TLS (--tls_cert): the kubelet's gRPC probe speaks plaintext, probe the --health_port`);
      }
    }
    // Keys and certificates: files on read-only Secret volumes, never literal values.
    for (const f of SECRET_FILE_FLAGS) {
      const file = flag(argv, f);
      if (file === undefined) continue;
      const mounts = (c.volumeMounts || []).filter((m) => file === m.mountPath || file.startsWith(`${m.mountPath.replace(/\/$/, '')}/`));
      const m = mounts.sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
      if (!m) { err(d, `container ${c.name}: --${f}=${file} is not on a volume mount`); continue; }
      if (m.readOnly !== true) err(d, `container ${c.name}: --${f}: volumeMount ${m.name} (${m.mountPath}) is not readOnly`);
      const vol = volumes.get(m.name);
      const secret = vol?.secret;
      const projected = vol?.projected?.sources;
      if (!secret && !(projected && projected.every((p) => p.secret))) { err(d, `container ${c.name}: --${f}: volume ${m.name} is not a Secret`); continue; }
      const rel = m.subPath ? m.subPath : file.slice(m.mountPath.replace(/\/$/, '').length + 1);
      const items = secret ? secret.items : projected.flatMap((p) => p.secret.items || []);
      if (items && items.length && !items.some((it) => it.path === rel)) err(d, `container ${c.name}: --${f}: ${rel} is not among the items of volume ${m.name}`);
    }
    for (const [a, b] of [['tls_cert', 'tls_key'], ['downstream_tls_cert', 'downstream_tls_key']]) {
      if ((flag(argv, a) === undefined) !== (flag(argv, b) === undefined)) err(d, `container ${c.name}: --${a} and --${b} go together`);
    }
    for (const a of ['tls_ca', 'tls_client_ca']) {
      if (flag(argv, a) !== undefined && flag(argv, 'tls_cert') === undefined) err(d, `container ${c.name}: --${a} without --tls_cert`);
    }
    for (const t of ['vision_target', 'decoder_target']) {
      const target = flag(argv, t);
      if (target === undefined) continue;
      const m = target.match(/^dns:\/\/\/([a-z0-9-]+)\.([a-z0-9-]+)\.svc(?:\.[a-z0-9.-]+)?:(\d+)$/);
      if (!m) continue;  // an external target: not ours to check
      const svc = services.find((s) => s.metadata.name === m[1]);
      if (!svc) { err(d, `--${t}: Service ${m[1]} is not rendered`); continue; }
      if (svc.spec?.clusterIP !== 'None') err(d, `--${t}: Service ${m[1]} is not headless (round_robin needs the pod IPs)`);
      if (!(svc.spec?.ports || []).some((p) => p.port === Number(m[3]))) err(d, `--${t}: Service ${m[1]} has no port ${m[3]}`);
    }
  }
  if (opts.expectGpu) {
    const comp = podLabels(d)['app.kubernetes.io/component'];
    const gpu = (pod.containers || []).some((c) => c.resources?.limits?.['nvidia.com/gpu'] !== undefined);
    if (opts.expectGpu.has(comp) !== gpu) err(d, gpu ? 'requests nvidia.com/gpu unexpectedly' : 'does not request nvidia.com/gpu');
  }
}

const deploymentFor = (sel) => deployments.filter((d) => matches(sel, podLabels(d)));
for (const s of services) {
  const ds = deploymentFor(s.spec?.selector);
  if (!ds.length) { err(s, 'selector matches no rendered Deployment'); continue; }
  for (const p of s.spec?.ports || []) {
    for (const d of ds) {
      const cps = (d.spec.template.spec.containers || []).flatMap((c) => c.ports || []);
      const target = cps.find((x) => (typeof p.targetPort === 'string' ? x.name === p.targetPort : x.containerPort === (p.targetPort ?? p.port)));
      if (target?.name === 'health') err(s, `port ${p.name ?? p.port} exposes the plaintext health port of ${d.metadata.name} (it is for the kubelet's probes only)`);
    }
    if (typeof p.targetPort !== 'string') continue;
    for (const d of ds) {
      const names = (d.spec.template.spec.containers || []).flatMap((c) => (c.ports || []).map((x) => x.name));
      if (!names.includes(p.targetPort)) err(s, `targetPort ${p.targetPort} is not a container port of ${d.metadata.name}`);
    }
  }
}
for (const p of byKind('PodDisruptionBudget')) {
  if (!deploymentFor(p.spec?.selector?.matchLabels).length) err(p, 'selector matches no rendered Deployment');
}
const scaled = new Map();
for (const h of byKind('HorizontalPodAutoscaler')) scaled.set(h.spec?.scaleTargetRef?.name, h);
for (const so of byKind('ScaledObject')) {
  const name = so.spec?.scaleTargetRef?.name;
  if (scaled.has(name)) err(so, `Deployment ${name} has both an HPA and a ScaledObject`);
  scaled.set(name, so);
}
for (const [name, o] of scaled) {
  const d = deployments.find((x) => x.metadata.name === name);
  if (!d) err(o, `scale target Deployment ${name} is not rendered`);
  else if (d.spec.replicas !== undefined) err(d, `sets spec.replicas although ${o.kind} ${o.metadata.name} scales it`);
}
for (const sm of byKind('ServiceMonitor')) {
  const sel = sm.spec?.selector?.matchLabels;
  const selected = services.filter((s) => matches(sel, s.metadata.labels));
  if (!selected.length) err(sm, 'selects no rendered Service');
  for (const e of sm.spec?.endpoints || []) {
    for (const s of selected) if (!(s.spec.ports || []).some((p) => p.name === e.port)) err(sm, `Service ${s.metadata.name} has no port named ${e.port}`);
  }
}

// The front's TLS towards vision and decoder matches what they require.
const component = (d) => podLabels(d)['app.kubernetes.io/component'];
const stageContainer = (d) => (d.spec?.template?.spec?.containers || [])[0] || {};
for (const d of deployments) {
  const argv = stageContainer(d).args || [];
  for (const t of ['vision_target', 'decoder_target']) {
    const m = (flag(argv, t) || '').match(/^dns:\/\/\/([a-z0-9-]+)\./);
    const svc = m && services.find((s) => s.metadata.name === m[1]);
    if (!svc) continue;
    for (const down of deploymentFor(svc.spec?.selector)) {
      const dargv = stageContainer(down).args || [];
      if (flag(dargv, 'tls_cert') !== undefined && flag(argv, 'downstream_tls_ca') === undefined) err(d, `--${t}: ${down.metadata.name} serves TLS (--tls_cert) but the front has no --downstream_tls_ca`);
      if (flag(dargv, 'tls_ca') !== undefined && (flag(argv, 'downstream_tls_cert') === undefined || flag(argv, 'downstream_tls_key') === undefined)) err(d, `--${t}: ${down.metadata.name} requires client certificates (--tls_ca) but the front has no --downstream_tls_cert/--downstream_tls_key`);
      if (flag(dargv, 'tls_cert') === undefined && flag(argv, 'downstream_tls_ca') !== undefined) err(d, `--${t}: the front expects TLS (--downstream_tls_ca) but ${down.metadata.name} serves plaintext`);
    }
  }
}
// The front checks the generation parameters before decoding media, the decoder again: with
// the same limits, or the two would answer the same request differently.
const envOf = (c) => {
  const env = {};
  for (const ef of c.envFrom || []) Object.assign(env, configMaps.get(ef.configMapRef?.name)?.data || {});
  for (const e of c.env || []) {
    if (e.value !== undefined) env[e.name] = String(e.value);
    const ref = e.valueFrom?.configMapKeyRef;
    if (ref) env[e.name] = (configMaps.get(ref.name)?.data || {})[ref.key];
  }
  return env;
};
const expand = (c, v) => { const env = envOf(c); return String(v).replace(/(?<!\$)\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, k) => env[k] ?? m); };
const GENERATION_FLAGS = ['max_new_tokens_limit', 'max_stop_strings', 'max_stop_string_bytes'];
for (const fd of deployments.filter((d) => component(d) === 'preprocess')) {
  for (const dd of deployments.filter((d) => component(d) === 'decoder')) {
    const fc = stageContainer(fd), dc = stageContainer(dd);
    for (const f of GENERATION_FLAGS) {
      const a = flag(fc.args, f), b = flag(dc.args, f);
      if (a === undefined || b === undefined) {
        err(null, `--${f}: the front (${fd.metadata.name}) and the decoder (${dd.metadata.name}) must both get it, with the same value (${a === undefined ? 'the front' : 'the decoder'} has none)`);
      } else if (expand(fc, a) !== expand(dc, b)) {
        err(null, `--${f}: the front (${fd.metadata.name}) has ${expand(fc, a)}, the decoder (${dd.metadata.name}) ${expand(dc, b)}: they must be the same`);
      }
    }
  }
}
// Nothing secret rendered literally.
for (const o of objects) {
  const texts = [];
  if (o.kind === 'ConfigMap') texts.push(...Object.entries(o.data || {}).map(([k, v]) => [`data.${k}`, v]));
  for (const c of [...(o.spec?.template?.spec?.initContainers || []), ...(o.spec?.template?.spec?.containers || [])]) {
    for (const a of [...(c.args || []), ...(c.command || [])]) texts.push([`container ${c.name} arg`, a]);
    for (const e of c.env || []) if (e.value !== undefined) texts.push([`container ${c.name} env ${e.name}`, e.value]);
  }
  for (const [where, t] of texts) if (PEM.test(String(t))) err(o, `${where} holds a PEM key or certificate (mount a Secret instead)`);
  if (o.kind === 'Secret') err(o, 'the chart renders a Secret (secrets must come from existing Secrets)');
}
// Ingress backends.
for (const ing of byKind('Ingress')) {
  const backends = [];
  if (ing.spec?.defaultBackend) backends.push(ing.spec.defaultBackend);
  for (const r of ing.spec?.rules || []) for (const p of r.http?.paths || []) backends.push(p.backend);
  if (!backends.length) err(ing, 'routes nowhere');
  for (const b of backends) {
    const name = b?.service?.name;
    const svc = services.find((s) => s.metadata.name === name);
    if (!svc) { err(ing, `backend Service ${name} is not rendered`); continue; }
    const port = b.service.port || {};
    if (!(svc.spec?.ports || []).some((p) => (port.name !== undefined ? p.name === port.name : p.port === port.number))) {
      err(ing, `backend Service ${name} has no port ${port.name ?? port.number}`);
    }
  }
  for (const t of ing.spec?.tls || []) if (!t.secretName) err(ing, 'tls entry without secretName');
}
// NetworkPolicies: selectors, named ports, and who may reach what.
const netpols = byKind('NetworkPolicy');
const selectorMatches = (sel, labels) => {
  if (!isObj(sel)) return false;
  if (!Object.entries(sel.matchLabels || {}).every(([k, v]) => labels?.[k] === v)) return false;
  return (sel.matchExpressions || []).every((e) => {
    const has = labels && Object.prototype.hasOwnProperty.call(labels, e.key);
    if (e.operator === 'In') return has && e.values.includes(labels[e.key]);
    if (e.operator === 'NotIn') return !has || !e.values.includes(labels[e.key]);
    if (e.operator === 'Exists') return has;
    if (e.operator === 'DoesNotExist') return !has;
    return false;
  });
};
const selectorText = (sel) => {
  const parts = Object.entries(sel?.matchLabels || {}).map(([k, v]) => `${k}=${v}`);
  for (const e of sel?.matchExpressions || []) parts.push(`${e.key} ${e.operator}${e.values ? ` (${e.values.join(',')})` : ''}`);
  return parts.length ? parts.sort().join(',') : '*';
};
const describePeer = (f) => {
  if (f.ipBlock) return `ip:${f.ipBlock.cidr}${f.ipBlock.except?.length ? `-except(${f.ipBlock.except.join(',')})` : ''}`;
  let pods = '';
  if (f.podSelector !== undefined) {
    const hit = f.namespaceSelector === undefined ? deployments.filter((d) => selectorMatches(f.podSelector, podLabels(d))) : [];
    pods = hit.length ? `pods:${hit.map(component).sort().join('+')}` : `pods:${selectorText(f.podSelector)}`;
  }
  if (f.namespaceSelector === undefined) return pods;
  const ns = `ns:${selectorText(f.namespaceSelector)}`;
  return pods ? `${ns}&${pods}` : ns;
};
const isIngressPolicy = (np) => !np.spec?.policyTypes || np.spec.policyTypes.includes('Ingress');
for (const np of netpols) {
  const selected = deployments.filter((d) => selectorMatches(np.spec?.podSelector, podLabels(d)));
  if (!selected.length) { err(np, 'podSelector matches no rendered Deployment'); continue; }
  const portNames = new Set(selected.flatMap((d) => (d.spec.template.spec.containers || []).flatMap((c) => (c.ports || []).map((p) => p.name))));
  for (const r of np.spec?.ingress || []) {
    for (const p of r.ports || []) if (typeof p.port === 'string' && !portNames.has(p.port)) err(np, `ingress port ${p.port} is not a container port of the selected pods`);
    for (const f of r.from || []) {
      // A peer that names this release's pods must select some of them.
      const sel = f.podSelector?.matchLabels;
      if (f.namespaceSelector === undefined && sel && sel['app.kubernetes.io/instance'] !== undefined
        && !deployments.some((d) => selectorMatches(f.podSelector, podLabels(d)))) err(np, `ingress peer ${selectorText(f.podSelector)} matches no rendered Deployment`);
    }
  }
  for (const r of np.spec?.egress || []) {
    for (const f of r.to || []) {
      const sel = f.podSelector?.matchLabels;
      if (f.namespaceSelector === undefined && sel && sel['app.kubernetes.io/instance'] !== undefined
        && !deployments.some((d) => selectorMatches(f.podSelector, podLabels(d)))) err(np, `egress peer ${selectorText(f.podSelector)} matches no rendered Deployment`);
    }
  }
  if (np.spec?.policyTypes?.includes('Egress') && !(np.spec.egress || []).some((r) => (r.ports || []).some((p) => p.port === 53))) {
    err(np, 'restricts egress without allowing DNS (port 53)');
  }
}
function ingressPeers(comp, portName) {
  const d = deployments.find((x) => component(x) === comp);
  if (!d) return `(no Deployment ${comp})`;
  const cp = (d.spec.template.spec.containers || []).flatMap((c) => c.ports || []).find((p) => p.name === portName);
  if (!cp) return `(no container port ${portName})`;
  const pols = netpols.filter((np) => isIngressPolicy(np) && selectorMatches(np.spec?.podSelector, podLabels(d)));
  if (!pols.length) return 'any';
  const peers = new Set();
  for (const np of pols) {
    for (const r of np.spec?.ingress || []) {
      const portOk = !r.ports?.length || r.ports.some((p) => (p.protocol || 'TCP') === (cp.protocol || 'TCP')
        && (p.port === undefined || p.port === portName || p.port === cp.containerPort));
      if (!portOk) continue;
      if (!r.from?.length) return 'any';
      for (const f of r.from) peers.add(describePeer(f));
    }
  }
  return peers.size ? [...peers].sort().join('|') : 'none';
}
for (const e of opts.expectIngress) {
  const got = ingressPeers(e.comp, e.port);
  if (got !== e.peers) err(null, `${e.comp}/${e.port} is reachable from "${got}", expected "${e.peers}"`);
}
// Expected / forbidden flags.
const hasFlag = (argv, f) => argv.some((a) => a === `--${f}` || String(a).startsWith(`--${f}=`));
for (const [list, want] of [[opts.expectFlags, true], [opts.rejectFlags, false]]) {
  for (const { comp, flags } of list) {
    const ds = deployments.filter((d) => comp === '*' || component(d) === comp);
    if (!ds.length) err(null, `${want ? '--expect-flag' : '--reject-flag'} ${comp}: no such Deployment`);
    for (const d of ds) {
      for (const f of flags) {
        if (hasFlag(stageContainer(d).args || [], f) !== want) err(d, want ? `does not pass --${f}` : `passes --${f}`);
      }
    }
  }
}

// Expected / forbidden container ports, expected probes.
for (const [list, want] of [[opts.expectPorts, true], [opts.rejectPorts, false]]) {
  for (const { comp, ports } of list) {
    const ds = deployments.filter((d) => comp === '*' || component(d) === comp);
    if (!ds.length) err(null, `${want ? '--expect-port' : '--reject-port'} ${comp}: no such Deployment`);
    for (const d of ds) {
      const names = (stageContainer(d).ports || []).map((p) => p.name);
      for (const p of ports) if (names.includes(p) !== want) err(d, want ? `has no container port ${p}` : `has a container port ${p}`);
    }
  }
}
const describeProbe = (c, p) => {
  if (!p) return 'none';
  const portName = (x) => (typeof x === 'string' ? x : ((c.ports || []).find((q) => q.containerPort === x)?.name ?? String(x)));
  if (p.grpc) return `grpc:${portName(p.grpc.port)}`;
  if (p.tcpSocket) return `tcp:${portName(p.tcpSocket.port)}`;
  if (p.httpGet) return `http:${portName(p.httpGet.port)}${p.httpGet.path || ''}`;
  if (p.exec) return 'exec';
  return 'unknown';
};
for (const { comp, want } of opts.expectProbes) {
  const ds = deployments.filter((d) => comp === '*' || component(d) === comp);
  if (!ds.length) err(null, `--expect-probes ${comp}: no such Deployment`);
  for (const d of ds) {
    const c = stageContainer(d);
    const got = PROBES.map((pr) => describeProbe(c, c[pr]));
    if (got.join(',') !== want.join(',')) err(d, `probes (startup,readiness,liveness) are ${got.join(',')}, expected ${want.join(',')}`);
  }
}

// prometheus-adapter rules (ConfigMap key config.yaml) and the HPAs' custom metrics.
const adapterNames = new Set();
let adapterRules = null;
for (const c of configMaps.values()) {
  if (!c.data?.['config.yaml'] || !/prometheus-adapter/.test(c.metadata.name)) continue;
  let cfg;
  try { cfg = yaml.load(c.data['config.yaml']); } catch (e) { err(c, `config.yaml does not parse: ${e.message}`); continue; }
  if (!Array.isArray(cfg?.rules) || !cfg.rules.length) { err(c, 'config.yaml has no rules'); continue; }
  adapterRules = cfg.rules;
  cfg.rules.forEach((r, i) => {
    const w = `config.yaml rules[${i}]`;
    onlyKeys(c, r, ['seriesQuery', 'seriesFilters', 'resources', 'name', 'metricsQuery'], w);
    if (typeof r.seriesQuery !== 'string' || typeof r.metricsQuery !== 'string') { err(c, `${w} needs seriesQuery and metricsQuery`); return; }
    if (!r.name?.as) err(c, `${w}.name.as is required`);
    else adapterNames.add(r.name.as);
    if (r.name?.matches) {
      const series = r.seriesQuery.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)/)?.[1];
      if (series && !new RegExp(r.name.matches).test(series)) err(c, `${w}.name.matches does not match ${series}`);
    }
    promql.push({ expr: r.seriesQuery, from: `adapter ${r.name?.as} seriesQuery` });
    promql.push({
      expr: r.metricsQuery.replaceAll('<<.Series>>', r.seriesQuery.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)/)?.[1] || 'x')
        .replaceAll('<<.LabelMatchers>>', 'namespace="ns",pod=~"p-.*"').replaceAll('<<.GroupBy>>', 'pod'),
      from: `adapter ${r.name?.as} metricsQuery`,
    });
  });
}
for (const h of byKind('HorizontalPodAutoscaler')) {
  for (const m of h.spec?.metrics || []) {
    const name = m.pods?.metric?.name || m.object?.metric?.name;
    if (name && adapterRules && !adapterNames.has(name)) err(h, `custom metric ${name} is not served by the prometheus-adapter rules`);
  }
}
if (opts.adapterValues) {
  const v = yaml.load(fs.readFileSync(opts.adapterValues, 'utf8'));
  if (!adapterRules) err(null, `--adapter-values given but no prometheus-adapter ConfigMap was rendered`);
  else if (JSON.stringify(v?.rules?.custom) !== JSON.stringify(adapterRules)) err(null, `${opts.adapterValues}: rules.custom differs from the chart's files/prometheus-adapter-rules.yaml`);
  if (v?.rules?.default !== false) err(null, `${opts.adapterValues}: rules.default should be false`);
}

// Grafana dashboards.
for (const c of configMaps.values()) {
  for (const [k, v] of Object.entries(c.data || {})) {
    if (!k.endsWith('.json')) continue;
    try {
      const dash = JSON.parse(v);
      if (!dash.uid || !Array.isArray(dash.panels)) err(c, `${k}: not a Grafana dashboard (uid, panels)`);
    } catch (e) { err(c, `${k}: JSON does not parse: ${e.message}`); }
  }
}

for (const [k, n] of Object.entries(opts.expectCount)) {
  if ((counts[k] || 0) !== n) err(null, `expected ${n} ${k}, found ${counts[k] || 0}`);
}

if (opts.dumpPromql) {
  const rules = promql.map((p, i) => `      - record: smolserve_check:q${i}\n        # ${p.from.replace(/\n/g, ' ')}\n        expr: ${JSON.stringify(p.expr)}`);
  fs.writeFileSync(opts.dumpPromql, `groups:\n  - name: extracted\n    rules:\n${rules.join('\n')}\n`.replace('rules:\n\n', 'rules: []\n'));
}

const summary = Object.entries(counts).sort().map(([k, n]) => `${k}=${n}`).join(' ');
if (errors.length) {
  for (const e of errors) console.error(`ERROR ${e}`);
  console.error(`validate_manifests: ${errors.length} error(s) in ${objects.length} objects (${summary})`);
  process.exit(1);
}
console.log(`validate_manifests: ${objects.length} objects OK (${summary})${promql.length ? `, ${promql.length} PromQL expressions` : ''}`);
