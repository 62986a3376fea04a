// The foundation against the running lab, through drctl's own gateways: real sshd (pinned host
// keys), real etcd 3.5 and 3.6 members with TLS, real MinIO, real kube-apiservers, the real
// Temporal dev server and drctl's worker.
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client, Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FailureType } from '../common/errors.ts';
import { loadConfig } from '../config/load.ts';
import type { DrctlConfig, NodeConfig } from '../config/schema.ts';
import { temporalConnectConfig } from '../config/temporal.ts';
import { connectShell, fingerprintOf, type RemoteShell } from '../gateways/ssh.ts';
import { paths, SITES } from '../lab/topology.ts';
import { createGateways, type Gateways } from '../worker/gateways.ts';
import { createWorker } from '../worker/worker.ts';
import { clusterHealth } from '../workflows/cluster-health.ts';
import { ensureLabHealthy, workflows } from './support/lab.ts';

let config: DrctlConfig;
let gw: Gateways;

const allNodes = () => config.sites.flatMap((s) => s.cluster.nodes.map((n) => ({ cluster: s.cluster.name, node: n })));

beforeAll(async () => {
  // Every component up, whatever the file before left (a killed sshd, a site down).
  await ensureLabHealthy();
  config = loadConfig(paths.config).config;
  gw = createGateways(config);
});
afterAll(() => gw?.close());

