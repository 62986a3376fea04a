// The lab's servers outside the nodes: the Temporal dev server (state in .lab/temporal), MinIO (the
// off-site bucket and Velero's), PowerDNS (laid out and driven by lab/pdns.ts) and each site's app
// endpoint (lab/app-endpoint.ts). Each is started only when its recorded process is not running.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pdnsCommand } from './pdns.ts';
import { alive, launch, type LabState } from './processes.ts';
import { bin, type LabSite, paths, REPO, SERVICES } from './topology.ts';

export const appKey = (site: LabSite) => `${site.name}/app`;

export function minioCreds(): { accessKeyId: string; secretAccessKey: string } {
  const text = readFileSync(paths.minioCreds, 'utf8');
  return {
    accessKeyId: text.match(/accessKeyId: (\S+)/)![1]!,
    secretAccessKey: text.match(/secretAccessKey: (\S+)/)![1]!,
  };
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
