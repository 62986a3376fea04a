// The one typed description of drctl.yaml. Every field error names its path, e.g.
// `sites[1].cluster.nodes[0].ssh.port: expected an integer 1-65535`.
import { z } from 'zod';
import { DRILL_CRITERIA } from '../common/drill.ts';
import { formatDuration, parseDuration } from '../common/duration.ts';
import { MIN_SNAPSHOT_EVERY_MS } from '../common/snapshots.ts';

const name = z
  .string({ error: 'expected a name' })
  .regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, { error: 'expected a DNS-style name (a-z, 0-9, -)' });

/** A duration in ms; `refuse` says why a value that parses is still wrong for the field. */
const durationOf = (refuse?: (ms: number) => string | undefined) =>
  z.union([z.string(), z.number()], { error: 'expected a duration like 90s, 15m, 1h' }).transform((v, ctx) => {
    const ms = parseDuration(v);
    if (ms === undefined) {
      ctx.addIssue({ code: 'custom', message: `expected a duration like 90s, 15m, 1h (got ${JSON.stringify(v)})` });
      return z.NEVER;
    }
    const why = refuse?.(ms);
    if (why) {
      ctx.addIssue({ code: 'custom', message: why });
      return z.NEVER;
    }
    return ms;
  });

/** Where 0 is legitimate (an RPO of 0, no stop grace). */
const duration = durationOf();
/** Where 0 makes no sense: a zero timeout gives up at once, a zero interval is a busy loop. */
const positiveDuration = (zeroMeans: string) =>
  durationOf((ms) => (ms > 0 ? undefined : `expected a duration above 0 (0 ${zeroMeans})`));
const timeout = positiveDuration('gives up at once');

const port = z
  .number({ error: 'expected an integer 1-65535' })
  .int({ error: 'expected an integer 1-65535' })
  .min(1, { error: 'expected an integer 1-65535' })
  .max(65535, { error: 'expected an integer 1-65535' });

const url = z.url({ error: 'expected a URL like https://10.0.0.1:2379' });
/**
 * A path on a node, as drctl builds others from it (`<dataDir>.drctl-<tag>`, its parent for a work
 * dir): absolute, never `/` itself, no trailing slash, and no `.`, `..` or empty segments.
 */
function nodePathProblem(p: string): string | undefined {
  if (!p.startsWith('/')) return 'expected an absolute path';
  if (p === '/') return "expected a path below '/', not '/' itself";
  if (p.endsWith('/')) return `expected no trailing slash (got '${p}')`;
  const segments = p.split('/').slice(1);
  if (segments.some((seg) => seg === '' || seg === '.' || seg === '..'))
    return `expected a plain absolute path without '.', '..' or '//' (got '${p}')`;
  return undefined;
}
const absPath = z.string({ error: 'expected an absolute path' }).superRefine((p, ctx) => {
  const problem = nodePathProblem(p);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});
/** `path` is `dir` or below it. */
const within = (path: string, dir: string) => path === dir || path.startsWith(`${dir}/`);
const path = z.string({ error: 'expected a file path' }).min(1, { error: 'expected a file path' });
const envVarName = z
  .string({ error: 'expected an environment variable name' })
  .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { error: 'expected an environment variable name' });

/** OpenSSH's `ssh-keygen -lf` form: SHA256 + unpadded base64 of the 32-byte digest. */
const fingerprint = z
  .string({ error: 'expected a host-key fingerprint like SHA256:...' })
  .regex(/^SHA256:[A-Za-z0-9+/]{43}$/, {
    error: 'expected a host-key fingerprint like SHA256:<43 base64 chars> (ssh-keygen -lf)',
  });

/** One SSH hop: the node itself, or the bastion in front of it. */
const sshHop = {
  host: z.string({ error: 'expected a host name or address' }).min(1),
  port: port.default(22),
  user: z.string({ error: 'expected a user name' }).min(1).default('root'),
  privateKeyPath: path,
  hostKeyFingerprint: fingerprint,
  connectTimeout: positiveDuration('gives up before connecting').default(10_000),
};

const ssh = z.strictObject({
  ...sshHop,
  /**
   * Run every command on the node as `sudo -n -- bash -c '<script>'` (a non-root user with
   * NOPASSWD sudo: the hardened-host case). README: "Root on the nodes".
   */
  sudo: z.boolean({ error: 'expected true or false' }).default(false),
  /** A bastion (jump host) the connection to the node goes through; its host key is pinned too. */
  jump: z.strictObject(sshHop).optional(),
});

