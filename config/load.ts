// Loads drctl.yaml: --config, else $DRCTL_CONFIG, else ./drctl.yaml. Every problem becomes one
// line naming the field; callers turn a ConfigError into exit code 2.
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import type { z } from 'zod';
import { UsageError } from '../common/errors.ts';
import { type ClusterConfig, configSchema, type DrctlConfig, type SiteConfig } from './schema.ts';

export class ConfigError extends UsageError {
  constructor(
    readonly file: string,
    readonly problems: string[],
  ) {
    super(problems.map((p) => `${file}: ${p}`).join('\n'));
    this.name = 'ConfigError';
  }
}

export interface LoadedConfig {
  path: string;
  config: DrctlConfig;
}

export function configPath(explicit?: string): string {
  return resolve(explicit ?? process.env.DRCTL_CONFIG ?? 'drctl.yaml');
}

/** `sites[1].cluster.nodes[0].ssh.port` from zod's path array. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out ? `.${String(p)}` : String(p);
  return out || '(top level)';
}

function issueLines(issues: z.core.$ZodIssue[]): string[] {
  const lines: string[] = [];
  for (const issue of issues) {
    // A union that failed on every branch: report the branch the input was closest to.
    if (issue.code === 'invalid_union' && issue.errors.length > 0 && !issue.message.startsWith('expected')) {
      const best = [...issue.errors].sort((a, b) => a.length - b.length)[0]!;
      lines.push(...issueLines(best.map((e) => ({ ...e, path: [...issue.path, ...e.path] }))));
      continue;
    }
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) lines.push(`${formatPath([...issue.path, key])}: unknown field`);
      continue;
    }
    const message =
      issue.code === 'invalid_type' && issue.input === undefined ? `required: ${issue.message}` : issue.message;
    lines.push(`${formatPath(issue.path)}: ${message}`);
  }
  return lines;
}

export function parseConfig(text: string, file: string): DrctlConfig {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      file,
      doc.errors.map((e) => {
        const pos = lineCounter.linePos(e.pos[0]);
        return `line ${pos.line} column ${pos.col}: ${e.message.split('\n')[0]}`;
      }),
    );
  }
  const result = configSchema.safeParse(doc.toJS() ?? {}, { reportInput: true });
  if (!result.success) throw new ConfigError(file, issueLines(result.error.issues));
  return resolveWorkerPaths(result.data, dirname(file));
}

/** Paths read on the worker side are relative to the config file; paths on nodes are not touched. */
function resolveWorkerPaths(cfg: DrctlConfig, base: string): DrctlConfig {
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  for (const cluster of allClusters(cfg)) {
    cluster.kubeconfig = abs(cluster.kubeconfig);
    for (const node of cluster.nodes) {
      node.ssh.privateKeyPath = abs(node.ssh.privateKeyPath);
      if (node.ssh.jump) node.ssh.jump.privateKeyPath = abs(node.ssh.jump.privateKeyPath);
    }
  }
  const creds = cfg.objectStore.credentials;
  if ('file' in creds) creds.file = abs(creds.file);
  if (cfg.objectStore.caFile) cfg.objectStore.caFile = abs(cfg.objectStore.caFile);
  for (const k of [cfg.snapshots.encryptionKey, cfg.snapshots.signingKey]) if ('file' in k) k.file = abs(k.file);
  const dnsKey = cfg.dns?.powerdns.apiKey;
  if (dnsKey && 'file' in dnsKey) dnsKey.file = abs(dnsKey.file);
  const tls = cfg.temporal.tls;
  if (tls && typeof tls === 'object') {
    for (const k of ['serverCaCertPath', 'clientCertPath', 'clientKeyPath'] as const) {
      const v = tls[k];
      if (v) tls[k] = abs(v);
    }
  }
  return cfg;
}

export function loadConfig(explicit?: string): LoadedConfig {
  const path = configPath(explicit);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? 'file not found (use --config, $DRCTL_CONFIG, or run `drctl lab up`)'
        : `cannot read (${code})`;
    throw new ConfigError(path, [why]);
  }
  return { path, config: parseConfig(text, path) };
}

/** Every cluster the config names: each site's, then the ones across sites (`clusters:`). */
export function allClusters(cfg: DrctlConfig): ClusterConfig[] {
  // `clusters` defaults to [] when parsed; a config built in code may leave it out.
  return [...cfg.sites.map((s) => s.cluster), ...(cfg.clusters ?? [])];
}

/** The site a cluster's node stands in: its own `site`, else the site whose cluster it is. */
export function siteOfNode(cfg: DrctlConfig, cluster: ClusterConfig, node: { site?: string }): string | undefined {
  return node.site ?? cfg.sites.find((s) => s.cluster === cluster)?.name;
}

/** Finds a cluster by its name or its site's, with a usage error listing the known ones. */
export function findCluster(cfg: DrctlConfig, cluster: string): { cluster: ClusterConfig; site?: SiteConfig } {
  const site = cfg.sites.find((s) => s.cluster.name === cluster || s.name === cluster);
  if (site) return { cluster: site.cluster, site };
  const c = (cfg.clusters ?? []).find((x) => x.name === cluster);
  if (c) return { cluster: c };
  throw new UsageError(
    `unknown cluster '${cluster}' (known: ${allClusters(cfg)
      .map((x) => x.name)
      .join(', ')})`,
  );
}
