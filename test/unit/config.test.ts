// `drctl config check` on a table of bad files: each gives its one-line error naming the field and
// exit 2, never a stack trace. Pure logic: no lab needed.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { parseDocument } from 'yaml';
import { main } from '../../client/main.ts';
import { parseDuration } from '../../common/duration.ts';
import { parseConfig } from '../../config/load.ts';

const VALID = readFileSync(new URL('../fixtures/valid.yaml', import.meta.url), 'utf8');
const dir = mkdtempSync(join(tmpdir(), 'drctl-config-'));

/** The valid fixture with one edit applied at a YAML path. */
function edit(path: (string | number)[], value: unknown, op: 'set' | 'delete' = 'set'): string {
  const doc = parseDocument(VALID);
  if (op === 'delete') doc.deleteIn(path);
  else doc.setIn(path, value);
  return doc.toString();
}

async function check(text: string): Promise<{ code: number; stderr: string; stdout: string }> {
  const file = join(dir, `c${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, text);
  let stderr = '';
  let stdout = '';
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((s) => ((stderr += String(s)), true));
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((s) => ((stdout += String(s)), true));
  try {
    const code = await main(['node', 'drctl', '--config', file, 'config', 'check']);
    return { code, stderr: stderr.replaceAll(`${file}: `, ''), stdout };
  } finally {
    e.mockRestore();
    o.mockRestore();
  }
}

/** The valid fixture with a dns section (and the appAddress it needs), `over` replacing its fields. */
function withDns(over: object): string {
  const doc = parseDocument(VALID);
  doc.setIn(['sites', 0, 'appAddress'], '10.0.1.100');
  doc.setIn(['sites', 1, 'appAddress'], '10.0.2.100');
  doc.setIn(['dns'], {
    powerdns: { api: 'https://10.0.30.5:8081', apiKey: { env: 'PDNS_KEY' } },
    nameserver: '10.0.30.5:53',
    zone: 'example.com.',
    records: [{ name: 'app.example.com' }],
    ...over,
  });
  return doc.toString();
}

const node0b = ['sites', 1, 'cluster', 'nodes', 0];
const FP = 'SHA256:7b7kVQJm0m6eH7m6rW8fQz9uJ1Q9v8m2x5c4b3a2Z1Y';

/** The valid fixture plus a stretched cluster: site-a's nodes (peer URLs moved) standing in `sites`. */
function withStretched(sites: (string | undefined)[], name = 'stretched'): string {
  const doc = parseDocument(VALID);
  const c = (doc.getIn(['sites', 0, 'cluster']) as { toJSON(): { nodes: Record<string, unknown>[] } }).toJSON();
  const nodes = c.nodes.map((n, i) => {
    const etcd = n.etcd as Record<string, string>;
    return {
      ...n,
      etcd: { ...etcd, peerUrl: etcd.peerUrl!.replace(/:2380/, ':12380'), memberName: `s${i}` },
      ...(sites[i] === undefined ? {} : { site: sites[i] }),
    };
  });
  doc.setIn(['clusters'], [{ ...c, name, nodes }]);
  return doc.toString();
}

const BAD: [string, string, string[]][] = [
  [
    'a stretched node without its site',
    withStretched(['site-a', undefined, 'site-b']),
    ['clusters[0].nodes[1].site: expected the site this node stands in (sites: site-a, site-b)'],
  ],
  [
    'a stretched node in an unknown site',
    withStretched(['site-a', 'site-c', 'site-b']),
    ["clusters[0].nodes[1].site: unknown site 'site-c' (sites: site-a, site-b)"],
  ],
  [
    "a stretched cluster named like a site's",
    withStretched(['site-a', 'site-a', 'site-b'], 'prod-b'),
    ["clusters[0].name: duplicate cluster name 'prod-b' (also at index 1)"],
  ],
  [
    "a site's node standing in another site",
    edit(['sites', 0, 'cluster', 'nodes', 0, 'site'], 'site-b'),
    [
      "sites[0].cluster.nodes[0].site: a node of site 'site-a''s cluster stands in that site (a cluster across sites goes under clusters:)",
    ],
  ],
  [
    'port out of range',
    edit([...node0b, 'ssh', 'port'], 70000),
    ['sites[1].cluster.nodes[0].ssh.port: expected an integer 1-65535'],
  ],
  [
    'port not a number',
    edit([...node0b, 'ssh', 'port'], '22x'),
    ['sites[1].cluster.nodes[0].ssh.port: expected an integer 1-65535'],
  ],
  [
    'fingerprint missing',
    edit(['sites', 0, 'cluster', 'nodes', 2, 'ssh', 'hostKeyFingerprint'], null, 'delete'),
    ['sites[0].cluster.nodes[2].ssh.hostKeyFingerprint: required: expected a host-key fingerprint like SHA256:...'],
  ],
  [
    'fingerprint in MD5 form',
    edit(['sites', 0, 'cluster', 'nodes', 0, 'ssh', 'hostKeyFingerprint'], 'MD5:12:34'),
    [
      'sites[0].cluster.nodes[0].ssh.hostKeyFingerprint: expected a host-key fingerprint like SHA256:<43 base64 chars> (ssh-keygen -lf)',
    ],
  ],
  ['unknown role', edit(['sites', 1, 'role'], 'secondary'), ["sites[1].role: expected 'primary' or 'dr'"]],
  [
    'two primaries',
    edit(['sites', 1, 'role'], 'primary'),
    ["sites: expected exactly one site with role 'primary' (found 2)"],
  ],
  ['typo in a field name', edit(['sites', 0, 'cluster', 'nodez'], []), ['sites[0].cluster.nodez: unknown field']],
  [
    'duplicate node',
    edit(['sites', 0, 'cluster', 'nodes', 1, 'name'], 'cp1'),
    ["sites[0].cluster.nodes[1].name: duplicate node name 'cp1' (also at index 0)"],
  ],
  [
    'even member count',
    edit(['sites', 0, 'cluster', 'nodes', 2], null, 'delete'),
    ['sites[0].cluster.nodes: expected an odd number of etcd members for quorum (found 2)'],
  ],
  [
    'inline S3 keys',
    edit(['objectStore', 'credentials'], { accessKeyId: 'AKIA', secretAccessKey: 'hunter2' }),
    ['objectStore.credentials: expected { accessKeyIdEnv, secretAccessKeyEnv } or { file } (never inline keys)'],
  ],
  [
    'an inline snapshot encryption key',
    edit(['snapshots', 'encryptionKey'], 'q83vEjRWeJASNFZ4kBI0VniQEjRWeJASNFZ4kBI0Vng='),
    [
      'snapshots.encryptionKey: expected { file: path } or { env: VAR } holding a base64 32-byte key (never the key inline)',
    ],
  ],
  [
    'an inline signing key in a key field',
    edit(['snapshots', 'signingKey'], { key: 'q83vEjRWeJASNFZ4kBI0VniQEjRWeJASNFZ4kBI0Vng=' }),
    [
      'snapshots.signingKey: expected { file: path } or { env: VAR } holding a base64 32-byte key (never the key inline)',
    ],
  ],
  [
    'no snapshots section (no keys)',
    edit(['snapshots'], null, 'delete'),
    ['snapshots: required: expected a snapshots section with encryptionKey and signingKey ({ file } or { env })'],
  ],
  [
    'no signing key',
    edit(['snapshots', 'signingKey'], null, 'delete'),
    [
      'snapshots.signingKey: expected { file: path } or { env: VAR } holding a base64 32-byte key (never the key inline)',
    ],
  ],
  [
    'one key for both',
    edit(['snapshots', 'signingKey'], { file: 'keys/snapshot-encryption.key' }),
    ['snapshots.signingKey: expected a key of its own, not the encryption key'],
  ],
  [
    'a key variable that is not a variable name',
    edit(['snapshots', 'signingKey'], { env: '$DRCTL_KEY' }),
    ['snapshots.signingKey.env: expected an environment variable name'],
  ],
  [
    'client URL not a URL',
    edit([...node0b, 'etcd', 'clientUrl'], '10.0.20.1:2379'),
    ['sites[1].cluster.nodes[0].etcd.clientUrl: expected a URL like https://10.0.0.1:2379'],
  ],
  [
    'two-person rule with one approver',
    edit(['approvals', 'approvers'], ['alice']),
    ['approvals.approvers: the two-person rule needs at least two approvers'],
  ],
  [
    'bad duration',
    edit(['targets', 'payment', 'rto'], 'fast'),
    ['targets.payment.rto: expected a duration like 90s, 15m, 1h (got "fast")'],
  ],
  [
    'unknown control-plane profile',
    edit([...node0b, 'controlPlane'], { profile: 'systemd' }),
    ["sites[1].cluster.nodes[0].controlPlane.profile: expected profile 'kubeadm' or 'command'"],
  ],
  [
    'a restart-after-restore pod given as a path',
    edit([...node0b, 'controlPlane'], { profile: 'kubeadm', restartAfterRestore: ['/usr/bin/velero'] }),
    ['sites[1].cluster.nodes[0].controlPlane.restartAfterRestore[0]: expected a static pod name'],
  ],
  [
    'a rollout without its namespace',
    edit(['sites', 1, 'cluster', 'rolloutAfterRestore'], ['velero']),
    ['sites[1].cluster.rolloutAfterRestore[0]: expected namespace/deployment'],
  ],
  [
    'relative node path',
    edit([...node0b, 'etcd', 'dataDir'], 'var/lib/etcd'),
    ['sites[1].cluster.nodes[0].etcd.dataDir: expected an absolute path'],
  ],
  [
    'data dir is /',
    edit([...node0b, 'etcd', 'dataDir'], '/'),
    ["sites[1].cluster.nodes[0].etcd.dataDir: expected a path below '/', not '/' itself"],
  ],
  [
    'data dir with a trailing slash',
    edit([...node0b, 'etcd', 'dataDir'], '/var/lib/etcd/'),
    ["sites[1].cluster.nodes[0].etcd.dataDir: expected no trailing slash (got '/var/lib/etcd/')"],
  ],
  [
    'data dir with a .. segment',
    edit([...node0b, 'etcd', 'dataDir'], '/var/lib/../etcd'),
    [
      "sites[1].cluster.nodes[0].etcd.dataDir: expected a plain absolute path without '.', '..' or '//' (got '/var/lib/../etcd')",
    ],
  ],
  [
    'a TLS file path ending in ..',
    edit(['sites', 0, 'cluster', 'nodes', 1, 'etcd', 'tls'], { caFile: '/etc/kubernetes/pki/..' }),
    [
      "sites[0].cluster.nodes[1].etcd.tls.caFile: expected a plain absolute path without '.', '..' or '//' (got '/etc/kubernetes/pki/..')",
    ],
  ],
  [
    'snapshot node dir is /',
    edit(['snapshots', 'nodeDir'], '/'),
    ["snapshots.nodeDir: expected a path below '/', not '/' itself"],
  ],
  [
    'snapshot node dir inside a data dir',
    edit(['snapshots', 'nodeDir'], '/var/lib/etcd/snapshots'),
    [
      "snapshots.nodeDir: expected a dir apart from etcd's data dir (sites[0].cluster.nodes[0].etcd.dataDir is /var/lib/etcd)",
    ],
  ],
  [
    'manifests parked inside the manifests dir',
    edit(['sites', 0, 'cluster', 'nodes', 0, 'controlPlane'], {
      profile: 'kubeadm',
      parkedDir: '/etc/kubernetes/manifests/parked',
    }),
    [
      'sites[0].cluster.nodes[0].controlPlane.parkedDir: expected a dir outside controlPlane.manifestsDir (/etc/kubernetes/manifests): the kubelet would run what is parked',
    ],
  ],
  [
    "a ',' in a member name",
    edit([...node0b, 'etcd', 'memberName'], 'cp1,cp2'),
    [
      "sites[1].cluster.nodes[0].etcd.memberName: expected an etcd member name without ',', '=' or whitespace (--initial-cluster)",
    ],
  ],
  [
    "a '=' in a member name",
    edit([...node0b, 'etcd', 'memberName'], 'cp1=https://10.0.20.9:2380'),
    [
      "sites[1].cluster.nodes[0].etcd.memberName: expected an etcd member name without ',', '=' or whitespace (--initial-cluster)",
    ],
  ],
  [
    'whitespace in a member name',
    edit([...node0b, 'etcd', 'memberName'], 'cp 1'),
    [
      "sites[1].cluster.nodes[0].etcd.memberName: expected an etcd member name without ',', '=' or whitespace (--initial-cluster)",
    ],
  ],
  [
    'health watch interval 0',
    edit(['failover'], { namespaces: ['shop'], healthWatch: { interval: 0 } }),
    ['failover.healthWatch.interval: expected a duration above 0 (0 probes in a busy loop)'],
  ],
  [
    'failover restore timeout 0s',
    edit(['failover'], { namespaces: ['shop'], restoreTimeout: '0s' }),
    ['failover.restoreTimeout: expected a duration above 0 (0 gives up at once)'],
  ],
  [
    'approval timeout 0',
    edit(['approvals', 'timeout'], '0'),
    ['approvals.timeout: expected a duration above 0 (0 gives up at once)'],
  ],
  [
    'ssh connect timeout 0',
    edit([...node0b, 'ssh', 'connectTimeout'], 0),
    ['sites[1].cluster.nodes[0].ssh.connectTimeout: expected a duration above 0 (0 gives up before connecting)'],
  ],
  [
    'an RTO of 0',
    edit(['targets', 'e-commerce', 'rto'], '0s'),
    ['targets.e-commerce.rto: expected a duration above 0 (0 can never be met)'],
  ],
  [
    'snapshots every 0',
    edit(['snapshots', 'every'], 0),
    ['snapshots.every: expected at least 60s (snapshots would overlap their own upload)'],
  ],
  [
    'snapshots max age 0',
    edit(['snapshots', 'maxAge'], '0s'),
    ['snapshots.maxAge: expected a duration above 0 (0 deletes every snapshot but the newest)'],
  ],
  [
    'snapshots max age within one interval',
    edit(['snapshots'], {
      every: '1h',
      maxAge: '30m',
      encryptionKey: { file: 'keys/snapshot-encryption.key' },
      signingKey: { env: 'DRCTL_SNAPSHOT_SIGNING_KEY' },
    }),
    ['snapshots.maxAge: expected more than snapshots.every (60m): each run would delete every snapshot but the newest'],
  ],
  [
    'approvers differing only in case',
    edit(['approvals', 'approvers'], ['alice', 'bob', 'Alice']),
    [
      'approvals.approvers[2]: Alice has no public key in approvals.signers (every decision is signed; approvals.unsigned: allow turns that off)',
      "approvals.approvers[2]: duplicate approver 'Alice' (also at index 0 as 'alice')",
    ],
  ],
  [
    'an approver without a signing key',
    edit(['approvals', 'approvers'], ['alice', 'bob', 'carol']),
    [
      'approvals.approvers[2]: carol has no public key in approvals.signers (every decision is signed; approvals.unsigned: allow turns that off)',
    ],
  ],
  [
    'a signing key that is not an SSH public key',
    edit(['approvals', 'signers', 'bob'], 'AAAAC3NzaC1lZDI1NTE5 bob'),
    ["approvals.signers.bob[0]: expected a public key line like 'ssh-ed25519 AAAA… alice@laptop'"],
  ],
  [
    'unsigned approvals: a typo',
    edit(['approvals', 'unsigned'], 'yes'),
    ["approvals.unsigned: expected 'refuse' or 'allow'"],
  ],
  [
    'an approver twice',
    edit(['approvals', 'approvers'], ['alice', 'alice']),
    ["approvals.approvers[1]: duplicate approver 'alice' (also at index 0)"],
  ],
  [
    'a dns record outside the zone',
    withDns({ records: [{ name: 'app.example.com' }, { name: 'app.example.org.' }] }),
    ["dns.records[1].name: 'app.example.org' is not in the zone example.com"],
  ],
  [
    'a dns record that only ends like the zone',
    withDns({ records: [{ name: 'appexample.com' }] }),
    ["dns.records[0].name: 'appexample.com' is not in the zone example.com"],
  ],
  [
    'temporal tls off with an API key',
    edit(['temporal'], { address: 'temporal.example.internal:7233', tls: false, apiKeyEnv: 'TEMPORAL_KEY' }),
    ['temporal.tls: tls: false with apiKeyEnv would send the API key in clear text (an API key turns TLS on)'],
  ],
  ['no sites', edit(['sites'], []), ['sites: expected at least one site']],
  [
    'sudo not a boolean',
    edit([...node0b, 'ssh', 'sudo'], 'yes'),
    ['sites[1].cluster.nodes[0].ssh.sudo: expected true or false'],
  ],
  [
    'jump without its host key',
    edit([...node0b, 'ssh', 'jump'], { host: 'bastion', privateKeyPath: '/k' }),
    [
      'sites[1].cluster.nodes[0].ssh.jump.hostKeyFingerprint: required: expected a host-key fingerprint like SHA256:...',
    ],
  ],
  [
    'jump port out of range',
    edit([...node0b, 'ssh', 'jump'], { host: 'bastion', port: 0, privateKeyPath: '/k', hostKeyFingerprint: FP }),
    ['sites[1].cluster.nodes[0].ssh.jump.port: expected an integer 1-65535'],
  ],
  [
    'a field the jump host does not have',
    edit([...node0b, 'ssh', 'jump'], { host: 'b', privateKeyPath: '/k', hostKeyFingerprint: FP, sudo: true }),
    ['sites[1].cluster.nodes[0].ssh.jump.sudo: unknown field'],
  ],
  [
    'unknown tools source',
    edit(['sites', 0, 'cluster', 'nodes', 0, 'etcd', 'tools'], { from: 'docker' }),
    ["sites[0].cluster.nodes[0].etcd.tools.from: expected from: 'image' or from: 'host'"],
  ],
  [
    'host tool path not absolute',
    edit(['sites', 0, 'cluster', 'nodes', 0, 'etcd', 'tools'], { from: 'host', etcdctl: 'bin/etcdctl' }),
    ['sites[0].cluster.nodes[0].etcd.tools.etcdctl: expected an absolute path'],
  ],
  [
    'image tools with the command profile',
    edit([...node0b, 'etcd', 'tools'], { from: 'image' }),
    [
      "sites[1].cluster.nodes[0].etcd.tools.from: 'image' reads the etcd image from the static pod manifest: it needs controlPlane.profile kubeadm",
    ],
  ],
  [
    'image tools take no paths',
    edit(['sites', 0, 'cluster', 'nodes', 0, 'etcd', 'tools'], { from: 'image', etcdctl: '/usr/bin/etcdctl' }),
    ['sites[0].cluster.nodes[0].etcd.tools.etcdctl: unknown field'],
  ],
  [
    'bad containerd namespace',
    edit(['sites', 0, 'cluster', 'nodes', 0, 'containerd'], { namespace: 'k8s io' }),
    ['sites[0].cluster.nodes[0].containerd.namespace: expected a containerd namespace'],
  ],
  [
    'YAML: a key given twice',
    `${VALID}\napprovals: { approvers: [mallory] }\n`,
    // The duplicate is the line after the fixture and a blank one.
    [`line ${VALID.split('\n').length + 1} column 1: Map keys must be unique`],
  ],
  ['YAML: unclosed quote', 'sites:\n  - name: "site-a\n', ['line 3 column 1: Missing closing "quote']],
  [
    'two problems at once',
    edit([...node0b, 'ssh', 'port'], 0).replace('role: dr', 'role: standby'),
    ["sites[1].role: expected 'primary' or 'dr'", 'sites[1].cluster.nodes[0].ssh.port: expected an integer 1-65535'],
  ],
];

describe('drctl config check', () => {
  beforeEach(() => {
    delete process.env.DRCTL_CONFIG;
  });
  afterEach(() => vi.restoreAllMocks());

  it('accepts the valid fixture and fills the defaults', async () => {
    const r = await check(VALID);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const cfg = parseConfig(VALID, join(dir, 'x.yaml'));
    expect(cfg.sites[0]!.cluster.nodes[0]!.etcd.dataDir).toBe('/var/lib/etcd');
    expect(cfg.sites[0]!.cluster.nodes[0]!.controlPlane).toEqual({
      profile: 'kubeadm',
      manifestsDir: '/etc/kubernetes/manifests',
      parkedDir: '/etc/kubernetes/manifests-parked',
      apiserverStopGrace: 1_000,
      restartAfterRestore: ['kube-controller-manager', 'kube-scheduler'],
      kubeletRestart: 'systemctl restart kubelet',
    });
    expect(cfg.sites[0]!.cluster.rolloutAfterRestore).toEqual(['velero/velero']);
    // Worker-side relative paths are resolved against the config file's directory.
    expect(cfg.sites[1]!.cluster.kubeconfig).toBe(join(dir, 'kube/prod-b.conf'));
    expect(cfg.targets['internal']).toEqual({ rpo: 3_600_000, rto: 14_400_000 });
    expect(cfg.targets['payment']).toEqual({ rpo: 0, rto: 60_000 });
    // The snapshot keys: references, the file one resolved like every worker-side path.
    expect(cfg.snapshots.encryptionKey).toEqual({ file: join(dir, 'keys/snapshot-encryption.key') });
    expect(cfg.snapshots.signingKey).toEqual({ env: 'DRCTL_SNAPSHOT_SIGNING_KEY' });
    expect(cfg.restore).toEqual({ keepMovedAside: 7 * 86_400_000 });
  });

  it('node-side defaults: no sudo, no jump, tools from the image (kubeadm) or the host (command)', () => {
    const cfg = parseConfig(VALID, join(dir, 'x.yaml'));
    const a = cfg.sites[0]!.cluster.nodes[0]!;
    const b = cfg.sites[1]!.cluster.nodes[0]!;
    expect(a.ssh.sudo).toBe(false);
    expect(a.ssh.jump).toBeUndefined();
    expect(a.etcd.tools).toEqual({ from: 'image' });
    expect(b.etcd.tools).toEqual({ from: 'host' });
    expect(a.containerd).toEqual({ address: '/run/containerd/containerd.sock', namespace: 'k8s.io' });
  });

  it('a hardened site-B node: sudo, a bastion, tools from the image', () => {
    const text = edit([...node0b], {
      name: 'cp1',
      ssh: {
        host: '10.0.20.1',
        user: 'drctl',
        sudo: true,
        privateKeyPath: '/etc/drctl/ssh/id_ed25519',
        hostKeyFingerprint: FP,
        jump: { host: '203.0.113.10', user: 'jump', privateKeyPath: '/etc/drctl/ssh/bastion', hostKeyFingerprint: FP },
      },
      etcd: {
        memberName: 'cp1',
        clientUrl: 'https://10.0.20.1:2379',
        peerUrl: 'https://10.0.20.1:2380',
        tools: { from: 'image' },
      },
    });
    const n = parseConfig(text, join(dir, 'x.yaml')).sites[1]!.cluster.nodes[0]!;
    expect(n.ssh).toMatchObject({ user: 'drctl', sudo: true, port: 22 });
    expect(n.ssh.jump).toEqual({
      host: '203.0.113.10',
      port: 22,
      user: 'jump',
      privateKeyPath: '/etc/drctl/ssh/bastion',
      hostKeyFingerprint: FP,
      connectTimeout: 10_000,
    });
    expect(n.etcd.tools).toEqual({ from: 'image' });
    expect(n.controlPlane.profile).toBe('kubeadm');
    const host = edit(['sites', 0, 'cluster', 'nodes', 0, 'etcd', 'tools'], {
      from: 'host',
      etcdutl: '/opt/etcd/etcdutl',
    });
    expect(parseConfig(host, join(dir, 'x.yaml')).sites[0]!.cluster.nodes[0]!.etcd.tools).toEqual({
      from: 'host',
      etcdutl: '/opt/etcd/etcdutl',
    });
  });

  it('a stretched cluster whose nodes each name a site passes', async () => {
    const r = await check(withStretched(['site-a', 'site-a', 'site-b']));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  it.each(BAD)('%s: exit 2 with the field named, no stack trace', async (_name, text, lines) => {
    const r = await check(text);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual(lines.map((l) => `error: ${l}`));
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('a missing file says so and how to get one', async () => {
    let stderr = '';
    vi.spyOn(process.stderr, 'write').mockImplementation((s) => ((stderr += String(s)), true));
    const code = await main(['node', 'drctl', '--config', join(dir, 'nope.yaml'), 'config', 'check']);
    expect(code).toBe(2);
    expect(stderr).toBe(
      `error: ${join(dir, 'nope.yaml')}: file not found (use --config, $DRCTL_CONFIG, or run \`drctl lab up\`)\n`,
    );
  });

  it('the real command exits 2 with one line per problem and no stack (subprocess)', () => {
    const file = join(dir, 'sub.yaml');
    writeFileSync(file, BAD.find(([name]) => name === 'port out of range')![1]);
    const r = spawnSync(process.execPath, ['bin/drctl.js', 'config', 'check', '--config', file], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toBe(`error: ${file}: sites[1].cluster.nodes[0].ssh.port: expected an integer 1-65535`);
    const okFile = join(dir, 'ok.yaml');
    writeFileSync(okFile, VALID);
    const out = JSON.parse(
      execFileSync(process.execPath, ['bin/drctl.js', '--config', okFile, 'config', 'check', '--json'], {
        encoding: 'utf8',
      }),
    ) as {
      valid: boolean;
      config: { sites: { cluster: { nodes: { ssh: { port: number } }[] } }[] };
    };
    expect(out.valid).toBe(true);
    expect(out.config.sites[0]!.cluster.nodes[0]!.ssh.port).toBe(22);
  });
});

describe('durations', () => {
  it.each([
    ['90s', 90_000],
    ['15m', 900_000],
    ['1h30m', 5_400_000],
    ['0', 0],
    ['500ms', 500],
    ['2d', 172_800_000],
    [60, 60_000],
  ] as const)('%s', (input, ms) => expect(parseDuration(input)).toBe(ms));
  it.each(['fast', '15', '1x', '', '-5m'])('rejects %j', (input) => expect(parseDuration(input)).toBeUndefined());
});