const etcdMember = z.strictObject({
  /** Joined into `--initial-cluster=<name>=<peerUrl>,…`: a ',', '=' or blank in it breaks the list. */
  memberName: z
    .string({ error: 'expected the etcd member name' })
    .regex(/^[^\s,=]+$/, { error: "expected an etcd member name without ',', '=' or whitespace (--initial-cluster)" }),
  clientUrl: url,
  peerUrl: url,
  dataDir: absPath.default('/var/lib/etcd'),
  /** TLS file paths on the node (kubeadm lays them out under /etc/kubernetes/pki/etcd). */
  tls: z
    .strictObject({
      caFile: absPath.default('/etc/kubernetes/pki/etcd/ca.crt'),
      certFile: absPath.default('/etc/kubernetes/pki/etcd/server.crt'),
      keyFile: absPath.default('/etc/kubernetes/pki/etcd/server.key'),
    })
    .default({
      caFile: '/etc/kubernetes/pki/etcd/ca.crt',
      certFile: '/etc/kubernetes/pki/etcd/server.crt',
      keyFile: '/etc/kubernetes/pki/etcd/server.key',
    }),
  /**
   * Where etcdctl/etcdutl come from. `image` (stock kubeadm: no etcd binaries on the host): one-off
   * containers of the etcd static pod's image, run with `ctr`. `host`: installed on the node
   * (absolute paths, or found on PATH when left out). Default: `image` for the kubeadm profile,
   * `host` for the command profile.
   */
  tools: z
    .discriminatedUnion(
      'from',
      [
        z.strictObject({ from: z.literal('image') }),
        z.strictObject({ from: z.literal('host'), etcdctl: absPath.optional(), etcdutl: absPath.optional() }),
      ],
      { error: "expected from: 'image' or from: 'host'" },
    )
    .optional(),
});

/** The node's containerd, for `ctr` (etcd tools from the image) and `crictl` (restarting static pods). */
const containerd = z.strictObject({
  address: absPath.default('/run/containerd/containerd.sock'),
  namespace: z
    .string({ error: 'expected a containerd namespace' })
    .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, { error: 'expected a containerd namespace' })
    .default('k8s.io'),
});

const command = z.string({ error: 'expected a shell command' }).min(1, { error: 'expected a shell command' });

/** How etcd and kube-apiserver are stopped and started on a node. */
const controlPlaneProfile = z.discriminatedUnion(
  'profile',
  [
    z.strictObject({
      profile: z.literal('kubeadm'),
      manifestsDir: absPath.default('/etc/kubernetes/manifests'),
      /** Where manifests are parked while stopped (must be outside the kubelet's manifest dir). */
      parkedDir: absPath.default('/etc/kubernetes/manifests-parked'),
      /**
       * How long a restore lets a parked kube-apiserver drain before killing it. Its data is about
       * to be replaced, and by default it does not end its watches on SIGTERM, so it otherwise
       * stays until the kubelet's grace period runs out (30 s on kubeadm). Its shutdown hooks
       * (lease cleanup) finish within milliseconds; the rest is waiting on watches. 0: no early
       * kill (the kubelet's grace period applies).
       */
      apiserverStopGrace: duration.default(1_000),
      /**
       * Static pods on this node restarted once a restore's API server is ready: their caches and
       * in-memory state predate the restore (a stale EndpointSlice tracker, a Velero backup left
       * InProgress in the snapshot that blocks its schedule until the server restarts).
       */
      restartAfterRestore: z
        .array(z.string().regex(/^[a-z0-9][a-z0-9-]*$/, { error: 'expected a static pod name' }))
        .default(['kube-controller-manager', 'kube-scheduler']),
      /**
       * How drctl restarts the node's kubelet, run as root. Only when a kubelet that started while
       * its API server was down does not start a changed static pod: until its API source has
       * synced it never cleans up a removed static pod, and the new one waits for the old one to
       * end (kubernetes#112814; a host returning after a site loss: `drctl etcd rejoin`).
       */
      kubeletRestart: command.default('systemctl restart kubelet'),
    }),
    z.strictObject({
      profile: z.literal('command'),
      etcd: z.strictObject({ stop: command, start: command }),
      apiserver: z.strictObject({ stop: command, start: command }).optional(),
    }),
  ],
  { error: "expected profile 'kubeadm' or 'command'" },
);

