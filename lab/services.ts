// The lab's servers outside the nodes: the Temporal dev server (state in .lab/temporal, the
// runbooks' search attributes registered), MinIO (the off-site bucket and Velero's), PowerDNS (laid
// out and driven by lab/pdns.ts) and each site's app endpoint (lab/app-endpoint.ts). Each is
// started only when its recorded process is not running.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { pdnsCommand } from './pdns.ts';
import { alive, launch, type LabState } from './processes.ts';
import { bin, type LabSite, paths, REPO, SERVICES } from './topology.ts';
import { SEARCH_ATTRIBUTE_TYPES } from '../common/runbook.ts';

const run = promisify(execFile);

export const appKey = (site: LabSite) => `${site.name}/app`;

export function minioCreds(): { accessKeyId: string; secretAccessKey: string } {
  const text = readFileSync(paths.minioCreds, 'utf8');
  return {
    accessKeyId: text.match(/accessKeyId: (\S+)/)![1]!,
    secretAccessKey: text.match(/secretAccessKey: (\S+)/)![1]!,
  };
}

/**
 * The runbooks' search attributes for a new database. start-dev applies these flags only when it
 * creates the namespace, i.e. the database: `ensureSearchAttributes` adds them to an older one.
 */
const searchAttributeFlags = () =>
  Object.entries(SEARCH_ATTRIBUTE_TYPES).flatMap(([name, type]) => ['--search-attribute', `${name}=${type}`]);

/**
 * Creates the runbooks' search attributes the `default` namespace lacks (a database from an older
 * lab); returns their names. One name per call: CLI 1.9.1 against the SQLite store added only the
 * first of several names given at once, while reporting all of them added.
 */
export async function ensureSearchAttributes(): Promise<string[]> {
  const t = SERVICES.temporal;
  const cli = (args: string[]) =>
    run(bin.temporal, [
      'operator',
      'search-attribute',
      ...args,
      '--address',
      `${t.ip}:${t.port}`,
      '--namespace',
      'default',
    ]);
  const { stdout } = await cli(['list', '--output', 'json']);
  const have = (JSON.parse(stdout) as { customAttributes?: Record<string, string> }).customAttributes ?? {};
  const missing = Object.entries(SEARCH_ATTRIBUTE_TYPES).filter(([name]) => !(name in have));
  for (const [name, type] of missing) await cli(['create', '--name', name, '--type', type]);
  return missing.map(([name]) => name);
}

/** Temporal, MinIO and PowerDNS, each unless it runs. */
export function startServices(state: LabState) {
  const t = SERVICES.temporal;
  if (!alive(state.pids.temporal)) {
    state.pids.temporal = launch('temporal', bin.temporal, [
      'server',
      'start-dev',
      '--ip',
      t.ip,
      '--port',
      String(t.port),
      '--ui-ip',
      t.ip,
      '--ui-port',
      String(t.uiPort),
      '--db-filename',
      paths.temporalDb,
      '--log-level',
      'warn',
      '--namespace',
      'default',
      ...searchAttributeFlags(),
    ]);
  }
  const m = SERVICES.minio;
  if (!alive(state.pids.minio)) {
    const c = minioCreds();
    state.pids.minio = launch(
      'minio',
      bin.minio,
      [
        'server',
        paths.minioData,
        '--address',
        `${m.ip}:${m.port}`,
        '--console-address',
        `${m.ip}:${m.consolePort}`,
        '--quiet',
      ],
      {
        MINIO_ROOT_USER: c.accessKeyId,
        MINIO_ROOT_PASSWORD: c.secretAccessKey,
        MINIO_BROWSER: 'on',
      },
    );
  }
  if (!alive(state.pids.pdns)) {
    const [cmd, args] = pdnsCommand();
    state.pids.pdns = launch('pdns', cmd, args);
  }
}

/** The site's app endpoint (lab/app-endpoint.ts) on its app address; started like MinIO is. */
export function startApp(state: LabState, site: LabSite): boolean {
  if (alive(state.pids[appKey(site)])) return false;
  state.pids[appKey(site)] = launch(appKey(site), process.execPath, [
    '--import',
    'tsx',
    join(REPO, 'lab/app-endpoint.ts'),
    '--site',
    site.name,
    '--address',
    site.appAddress,
    '--port',
    String(site.appPort),
    '--kubeconfig',
    site.kubeconfig,
  ]);
  return true;
}

export async function ensureBucket(bucket: string) {
  const { ObjectStore } = await import('../gateways/s3.ts');
  const store = new ObjectStore({
    endpoint: `http://${SERVICES.minio.ip}:${SERVICES.minio.port}`,
    bucket,
    region: 'us-east-1',
    forcePathStyle: true,
    prefix: 'drctl/',
    credentials: { file: paths.minioCreds },
  });
  await store.ensureBucket();
}
