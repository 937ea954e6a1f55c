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
// terminationGracePeriodSeconds, --vision_target/--decoder_target name a headless Service).
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
// Exit status 0 when everything holds, 1 on any error (each one printed), 2 on bad usage.
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const args = process.argv.slice(2);
const opts = { nodeModules: '', expectCount: {}, expectGpu: null, externalClaims: new Set(),
  dumpPromql: '', adapterValues: '', stageFlags: {}, files: [] };
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
const flag = (argv, name) => {
  const hit = (argv || []).find((a) => a.startsWith(`--${name}=`));
  return hit === undefined ? undefined : hit.slice(name.length + 3);
};

for (const d of deployments) {
  const sel = d.spec?.selector?.matchLabels;
  if (!matches(sel, podLabels(d))) err(d, 'spec.selector.matchLabels do not match the pod template labels');
  const pod = d.spec?.template?.spec || {};
  const volumes = new Map((pod.volumes || []).map((v) => [v.name, v]));
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
    for (const pr of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
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