const node = z
  .strictObject({
    name,
    ssh,
    etcd: etcdMember,
    containerd: containerd.default({ address: '/run/containerd/containerd.sock', namespace: 'k8s.io' }),
    controlPlane: controlPlaneProfile.default({
      profile: 'kubeadm',
      manifestsDir: '/etc/kubernetes/manifests',
      parkedDir: '/etc/kubernetes/manifests-parked',
      apiserverStopGrace: 1_000,
      restartAfterRestore: ['kube-controller-manager', 'kube-scheduler'],
      kubeletRestart: 'systemctl restart kubelet',
    }),
    /** Whether this node runs a kube-apiserver (kubeadm: every control-plane node; the lab: the first). */
    apiserver: z.boolean().default(true),
    /**
     * The site the node stands in. A site's cluster's nodes are in that site (the default); a
     * stretched cluster's (`clusters:`) must each say which, so drctl knows which pairs cross sites.
     */
    site: name.optional(),
  })
  .transform((n, ctx) => {
    if (n.controlPlane.profile === 'kubeadm' && within(n.controlPlane.parkedDir, n.controlPlane.manifestsDir))
      ctx.addIssue({
        code: 'custom',
        path: ['controlPlane', 'parkedDir'],
        message: `expected a dir outside controlPlane.manifestsDir (${n.controlPlane.manifestsDir}): the kubelet would run what is parked`,
      });
    if (n.etcd.tools?.from === 'image' && n.controlPlane.profile !== 'kubeadm')
      ctx.addIssue({
        code: 'custom',
        path: ['etcd', 'tools', 'from'],
        message: "'image' reads the etcd image from the static pod manifest: it needs controlPlane.profile kubeadm",
      });
    const tools =
      n.etcd.tools ?? (n.controlPlane.profile === 'kubeadm' ? { from: 'image' as const } : { from: 'host' as const });
    return { ...n, etcd: { ...n.etcd, tools } };
  });

const cluster = z.strictObject({
  name,
  kubeconfig: path,
  context: z.string().min(1).optional(),
  nodes: z
    .array(node, { error: 'expected a list of control-plane nodes' })
    .min(1, { error: 'expected at least one node' }),
  /**
   * Deployments (namespace/name) rolled once a restore's API server is ready, like the static
   * pods in a node's restartAfterRestore: in-cluster controllers whose state predates the restore.
   * Velero's: a backup the snapshot caught InProgress blocks its schedule until the server
   * restarts. One that is missing or scaled to 0 is skipped.
   */
  rolloutAfterRestore: z
    .array(z.string().regex(/^[a-z0-9][a-z0-9-]*\/[a-z0-9][a-z0-9.-]*$/, { error: 'expected namespace/deployment' }))
    .default(['velero/velero']),
});

const ipv4 = z.ipv4({ error: 'expected an IPv4 address' });

const velero = z.strictObject({
  /** Namespace Velero runs in on this site's cluster. */
  namespace: z.string().min(1).default('velero'),
  /** The BackupStorageLocation both sites share (the off-site bucket). */
  storageLocation: z.string().min(1).default('default'),
});

const site = z.strictObject({
  name,
  role: z.enum(['primary', 'dr'], { error: "expected 'primary' or 'dr'" }),
  cluster,
  /** The app's health URL at this site (what the health watch probes and failover verifies). */
  appEndpoint: url.optional(),
  /** The address DNS points the app record at while this site serves. */
  appAddress: ipv4.optional(),
  velero: velero.default({ namespace: 'velero', storageLocation: 'default' }),
});

const credentials = z.union(
  [z.strictObject({ accessKeyIdEnv: envVarName, secretAccessKeyEnv: envVarName }), z.strictObject({ file: path })],
  { error: 'expected { accessKeyIdEnv, secretAccessKeyEnv } or { file } (never inline keys)' },
);

const objectStore = z.strictObject({
  endpoint: url,
  bucket: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, { error: 'expected an S3 bucket name' }),
  region: z.string().min(1).default('us-east-1'),
  forcePathStyle: z.boolean().default(true),
  prefix: z.string().default('drctl/'),
  credentials,
  /** Optional CA bundle for an endpoint with a private CA. */
  caFile: path.optional(),
});

