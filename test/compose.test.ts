// docker-compose.yml, run for real: `nerdctl compose up --build` on the drctl host's own containerd
// (lab/compose.ts), every image built here, the worker image built from the Dockerfile by BuildKit.
// Its Temporal, Web UI and MinIO answer on the published ports; its worker, in a container on the
// compose network, runs a cluster check against the lab's site B (SSH through the bastion with
// pinned host keys, etcd, the API server), started from this machine's CLI through the compose
// Temporal. Then `compose down -v` leaves nothing of the project running.
import { HeadBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COMPOSE, composeDown, composeImages, composeUp, nerdctl } from '../lab/compose.ts';
import { bin, paths } from '../lab/topology.ts';
import { drctlCli, ensureLabHealthy, until } from './support/lab.ts';

const run = promisify(execFile);
const temporalAt = `${COMPOSE.ip}:7233`;
const secrets = () => JSON.parse(readFileSync(join(COMPOSE.dir, 'secrets.json'), 'utf8')) as Record<string, string>;

interface Poller {
  identity: string;
  lastAccessTime?: string;
}
async function workflowPollers(): Promise<Poller[]> {
  const { stdout } = await run(bin.temporal, [
    'task-queue',
    'describe',
    '--address',
    temporalAt,
    '--task-queue',
    'drctl',
    '--task-queue-type',
    'workflow',
    '--output',
    'json',
  ]);
  const j = JSON.parse(stdout) as { pollers?: Poller[] } | Poller[];
  return (Array.isArray(j) ? j : (j.pollers ?? [])).filter((p) => p.identity);
}

describe('docker-compose.yml under nerdctl compose', () => {
  let upMs = 0;
  beforeAll(async () => {
    await ensureLabHealthy();
    upMs = (await composeUp()).tookMs;
    process.stderr.write(`[compose] up --build in ${(upMs / 1000).toFixed(1)} s\n`);
  }, 1_500_000);
  afterAll(async () => {
    await composeDown();
  }, 300_000);

  it('runs all five services, each from the image the file names', async () => {
    const { stdout } = await nerdctl([
      'compose',
      '-f',
      COMPOSE.file,
      '-p',
      COMPOSE.project,
      'ps',
      '-a',
      '--format',
      'json',
    ]);
    const rows = stdout
      .trim()
      .split('\n')
      .filter(Boolean)
      .flatMap((l) => JSON.parse(l) as { Service: string; Image: string; State: string; ExitCode?: number }[] | object)
      .flat() as { Service: string; Image: string; State: string; ExitCode?: number }[];
    const by = Object.fromEntries(rows.map((r) => [r.Service, r]));
    expect(Object.keys(by).sort()).toEqual(['minio', 'minio-init', 'temporal', 'temporal-ui', 'worker']);
    expect(by.temporal!.Image).toContain(composeImages.temporal);
    expect(by['temporal-ui']!.Image).toContain(composeImages.ui);
    expect(by.worker!.Image).toContain(composeImages.worker);
    for (const s of ['temporal', 'temporal-ui', 'minio', 'worker']) expect(by[s]!.State, s).toBe('running');
  });

  it('serves Temporal, its Web UI and MinIO with the off-site buckets minio-init made', async () => {
    await until(
      'the compose Temporal to answer',
      () => run(bin.temporal, ['operator', 'cluster', 'health', '--address', temporalAt]).then((r) => r.stdout),
      (out) => /SERVING/i.test(out),
      120_000,
      1000,
    );
    const page = await until(
      'the Web UI to serve',
      () => fetch(`http://${COMPOSE.ip}:8233/`).then(async (r) => ({ status: r.status, body: await r.text() })),
      (r) => r.status === 200,
      60_000,
      1000,
    );
    expect(page.body).toMatch(/<html/i);
    const s = secrets();
    const s3 = new S3Client({
      endpoint: `http://${COMPOSE.ip}:9000`,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: s.MINIO_ROOT_USER!, secretAccessKey: s.MINIO_ROOT_PASSWORD! },
    });
    for (const bucket of ['drctl-offsite', 'velero-backups'])
      await until(
        `bucket ${bucket}`,
        () => s3.send(new HeadBucketCommand({ Bucket: bucket })).then(() => true),
        (ok) => ok,
        120_000,
        1000,
      );
    s3.destroy();
  });

  it('its worker, built from the Dockerfile, runs a cluster check of site B against the lab', async () => {
    const pollers = await until('the compose worker to poll', workflowPollers, (p) => p.length > 0, 180_000, 1000);
    // The container's hostname, not this machine's: the worker polling there is the compose one.
    for (const p of pollers) expect(p.identity).not.toContain(`@${hostname()}`);
    const { stdout: uid } = await nerdctl([
      'compose',
      '-f',
      COMPOSE.file,
      '-p',
      COMPOSE.project,
      'exec',
      '-T',
      'worker',
      'id',
      '-u',
    ]);
    expect(uid.trim()).toBe(String(COMPOSE.uid));

    const r = await drctlCli(['--config', paths.config, 'cluster', 'check', '--cluster', 'site-b', '--json'], {
      TEMPORAL_ADDRESS: temporalAt,
    });
    expect(r.status, r.stderr).toBe(0);
    const [check] = JSON.parse(r.stdout) as {
      workflowId: string;
      result: { ok: boolean; quorum: boolean; nodes: { node: string; reachable: boolean }[]; kube: { ready: boolean } };
    }[];
    expect(check!.result.ok).toBe(true);
    expect(check!.result.quorum).toBe(true);
    expect(check!.result.kube.ready).toBe(true);
    expect(check!.result.nodes.length).toBeGreaterThanOrEqual(3);
    for (const n of check!.result.nodes) expect(n.reachable, n.node).toBe(true);
    // The run's history says which worker ran it: one of the compose worker's pollers.
    const { stdout: hist } = await run(bin.temporal, [
      'workflow',
      'show',
      '--address',
      temporalAt,
      '--workflow-id',
      check!.workflowId,
      '--output',
      'json',
    ]);
    const identities = [...hist.matchAll(/"identity":\s*"([^"]+)"/g)].map((m) => m[1]!);
    const workerIds = new Set(pollers.map((p) => p.identity));
    expect(
      identities.some((i) => workerIds.has(i)),
      identities.join(', '),
    ).toBe(true);
  });

  it('a killed worker container is started again by containerd (restart: always) and runs the next check', async () => {
    const stateOf = async () => {
      const { stdout } = await nerdctl(['inspect', '--format', '{{.State.Pid}} {{.State.Running}}', 'drctl-worker-1']);
      const [pid, running] = stdout.trim().split(' ');
      return { pid: Number(pid), running: running === 'true' };
    };
    const before = await stateOf();
    expect(before.running).toBe(true);
    await nerdctl(['kill', 'drctl-worker-1']);
    // containerd's restart monitor looks every 10 s.
    await until('the worker container to run again', stateOf, (s) => s.running && s.pid !== before.pid, 60_000, 1000);
    const r = await drctlCli(['--config', paths.config, 'cluster', 'check', '--cluster', 'site-a', '--json'], {
      TEMPORAL_ADDRESS: temporalAt,
    });
    expect(r.status, r.stderr).toBe(0);
    const [check] = JSON.parse(r.stdout) as { result: { ok: boolean; nodes: { reachable: boolean }[] } }[];
    expect(check!.result.ok).toBe(true);
    expect(check!.result.nodes.every((n) => n.reachable)).toBe(true);
  });
});