async function until<T>(what: string, fn: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  while (Date.now() < deadline) {
    last = await fn();
    if (ok(last)) return last;
    await sleep(300);
  }
  throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(last)}`);
}

describe('SSH with pinned host keys', () => {
  it('runs a command on every control-plane node, each its own host', async () => {
    const results = await Promise.all(
      allNodes().map(async ({ cluster, node }) => {
        const r = await gw
          .shell(cluster, node.name)
          .exec('pgrep -a etcd; cat /etc/kubernetes/manifests/etcd.yaml | grep -- --name=', { check: true });
        return { cluster, node: node.name, out: r.stdout };
      }),
    );
    expect(results).toHaveLength(6);
    for (const r of results) {
      // Only this node's etcd is visible on it (its own PID namespace), and its manifest names it.
      const etcds = r.out.split('\n').filter((l) => /^\d+ etcd /.test(l));
      expect(etcds, `${r.cluster}/${r.node}`).toHaveLength(1);
      expect(etcds[0]).toContain(`--name=${r.node}`);
    }
  });

  it('the pinned fingerprint is what ssh-keygen -lf prints for the host key', () => {
    const node = SITES[0]!.nodes[1]!;
    const pub = execFileSync('cat', [`${node.root}/etc/ssh/ssh_host_ed25519_key.pub`], { encoding: 'utf8' }).split(
      ' ',
    )[1]!;
    expect(fingerprintOf(Buffer.from(pub, 'base64'))).toBe(config.sites[0]!.cluster.nodes[1]!.ssh.hostKeyFingerprint);
  });

  it('streams a file to a node and back byte-identical, with its mode; a failing remote side is an error, not a hang', async () => {
    const shell = gw.shell('site-a', 'cp2');
    const data = randomBytes(3 * 1024 * 1024 + 17);
    const { pipeline } = await import('node:stream/promises');
    await pipeline(
      Readable.from([data.subarray(0, 1000), data.subarray(1000)]),
      await shell.writeStream('/var/lib/drctl-stream-test', 0o600),
    );
    expect((await shell.exec('stat -c "%s %a" /var/lib/drctl-stream-test', { check: true })).stdout.trim()).toBe(
      `${data.length} 600`,
    );
    const hash = createHash('sha256');
    await pipeline(await shell.readStream('/var/lib/drctl-stream-test'), async function* (src: AsyncIterable<Buffer>) {
      for await (const c of src) hash.update(c);
    });
    expect(hash.digest('hex')).toBe(createHash('sha256').update(data).digest('hex'));
    await shell.exec('rm -f /var/lib/drctl-stream-test', { check: true });

    const drain = async function* (src: AsyncIterable<Buffer>) {
      for await (const chunk of src) void chunk;
    };
    await expect(pipeline(await shell.readStream('/var/lib/no-such-file'), drain)).rejects.toMatchObject({
      type: FailureType.RemoteCommandFailed,
      message: expect.stringContaining('No such file'),
    });
    await expect(pipeline(Readable.from([data]), await shell.writeStream('/no/such/dir/file'))).rejects.toMatchObject({
      type: FailureType.RemoteCommandFailed,
    });
  });

  it('refuses a host whose key does not match (another node answering at that address)', async () => {
    const a1 = config.sites[0]!.cluster.nodes[0]!;
    const a2 = config.sites[0]!.cluster.nodes[1]!;
    const shell: RemoteShell = connectShell({
      label: 'site-a/cp1',
      ...a1.ssh,
      hostKeyFingerprint: a2.ssh.hostKeyFingerprint,
    });
    try {
      const err = await shell.exec('touch /tmp/should-never-run').then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toMatchObject({ type: FailureType.HostKeyMismatch, nonRetryable: true });
      expect(String((err as Error).message)).toContain(`does not match the pinned ${a2.ssh.hostKeyFingerprint}`);
    } finally {
      shell.close();
    }
  });
});

describe('etcd over SSH', () => {
  it('every one of the six members is healthy, site A on 3.5 and site B on 3.6', async () => {
    const checks = await Promise.all(
      allNodes().map(async ({ cluster, node }) => {
        const etcd = gw.etcd(cluster, node.name);
        return { cluster, node: node.name, health: await etcd.health(), status: await etcd.status() };
      }),
    );
    for (const c of checks) {
      expect(c.health.health, `${c.cluster}/${c.node}: ${c.health.error}`).toBe(true);
      expect(c.status.version).toMatch(c.cluster === 'site-a' ? /^3\.5\.\d+$/ : /^3\.6\.\d+$/);
    }
    const members = await gw.etcd('site-b', 'cp2').members();
    expect(members.map((m) => m.name).sort()).toEqual(['cp1', 'cp2', 'cp3']);
  });

  it("moving a node's etcd manifest aside stops that member; moving it back starts it", async () => {
    // In drctl's order: the node's API server first. On a kubeadm control-plane node the kubelet
    // talks to its own API server (ControlPlaneKubeletLocalMode), which talks to its own etcd: with
    // only etcd parked, the kubelet's mirror-pod calls time out (34 s, twice, measured) before it
    // starts etcd again. The site keeps quorum (2 of 3) and its other API servers throughout.
    const shell = gw.shell('site-b', 'cp3');
    const node = gw.node('site-b', 'cp3') as NodeConfig & { controlPlane: { manifestsDir: string; parkedDir: string } };
    const etcd = gw.etcd('site-b', 'cp3');
    const { manifestsDir, parkedDir } = node.controlPlane;
    const park = (c: string) => `mv ${manifestsDir}/${c}.yaml ${parkedDir}/${c}.yaml`;
    const unpark = (c: string) => `mv ${parkedDir}/${c}.yaml ${manifestsDir}/${c}.yaml`;
    await shell.exec(`mkdir -p ${parkedDir} && ${park('kube-apiserver')} && ${park('etcd')}`, { check: true });
    try {
      await until(
        'etcd process gone on site-b/cp3',
        () => shell.exec('pgrep -x etcd'),
        (r) => r.code === 1,
        45_000,
      );
      // Said at once, not after etcdctl's 5 s of retrying a refused dial.
      const t0 = Date.now();
      expect(await etcd.health()).toMatchObject({ health: false, error: 'no etcd process on the node' });
      expect(Date.now() - t0).toBeLessThan(4000);
      // The rest of the cluster keeps quorum.
      expect((await gw.etcd('site-b', 'cp1').health()).health).toBe(true);
    } finally {
      await shell.exec(`${unpark('etcd')} && ${unpark('kube-apiserver')}`, { check: true });
    }
    const t = Date.now();
    await until(
      'etcd healthy again on site-b/cp3',
      () => etcd.health(),
      (h) => h.health,
      60_000,
    );
    expect(Date.now() - t).toBeLessThan(20_000);
    // Run by the kubelet in a container: a process of its own, under the node's kubelet cgroup root.
    const r = await shell.exec('pgrep -x etcd && crictl ps --name "^etcd$" --state running -q', { check: true });
    expect(r.stdout.trim().split('\n')).toHaveLength(2);
    // Leave the lab whole: cp3's API server ready again too.
    await ensureLabHealthy();
  });
});

describe('object store (MinIO)', () => {
  it('put, head, list, get and delete; a multi-part upload streams and reads back byte-identical', async () => {
    const store = gw.store();
    const prefix = `test/${Date.now()}/`;
    await store.put(`${prefix}small.txt`, 'hello drctl', { cluster: 'site-a' });
    // 20 MiB in 1 MiB chunks through a stream: lib-storage sends it as several parts.
    const chunks = Array.from({ length: 20 }, () => randomBytes(1024 * 1024));
    const sha = createHash('sha256');
    for (const c of chunks) sha.update(c);
    await store.put(`${prefix}big.bin`, Readable.from(chunks), { sha256: sha.digest('hex') });

    const listed = await store.list(prefix);
    expect(listed.map((o) => o.key).sort()).toEqual([`${prefix}big.bin`, `${prefix}small.txt`]);
    const head = await store.head(`${prefix}big.bin`);
    expect(head?.size).toBe(20 * 1024 * 1024);
    const back = createHash('sha256');
    for await (const part of await store.get(`${prefix}big.bin`)) back.update(part as Buffer);
    expect(back.digest('hex')).toBe(head?.metadata.sha256);
    let small = '';
    for await (const part of await store.get(`${prefix}small.txt`)) small += String(part);
    expect(small).toBe('hello drctl');

    for (const o of listed) await store.delete(o.key);
    expect(await store.list(prefix)).toEqual([]);
    expect(await store.head(`${prefix}small.txt`)).toBeUndefined();
  });
});

describe('Kubernetes API servers', () => {
  it.each(['site-a', 'site-b'])(
    '%s: ready, and lists its namespaces with the admin client certificate',
    async (cluster) => {
      const kube = gw.kube(cluster);
      expect((await kube.readyz()).ready).toBe(true);
      const ns = await kube.listNamespaces();
      expect(ns).toEqual(expect.arrayContaining(['default', 'kube-system', 'kube-public']));
    },
  );
});

describe("Temporal round-trip through the project's worker", () => {
  it('runs the cluster-health runbook for both sites on the real dev server', async () => {
    const taskQueue = `test-${Date.now()}`;
    const {
      worker,
      gateways,
      connection: wconn,
    } = await createWorker({ ...config, temporal: { ...config.temporal, taskQueue } }, await workflows());
    const { connectionOptions, namespace } = temporalConnectConfig(config.temporal);
    const connection = await Connection.connect(connectionOptions);
    const client = new Client({ connection, namespace });
    try {
      const reports = await worker.runUntil(
        Promise.all(
          ['site-a', 'site-b'].map((cluster) =>
            client.workflow.execute(clusterHealth, {
              taskQueue,
              workflowId: `test-health-${cluster}-${Date.now()}`,
              args: [{ cluster }],
            }),
          ),
        ),
      );
      for (const r of reports) {
        expect(r.problems).toEqual([]);
        expect(r).toMatchObject({ ok: true, quorum: true, healthyMembers: 3, members: 3 });
        expect(r.kube.ready).toBe(true);
        expect(new Set(r.nodes.map((n) => n.etcd.leader)).size).toBe(1);
      }
      expect(reports[0]!.nodes[0]!.etcd.version).toMatch(/^3\.5\./);
      expect(reports[1]!.nodes[0]!.etcd.version).toMatch(/^3\.6\./);
    } finally {
      gateways.close();
      await connection.close();
      await wconn.close();
    }
  });
});

describe('drctl lab status / env (CLI)', () => {
  it('status --json lists every component healthy with an address and a pid', () => {
    let comps = JSON.parse(
      execFileSync(process.execPath, ['bin/drctl.js', 'lab', 'status', '--json'], { encoding: 'utf8' }),
    ) as { name: string; kind: string; address: string; pid?: number; healthy: boolean; detail: string }[];
    // The two sites' (the stretched cluster, when up, is listed after them under stretched/).
    const all = comps;
    comps = all.filter((c) => !c.name.startsWith('stretched/'));
    expect(comps.filter((c) => c.kind === 'etcd')).toHaveLength(6);
    expect(comps.filter((c) => c.kind === 'sshd')).toHaveLength(6);
    // kubeadm: every control-plane node runs an API server and a kubelet; site B has a bastion.
    expect(comps.filter((c) => c.kind === 'kube-apiserver')).toHaveLength(6);
    expect(comps.filter((c) => c.kind === 'kubelet')).toHaveLength(6);
    expect(comps.filter((c) => c.kind === 'bastion')).toHaveLength(1);
    for (const kind of ['kube-controller-manager', 'kube-scheduler', 'kwok', 'velero', 'app'])
      expect(
        comps.filter((c) => c.kind === kind),
        kind,
      ).toHaveLength(2);
    expect(comps.filter((c) => c.kind === 'pdns')).toHaveLength(1);
    for (const c of comps) {
      expect(c.healthy, c.name).toBe(true);
      expect(c.pid, c.name).toBeGreaterThan(0);
      if (c.kind === 'worker') expect(c.detail).toBe("polling 'drctl'");
      else expect(c.address, c.name).toMatch(/^(https?:\/\/)?(127\.0\.|172\.30\.)|^site-[ab]\/cp\d \(leader\)$/);
    }
    for (const c of all.filter((x) => x.name.startsWith('stretched/'))) expect(c.healthy, c.name).toBe(true);
  });

  it("env --site exports work with the real etcdctl and the site's kube-apiserver", () => {
    const out = execFileSync(
      'bash',
      [
        '-c',
        'eval "$(node bin/drctl.js lab env --site site-b)"; etcdctl endpoint health -w json; kubectl get ns -o name',
      ],
      { encoding: 'utf8' },
    );
    const [healthJson, ...ns] = out.trim().split('\n');
    const health = JSON.parse(healthJson!) as { health: boolean }[];
    expect(health).toHaveLength(3);
    expect(health.every((h) => h.health)).toBe(true);
    expect(ns).toContain('namespace/kube-system');
  });
});