const temporalTls = z.union([
  z.boolean(),
  z.strictObject({
    serverName: z.string().optional(),
    serverCaCertPath: path.optional(),
    clientCertPath: path.optional(),
    clientKeyPath: path.optional(),
  }),
]);

const temporal = z.strictObject({
  /** envconfig profile (TOML file + TEMPORAL_* env vars) layered over the fields below. */
  profile: z.string().optional(),
  address: z
    .string()
    .regex(/^[^\s:]+:\d{1,5}$/, { error: 'expected host:port' })
    .optional(),
  namespace: z.string().min(1).optional(),
  taskQueue: z.string().min(1).default('drctl'),
  tls: temporalTls.optional(),
  /** Name of the environment variable holding the API key (the key itself never goes in this file). */
  apiKeyEnv: envVarName.optional(),
  webUi: url.optional(),
});

/** An RPO of 0 is a real target (synchronous replication: the payment tier); an RTO of 0 can never be met. */
const target = z.strictObject({ rpo: duration, rto: positiveDuration('can never be met') });

const secretRef = z.union([z.strictObject({ env: envVarName }), z.strictObject({ file: path })], {
  error: 'expected { env: VAR } or { file: path } (never the secret inline)',
});

const dns = z.strictObject({
  powerdns: z.strictObject({
    /** PowerDNS HTTP API base URL, e.g. http://10.0.30.5:8081 */
    api: url,
    apiKey: secretRef,
    serverId: z.string().min(1).default('localhost'),
  }),
  /** The authoritative server to query after a switch, host:port. */
  nameserver: z.string().regex(/^[^\s:]+:\d{1,5}$/, { error: 'expected host:port' }),
  zone: z.string().min(1),
  /** App records a failover moves between sites' appAddress. */
  records: z
    .array(z.strictObject({ name: z.string().min(1), ttl: z.number().int().min(1).max(86_400).default(30) }))
    .min(1, { error: 'expected at least one record' }),
});

const failover = z.strictObject({
  /** Namespaces a failover restores (the Velero restore's namespace filter). */
  namespaces: z.array(name).min(1, { error: 'expected at least one namespace' }),
  /** Workload tier whose RPO/RTO targets apply (see targets). */
  tier: z.string().min(1).default('e-commerce'),
  /** What a backup older than the tier's RPO does: refuse the failover, or warn and go on. */
  rpoPolicy: z.enum(['refuse', 'warn'], { error: "expected 'refuse' or 'warn'" }).default('refuse'),
  restoreTimeout: timeout.default(10 * 60_000),
  /** How long post-restore verification may wait for every check to pass. */
  verifyTimeout: timeout.default(2 * 60_000),
  healthWatch: z
    .strictObject({
      interval: positiveDuration('probes in a busy loop').default(10_000),
      /** Consecutive failed probes that mark a site down (the seed's table: 3). */
      failuresToDown: z.number().int().min(1).default(3),
      /** Consecutive good probes that mark it up again (the seed's table: 5). */
      successesToUp: z.number().int().min(1).default(5),
      /** Start a failover when the primary goes down; it still waits at the go/no-go gate unless autoApprove. */
      autoFailover: z.boolean().default(true),
      autoApprove: z.boolean().default(false),
      webhook: url.optional(),
    })
    .default({ interval: 10_000, failuresToDown: 3, successesToUp: 5, autoFailover: true, autoApprove: false }),
});

/** A DNS name as compared: no trailing dot, lower case. */
const fqdn = (n: string) => n.replace(/\.$/, '').toLowerCase();
const inZone = (name: string, zone: string) => fqdn(name) === zone || fqdn(name).endsWith(`.${zone}`);

/** Quarterly: 06:00 UTC on the first day of January, April, July and October. */
export const QUARTERLY = '0 6 1 1,4,7,10 *';

const drill = z.strictObject({
  name,
  /** The site whose backups the drill restores (normally the primary). */
  from: name,
  /** The DR site the drill restores into. Nothing at `from` is touched. */
  to: name,
  workloads: z
    .array(
      z.strictObject({
        tier: z.string().min(1),
        namespaces: z.array(name).min(1, { error: 'expected at least one namespace' }),
      }),
    )
    .min(1, { error: 'expected at least one workload (tier + namespaces)' }),
  /** The record the drill points at the DR site instead of the production one, e.g. drill.app.example.com. */
  record: z.strictObject({ name: z.string().min(1), ttl: z.number().int().min(1).max(86_400).default(30) }),
  /** Criteria that decide the verdict (default: all that apply; etcd-restore only with etcdRestore). */
  criteria: z.array(z.enum(DRILL_CRITERIA, { error: `expected one of ${DRILL_CRITERIA.join(', ')}` })).optional(),
  /** Also restore the DR cluster's newest etcd snapshot onto itself and verify it. */
  etcdRestore: z.boolean().default(false),
  /** Cron for `drctl drill schedule` (UTC). */
  schedule: z.string().min(1).default(QUARTERLY),
  approvalTimeout: timeout.optional(),
  /** How long the report waits for an approver's sign-off before it is final without one. */
  signoffTimeout: timeout.default(7 * 86_400_000),
  verifyTimeout: timeout.default(3 * 60_000),
});

export const DEFAULT_TARGETS = {
  payment: { rpo: '0s', rto: '60s' },
  'e-commerce': { rpo: '5m', rto: '15m' },
  internal: { rpo: '1h', rto: '4h' },
  dev: { rpo: '24h', rto: '24h' },
} as const;

function defaultTargets(): Record<string, { rpo: number; rto: number }> {
  return Object.fromEntries(
    Object.entries(DEFAULT_TARGETS).map(([tier, t]) => [
      tier,
      { rpo: parseDuration(t.rpo)!, rto: parseDuration(t.rto)! },
    ]),
  );
}

const approvals = z.strictObject({
  approvers: z
    .array(z.string().min(1), { error: 'expected a list of approver names' })
    .min(1, { error: 'expected at least one approver' }),
  twoPersonRule: z.boolean().default(true),
  timeout: timeout.default(3_600_000),
  /**
   * Each person's SSH public keys (authorized_keys lines): the worker verifies every decision and
   * request against them (`ssh-keygen -Y verify`). Requesters who are not approvers belong here too.
   */
  signers: z
    .record(
      z.string().min(1),
      z
        .union([z.string(), z.array(z.string()).min(1)])
        .transform((k) => (Array.isArray(k) ? k : [k]))
        .pipe(
          z.array(
            z.string().regex(/^(ssh-(ed25519|rsa)|ecdsa-sha2-nistp(256|384|521)|sk-\S+) [A-Za-z0-9+/]+=*( .*)?$/, {
              error: "expected a public key line like 'ssh-ed25519 AAAA… alice@laptop'",
            }),
          ),
        ),
    )
    .default({}),
  /**
   * `allow` accepts an unsigned decision ({"by": ...}) for a first try: anyone can then be anyone.
   * Off by default; reports and `drctl status` say in red when it was on.
   */
  unsigned: z.enum(['refuse', 'allow'], { error: "expected 'refuse' or 'allow'" }).default('refuse'),
});

/**
 * A 32-byte key, by reference only: a file on the worker, or an environment variable of the
 * worker, holding it base64-encoded (`openssl rand -base64 32`). Read by the worker alone
 * (gateways/snapshot-crypto.ts); never in this file, in workflow inputs, history or logs.
 */
const keyRef = z.union([z.strictObject({ file: path }), z.strictObject({ env: envVarName })], {
  error: 'expected { file: path } or { env: VAR } holding a base64 32-byte key (never the key inline)',
});

const snapshots = z
  .strictObject(
    {
      /** Default schedule for `drctl snapshot schedule` (the seed's CronJob ran every 15 minutes). */
      every: durationOf((ms) =>
        ms >= MIN_SNAPSHOT_EVERY_MS
          ? undefined
          : `expected at least ${formatDuration(MIN_SNAPSHOT_EVERY_MS)} (snapshots would overlap their own upload)`,
      ).default(15 * 60_000),
      /** Keep the newest N verified snapshots per cluster (the seed's `tail -n +21`). */
      keep: z.number().int().min(1, { error: 'expected an integer >= 1' }).default(20),
      /** Also delete snapshots older than this (the newest one is always kept); longer than `every`. */
      maxAge: positiveDuration('deletes every snapshot but the newest').optional(),
      /** Where snapshots are written on the node before they are streamed off-site. */
      nodeDir: absPath.default('/var/lib/etcd-snapshots'),
      /** Encrypts every snapshot on the worker before it leaves it (AES-256-GCM, streamed). */
      encryptionKey: keyRef,
      /** Signs what drctl verified (HMAC-SHA256); only signed snapshots are listed or restored. */
      signingKey: keyRef,
      /**
       * Prove every snapshot restorable after upload (common/snapshot-proof.ts): fetched back,
       * decrypted, restored with etcdutl and served by a throwaway etcd on the worker. Without it,
       * snapshots stay untested.
       */
      prove: z
        .strictObject({
          /** Directory holding etcd and etcdutl, per etcd minor version of the clusters: { "3.5": /opt/etcd-v3.5.21 }. */
          etcd: z.record(z.string().regex(/^\d+\.\d+$/, { error: 'expected an etcd minor version like 3.5' }), absPath),
          /** Where the scratch restores go (default: the OS temp dir); room for the largest snapshot twice. */
          scratchDir: absPath.optional(),
          /** How long the throwaway etcd may take to answer. */
          timeout: duration.default(5 * 60_000),
        })
        .optional(),
    },
    { error: 'expected a snapshots section with encryptionKey and signingKey ({ file } or { env })' },
  )
  .superRefine((s, ctx) => {
    if (JSON.stringify(s.encryptionKey) === JSON.stringify(s.signingKey))
      ctx.addIssue({
        code: 'custom',
        path: ['signingKey'],
        message: 'expected a key of its own, not the encryption key',
      });
  });

const restore = z.strictObject({
  /**
   * How long a data dir a restore moved aside (`<dataDir>.drctl-<run>`, `<dataDir>/.drctl-aside-<run>`:
   * a full copy of etcd, every Secret in it) stays on the node. Older ones are removed at the start
   * and at the end of the next restore on that node.
   */
  keepMovedAside: duration.default(7 * 86_400_000),
});

/** host:port, e.g. 127.0.0.1:9464 (a bracketed IPv6 address: [::1]:9464). */
export const listenAddress = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[^\s:[\]]+):\d{1,5}$/, { error: 'expected host:port, e.g. 127.0.0.1:9464' });

const metrics = z.strictObject({
  /** Where the worker serves Prometheus metrics (/metrics); `drctl worker --metrics-listen` overrides it. */
  listen: listenAddress.optional(),
  /** How long one collection of the DR state answers scrapes before the next is made. */
  refresh: positiveDuration('collects on every scrape').default(30_000),
});

export const configSchema = z
  .strictObject({
    temporal: temporal.default({ taskQueue: 'drctl' }),
    sites: z.array(site, { error: 'expected a list of sites' }).min(1, { error: 'expected at least one site' }),
    /**
     * Clusters that belong to no one site: a stretched (active-active) cluster whose members stand
     * in several sites, each node naming its own. `drctl etcd latency|tune|recover` work on them.
     */
    clusters: z.array(cluster, { error: 'expected a list of clusters' }).default([]),
    objectStore,
    approvals,
    snapshots,
    restore: restore.default({ keepMovedAside: 7 * 86_400_000 } as never),
    metrics: metrics.default({ refresh: 30_000 }),
    dns: dns.optional(),
    failover: failover.optional(),
    drills: z.array(drill).default([]),
    /** Per workload tier; tiers not named here keep the defaults above. */
    targets: z
      .record(z.string(), target)
      .optional()
      .transform((t) => ({ ...defaultTargets(), ...t })),
  })
  .superRefine((cfg, ctx) => {
    /** Items whose keys are equal once `fold`ed (e.g. ignoring case) are duplicates. */
    const dup = <T>(
      items: T[],
      key: (t: T) => string,
      path: (i: number) => (string | number)[],
      what: string,
      fold: (k: string) => string = (k) => k,
    ) => {
      const seen = new Map<string, { i: number; k: string }>();
      items.forEach((item, i) => {
        const k = key(item);
        const first = seen.get(fold(k));
        if (first !== undefined)
          ctx.addIssue({
            code: 'custom',
            path: path(i),
            message: `duplicate ${what} '${k}' (also at index ${first.i}${first.k === k ? '' : ` as '${first.k}'`})`,
          });
        else seen.set(fold(k), { i, k });
      });
    };
    dup(
      cfg.sites,
      (s) => s.name,
      (i) => ['sites', i, 'name'],
      'site name',
    );
    const clusterPaths = [
      ...cfg.sites.map((s, si) => ({ c: s.cluster, at: ['sites', si, 'cluster'] as (string | number)[], site: s })),
      ...cfg.clusters.map((c, ci) => ({ c, at: ['clusters', ci] as (string | number)[], site: undefined })),
    ];
    dup(
      clusterPaths,
      (x) => x.c.name,
      (i) => [...clusterPaths[i]!.at, 'name'],
      'cluster name',
    );
    const siteNames = cfg.sites.map((s) => s.name);
    const primaries = cfg.sites.filter((s) => s.role === 'primary').length;
    if (cfg.sites.length > 0 && primaries !== 1)
      ctx.addIssue({
        code: 'custom',
        path: ['sites'],
        message: `expected exactly one site with role 'primary' (found ${primaries})`,
      });
    for (const { c, at, site } of clusterPaths) {
      const nodes = c.nodes;
      dup(
        nodes,
        (n) => n.name,
        (i) => [...at, 'nodes', i, 'name'],
        'node name',
      );
      dup(
        nodes,
        (n) => n.etcd.memberName,
        (i) => [...at, 'nodes', i, 'etcd', 'memberName'],
        'etcd member name',
      );
      dup(
        nodes,
        (n) => n.etcd.peerUrl,
        (i) => [...at, 'nodes', i, 'etcd', 'peerUrl'],
        'etcd peer URL',
      );
      if (nodes.length % 2 === 0) {
        ctx.addIssue({
          code: 'custom',
          path: [...at, 'nodes'],
          message: `expected an odd number of etcd members for quorum (found ${nodes.length})`,
        });
      }
      nodes.forEach((n, ni) => {
        if (site && n.site !== undefined && n.site !== site.name)
          ctx.addIssue({
            code: 'custom',
            path: [...at, 'nodes', ni, 'site'],
            message: `a node of site '${site.name}''s cluster stands in that site (a cluster across sites goes under clusters:)`,
          });
        if (!site && n.site === undefined)
          ctx.addIssue({
            code: 'custom',
            path: [...at, 'nodes', ni, 'site'],
            message: `expected the site this node stands in (sites: ${siteNames.join(', ')})`,
          });
        if (!site && n.site !== undefined && !siteNames.includes(n.site))
          ctx.addIssue({
            code: 'custom',
            path: [...at, 'nodes', ni, 'site'],
            message: `unknown site '${n.site}' (sites: ${siteNames.join(', ')})`,
          });
      });
    }
    if (cfg.failover && !(cfg.failover.tier in cfg.targets)) {
      ctx.addIssue({
        code: 'custom',
        path: ['failover', 'tier'],
        message: `unknown tier '${cfg.failover.tier}' (targets: ${Object.keys(cfg.targets).join(', ')})`,
      });
    }
    if (cfg.temporal.tls === false && cfg.temporal.apiKeyEnv)
      ctx.addIssue({
        code: 'custom',
        path: ['temporal', 'tls'],
        message: 'tls: false with apiKeyEnv would send the API key in clear text (an API key turns TLS on)',
      });
    const nodeDir = cfg.snapshots.nodeDir;
    const overlap = cfg.sites
      .flatMap((s, si) => s.cluster.nodes.map((n, ni) => ({ dir: n.etcd.dataDir, at: [si, ni] })))
      .find(({ dir }) => within(nodeDir, dir) || within(dir, nodeDir));
    if (overlap)
      ctx.addIssue({
        code: 'custom',
        path: ['snapshots', 'nodeDir'],
        message: `expected a dir apart from etcd's data dir (sites[${overlap.at[0]}].cluster.nodes[${overlap.at[1]}].etcd.dataDir is ${overlap.dir})`,
      });
    const { every, maxAge } = cfg.snapshots;
    if (maxAge !== undefined && maxAge <= every)
      ctx.addIssue({
        code: 'custom',
        path: ['snapshots', 'maxAge'],
        message: `expected more than snapshots.every (${formatDuration(every)}): each run would delete every snapshot but the newest`,
      });
    if (cfg.dns) {
      const zone = fqdn(cfg.dns.zone);
      cfg.dns.records.forEach((r, ri) => {
        if (!inZone(r.name, zone))
          ctx.addIssue({
            code: 'custom',
            path: ['dns', 'records', ri, 'name'],
            message: `'${r.name.replace(/\.$/, '')}' is not in the zone ${zone}`,
          });
      });
      cfg.sites.forEach((s, si) => {
        if (!s.appAddress)
          ctx.addIssue({
            code: 'custom',
            path: ['sites', si, 'appAddress'],
            message: 'expected the address DNS points at while this site serves (dns is configured)',
          });
      });
    }
    dup(
      cfg.drills,
      (d) => d.name,
      (i) => ['drills', i, 'name'],
      'drill plan name',
    );
    cfg.drills.forEach((d, di) => {
      for (const k of ['from', 'to'] as const) {
        if (!siteNames.includes(d[k]))
          ctx.addIssue({
            code: 'custom',
            path: ['drills', di, k],
            message: `unknown site '${d[k]}' (sites: ${siteNames.join(', ')})`,
          });
      }
      if (d.from === d.to)
        ctx.addIssue({
          code: 'custom',
          path: ['drills', di, 'to'],
          message: `the DR site must differ from 'from' (${d.from})`,
        });
      d.workloads.forEach((w, wi) => {
        if (!(w.tier in cfg.targets))
          ctx.addIssue({
            code: 'custom',
            path: ['drills', di, 'workloads', wi, 'tier'],
            message: `unknown tier '${w.tier}' (targets: ${Object.keys(cfg.targets).join(', ')})`,
          });
      });
      if (!cfg.dns)
        ctx.addIssue({
          code: 'custom',
          path: ['drills', di, 'record'],
          message: 'a drill switches a DNS record: the config needs a dns section',
        });
      else {
        const rec = d.record.name.replace(/\.$/, '');
        if (cfg.dns.records.some((r) => fqdn(r.name) === fqdn(rec))) {
          ctx.addIssue({
            code: 'custom',
            path: ['drills', di, 'record', 'name'],
            message: `'${rec}' is a production record (dns.records): a drill must switch its own record`,
          });
        }
        const zone = fqdn(cfg.dns.zone);
        if (!inZone(rec, zone))
          ctx.addIssue({
            code: 'custom',
            path: ['drills', di, 'record', 'name'],
            message: `'${rec}' is not in the zone ${zone}`,
          });
      }
      if (d.criteria?.includes('etcd-restore') && !d.etcdRestore) {
        ctx.addIssue({
          code: 'custom',
          path: ['drills', di, 'criteria'],
          message: "criterion 'etcd-restore' needs etcdRestore: true",
        });
      }
    });
    if (cfg.approvals.unsigned === 'refuse')
      cfg.approvals.approvers.forEach((a, i) => {
        if (!cfg.approvals.signers[a]?.length)
          ctx.addIssue({
            code: 'custom',
            path: ['approvals', 'approvers', i],
            message: `${a} has no public key in approvals.signers (every decision is signed; approvals.unsigned: allow turns that off)`,
          });
      });
    // Names that differ only in case are one person to whoever reads a decision record.
    dup(
      cfg.approvals.approvers,
      (a) => a,
      (i) => ['approvals', 'approvers', i],
      'approver',
      (a) => a.toLowerCase(),
    );
    if (cfg.approvals.twoPersonRule && cfg.approvals.approvers.length < 2) {
      ctx.addIssue({
        code: 'custom',
        path: ['approvals', 'approvers'],
        message: 'the two-person rule needs at least two approvers',
      });
    }
  });

export type DrctlConfig = z.output<typeof configSchema>;
export type SiteConfig = DrctlConfig['sites'][number];
export type ClusterConfig = SiteConfig['cluster'];
export type NodeConfig = ClusterConfig['nodes'][number];
export type SshConfig = NodeConfig['ssh'];
export type EtcdToolsConfig = NodeConfig['etcd']['tools'];
export type ObjectStoreConfig = DrctlConfig['objectStore'];
export type SnapshotsConfig = DrctlConfig['snapshots'];
export type KeyRef = SnapshotsConfig['encryptionKey'];
export type TemporalConfig = DrctlConfig['temporal'];
export type DnsConfig = NonNullable<DrctlConfig['dns']>;
export type FailoverConfig = NonNullable<DrctlConfig['failover']>;
export type DrillConfig = DrctlConfig['drills'][number];
