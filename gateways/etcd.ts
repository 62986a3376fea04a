// EtcdGateway: etcdctl run on the node itself over SSH, with the node's own TLS files, the way the
// runbook does it by hand. Nothing etcd-related needs to be reachable from the worker. The tools
// are the node's own binaries (etcd.tools.from: host) or one-off containers of the etcd static
// pod's image (from: image; common/etcd-tools.ts spells the command).
import { randomBytes } from 'node:crypto';
import { parse as parseYaml } from 'yaml';
import { FailureType, failure } from '../common/errors.ts';
import {
  dirOf,
  type EtcdTool,
  type NodeTools,
  toolCommand,
  type ToolInvocation,
  versionOfImage,
} from '../common/etcd-tools.ts';
import type { NodeConfig } from '../config/schema.ts';
import { type RemoteShell, shq } from './ssh.ts';

export interface EndpointHealth {
  endpoint: string;
  health: boolean;
  took?: string;
  error?: string;
}

export interface EndpointStatus {
  endpoint: string;
  version: string;
  revision: number;
  dbSize: number;
  leader: string;
  memberId: string;
  raftTerm: number;
  /** The raft index this member has committed. */
  raftIndex?: number;
  /** What etcd reported beside the status (e.g. "etcdserver: no leader"). */
  errors?: string[];
}

export interface Member {
  id: string;
  name: string;
  peerURLs: string[];
  clientURLs: string[];
  /** A raft learner: it receives the log but does not vote (it counts for no quorum). */
  isLearner?: boolean;
}

type MemberJson = { ID: string; name: string; peerURLs?: string[]; clientURLs?: string[]; isLearner?: boolean };
const memberOf = (m: MemberJson): Member => ({
  id: hex(m.ID),
  name: m.name,
  peerURLs: m.peerURLs ?? [],
  clientURLs: m.clientURLs ?? [],
  ...(m.isLearner ? { isLearner: true } : {}),
});

/** etcdctl's connection flags for this node's member (endpoint and TLS files on the node). */
function etcdctlFlags(node: NodeConfig, endpoints: string, commandTimeout: string): string {
  const { caFile, certFile, keyFile } = node.etcd.tls;
  return `--endpoints=${shq(endpoints)} --cacert=${shq(caFile)} --cert=${shq(certFile)} --key=${shq(keyFile)} --command-timeout=${commandTimeout} --dial-timeout=3s`;
}

/** A container id no other invocation on the node shares: `drctl-<purpose>-<16 hex>`. */
export const containerId = (purpose: string) => `drctl-${purpose}-${randomBytes(8).toString('hex')}`;

/** The image of the container named etcd in a static pod manifest. */
export function etcdImageOf(manifest: string): string | undefined {
  const doc = parseYaml(manifest) as { spec?: { containers?: { name?: string; image?: string }[] } } | null;
  const image = doc?.spec?.containers?.find((c) => c?.name === 'etcd')?.image;
  return typeof image === 'string' && image ? image : undefined;
}

const IMAGE_CACHE_MS = 60_000;
const resolved = new WeakMap<RemoteShell, { at: number; tools: NodeTools; manifest?: string }>();

/**
 * The node's etcd tools, resolved: host paths from the config, or the etcd image read from the
 * static pod manifest (the live one, else the parked one while etcd is stopped). Cached per
 * connection for a minute: a restore step calls etcdctl many times.
 */
export class EtcdTools {
  constructor(
    private readonly shell: RemoteShell,
    private readonly node: NodeConfig,
  ) {}

  private get label() {
    return this.shell.target.label;
  }

  async resolve(): Promise<{ tools: NodeTools; manifest?: string }> {
    const cfg = this.node.etcd.tools;
    if (cfg.from === 'host') return { tools: cfg };
    const cached = resolved.get(this.shell);
    if (cached && Date.now() - cached.at < IMAGE_CACHE_MS) return cached;
    const cp = this.node.controlPlane;
    if (cp.profile !== 'kubeadm')
      throw failure(FailureType.PreflightFailed, `${this.label}: etcd.tools from 'image' needs the kubeadm profile`);
    const candidates = [`${cp.manifestsDir}/etcd.yaml`, `${cp.parkedDir}/etcd.yaml`];
    const r = await this.shell.exec(
      `for f in ${candidates.map(shq).join(' ')}; do if [ -f "$f" ]; then echo "# $f"; cat -- "$f"; exit 0; fi; done; exit 3`,
      { timeoutMs: 15_000 },
    );
    if (r.code === 3)
      throw failure(
        FailureType.PreflightFailed,
        `${this.label}: no etcd static pod manifest at ${candidates.join(' or ')}: cannot tell which etcd image to run etcdctl from`,
      );
    if (r.code !== 0)
      throw failure(
        FailureType.RemoteCommandFailed,
        `${this.label}: reading the etcd manifest failed (exit ${r.code}): ${r.stderr.trim().slice(-500)}`,
      );
    const [first = '', ...rest] = r.stdout.split('\n');
    const manifest = first.replace(/^# /, '');
    let image: string | undefined;
    try {
      image = etcdImageOf(rest.join('\n'));
    } catch (err) {
      throw failure(
        FailureType.PreflightFailed,
        `${this.label}: ${manifest} is not valid YAML: ${(err as Error).message}`,
      );
    }
    if (!image)
      throw failure(
        FailureType.PreflightFailed,
        `${this.label}: ${manifest} has no container named etcd with an image`,
      );
    const entry = {
      at: Date.now(),
      tools: { from: 'image' as const, image, containerd: { ...this.node.containerd } },
      manifest,
    };
    resolved.set(this.shell, entry);
    return entry;
  }

  /** The command line for one tool invocation; `purpose` names its container in image mode. */
  async command(purpose: string, inv: Omit<ToolInvocation, 'id'>): Promise<string> {
    const { tools } = await this.resolve();
    return toolCommand(tools, { ...inv, id: containerId(purpose) });
  }

  /** etcdctl against this node's member (or `endpoints`), its TLS dirs mounted read-only. */
  async etcdctl(
    purpose: string,
    args: string,
    opts: { commandTimeout?: string; rw?: string[]; endpoints?: string } = {},
  ): Promise<string> {
    const { caFile, certFile, keyFile } = this.node.etcd.tls;
    return this.command(purpose, {
      tool: 'etcdctl',
      args: `${etcdctlFlags(this.node, opts.endpoints ?? this.node.etcd.clientUrl, opts.commandTimeout ?? '5s')} ${args}`,
      ro: [caFile, certFile, keyFile].map(dirOf),
      rw: opts.rw,
    });
  }

  /** A tool on a file (snapshot status): its directory mounted read-only. */
  async onFile(purpose: string, tool: EtcdTool, args: string, file: string): Promise<string> {
    return this.command(purpose, { tool, args, ro: [dirOf(file)] });
  }
}

// etcdctl prints 64-bit ids as JSON numbers, which lose precision in JS: quote them first.
const quoteBigInts = (json: string) => json.replace(/("(?:cluster_id|member_id|ID|leader)"\s*:\s*)(\d+)/g, '$1"$2"');
const hex = (id: string) => BigInt(id).toString(16);

/** What `health()` says of a node where no etcd process runs. */
const NO_ETCD = 'no etcd process on the node';

export class EtcdGateway {
  private readonly tools: EtcdTools;
  constructor(
    private readonly shell: RemoteShell,
    private readonly node: NodeConfig,
  ) {
    this.tools = new EtcdTools(shell, node);
  }

  /**
   * `endpoint health` for this node's member; a member that is down reports health=false. No etcd
   * process on the node is said at once: etcdctl would retry a refused dial for its whole command
   * timeout (5 s) first, and a rebuild's or a restore's wait for a member polls this.
   */
  async health(): Promise<EndpointHealth> {
    const probe = await this.tools.etcdctl('health', 'endpoint health -w json');
    const r = await this.shell.exec(`if ! pgrep -x etcd >/dev/null; then echo ${NO_ETCD} >&2; exit 3; fi\n${probe}`, {
      timeoutMs: 15_000,
    });
    try {
      const [entry] = JSON.parse(r.stdout) as EndpointHealth[];
      if (entry) return entry;
    } catch {
      // fall through: etcdctl printed no JSON (e.g. dial failure)
    }
    return {
      endpoint: this.node.etcd.clientUrl,
      health: false,
      error: (r.stderr || r.stdout).trim().split('\n').pop() ?? `exit ${r.code}`,
    };
  }

  async status(): Promise<EndpointStatus> {
    const r = await this.shell.exec(await this.tools.etcdctl('status', 'endpoint status -w json'), {
      timeoutMs: 15_000,
    });
    if (r.code !== 0)
      throw failure(
        FailureType.EtcdUnhealthy,
        `${this.shell.target.label}: endpoint status failed: ${r.stderr.trim()}`,
      );
    const [entry] = JSON.parse(quoteBigInts(r.stdout)) as {
      Endpoint: string;
      Status: {
        header: { member_id: string; revision: number; raft_term: number };
        version: string;
        dbSize: number;
        leader?: string;
        raftIndex?: number;
        errors?: string[];
      };
    }[];
    if (!entry)
      throw failure(FailureType.EtcdUnhealthy, `${this.shell.target.label}: endpoint status returned nothing`);
    return {
      endpoint: entry.Endpoint,
      version: entry.Status.version,
      revision: entry.Status.header.revision,
      dbSize: entry.Status.dbSize,
      // Absent when the member has no leader (etcd omits a zero).
      leader: hex(entry.Status.leader ?? '0'),
      memberId: hex(entry.Status.header.member_id),
      raftTerm: entry.Status.header.raft_term,
      raftIndex: entry.Status.raftIndex,
      errors: entry.Status.errors,
    };
  }

  /**
   * `etcdctl move-leader`: this member, the leader, hands leadership to `toMemberId` (hex) and
   * returns once the transfer is done. A member that does not lead is refused by etcd.
   */
  async moveLeader(toMemberId: string): Promise<void> {
    const r = await this.shell.exec(await this.tools.etcdctl('move-leader', `move-leader ${shq(toMemberId)}`), {
      timeoutMs: 30_000,
    });
    if (r.code !== 0)
      throw failure(
        FailureType.EtcdUnhealthy,
        `${this.shell.target.label}: move-leader to ${toMemberId} failed: ${(r.stderr || r.stdout).trim().split('\n').pop()}`,
      );
  }

  /** Key count and revision as this member itself holds them (a serializable read stays local). */
  async keyCount(): Promise<{ revision: number; keys: number }> {
    const r = await this.shell.exec(
      await this.tools.etcdctl('count', 'get "" --prefix --count-only --consistency=s -w fields'),
      { check: true, timeoutMs: 60_000 },
    );
    const field = (name: string) => Number(r.stdout.match(new RegExp(`"${name}" : (\\d+)`))?.[1] ?? NaN);
    return { revision: field('Revision'), keys: field('Count') };
  }

  /**
   * A linearizable read on this member: it returns only once the member has applied everything
   * committed so far (a follower's snapshot is then not behind writes that preceded it).
   */
  async barrier(): Promise<void> {
    await this.shell.exec(
      `${await this.tools.etcdctl('barrier', 'get --consistency=l drctl/snapshot-barrier')} >/dev/null`,
      {
        timeoutMs: 30_000,
        check: true,
      },
    );
  }

  /**
   * `etcdctl member add NAME --peer-urls=URL --learner` through this member: a learner receives the
   * log but does not vote, so adding it never costs the cluster its quorum (a voting member added to
   * a cluster of one would: the cluster needs two votes before the new member has started). Listed,
   * unstarted, until its etcd joins; `memberPromote` makes it a voter once in sync. Looks first: a
   * member already listed with that peer URL is not added twice (a retried step).
   */
  async memberAdd(name: string, peerUrl: string): Promise<{ outcome: 'added' | 'already-listed'; members: Member[] }> {
    const before = await this.members();
    if (before.some((m) => m.peerURLs.includes(peerUrl))) return { outcome: 'already-listed', members: before };
    const r = await this.shell.exec(
      await this.tools.etcdctl('member-add', `member add ${shq(name)} --peer-urls=${shq(peerUrl)} --learner -w json`, {
        commandTimeout: '30s',
      }),
      { timeoutMs: 45_000 },
    );
    if (r.code !== 0)
      throw failure(
        FailureType.EtcdUnhealthy,
        `${this.shell.target.label}: member add ${name} failed: ${(r.stderr || r.stdout).trim().split('\n').pop()}`,
      );
    // The answer lists every member after the add (the new one without a name until it starts).
    const added = JSON.parse(quoteBigInts(r.stdout)) as { members?: MemberJson[] };
    return { outcome: 'added', members: (added.members ?? []).map(memberOf) };
  }

  /**
   * `etcdctl member promote ID`: the learner with this peer URL becomes a voting member. etcd
   * refuses while the learner is not in sync with the leader: 'not-ready' (try again). A member
   * that already votes is 'already-voting'.
   */
  async memberPromote(peerUrl: string): Promise<'promoted' | 'already-voting' | 'not-ready'> {
    const m = (await this.members()).find((x) => x.peerURLs.includes(peerUrl));
    if (!m) throw failure(FailureType.EtcdUnhealthy, `${this.shell.target.label}: no member with peer URL ${peerUrl}`);
    if (!m.isLearner) return 'already-voting';
    const r = await this.shell.exec(
      await this.tools.etcdctl('member-promote', `member promote ${shq(m.id)}`, { commandTimeout: '30s' }),
      { timeoutMs: 45_000 },
    );
    if (r.code === 0) return 'promoted';
    const why = (r.stderr || r.stdout).trim();
    if (/not in sync|can only promote a learner member which is in sync/i.test(why)) return 'not-ready';
    throw failure(
      FailureType.EtcdUnhealthy,
      `${this.shell.target.label}: member promote ${m.name || peerUrl} failed: ${why.split('\n').pop()}`,
    );
  }

  /** `etcdctl member remove ID` (hex) through this member. A member not listed is 'not-listed'. */
  async memberRemove(peerUrl: string): Promise<'removed' | 'not-listed'> {
    const m = (await this.members()).find((x) => x.peerURLs.includes(peerUrl));
    if (!m) return 'not-listed';
    const r = await this.shell.exec(
      await this.tools.etcdctl('member-remove', `member remove ${shq(m.id)}`, { commandTimeout: '30s' }),
      { timeoutMs: 45_000 },
    );
    if (r.code !== 0)
      throw failure(
        FailureType.EtcdUnhealthy,
        `${this.shell.target.label}: member remove ${m.name} (${m.id}) failed: ${(r.stderr || r.stdout).trim().split('\n').pop()}`,
      );
    return 'removed';
  }

  async members(): Promise<Member[]> {
    const r = await this.shell.exec(await this.tools.etcdctl('members', 'member list -w json'), {
      timeoutMs: 15_000,
      check: true,
    });
    const parsed = JSON.parse(quoteBigInts(r.stdout)) as { members?: MemberJson[] };
    return (parsed.members ?? []).map(memberOf);
  }
}

export interface SnapshotStatus {
  /** etcd's own hash of the snapshot's contents (from `snapshot status`). */
  hash: number;
  revision: number;
  totalKey: number;
  totalSize: number;
  version?: string;
}

export interface RestoreTool {
  /** `etcdutl` (3.5+; the only choice on 3.6) or `etcdctl` (3.4). */
  tool: 'etcdutl' | 'etcdctl';
  /** The etcd server version installed on the node, e.g. "3.5.35". */
  etcdVersion: string;
  /** --bump-revision/--mark-compacted exist from 3.5.10 (and 3.4.27). */
  supportsBumpRevision: boolean;
}

export function parseVersion(v: string): [number, number, number] {
  const m = v.match(/(\d+)\.(\d+)\.(\d+)/);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : [0, 0, 0];
}

export function supportsBumpRevision(version: string): boolean {
  const [maj, min, patch] = parseVersion(version);
  if (maj !== 3) return maj > 3;
  if (min === 4) return patch >= 27;
  if (min === 5) return patch >= 10;
  return min > 5;
}

/** Node-local snapshot tooling: which restore tool exists and what it can do. */
export class EtcdSnapshotTools {
  private readonly tools: EtcdTools;
  constructor(
    private readonly shell: RemoteShell,
    private readonly node: NodeConfig,
  ) {
    this.tools = new EtcdTools(shell, node);
  }

  private get label() {
    return this.shell.target.label;
  }

  private tool?: Promise<RestoreTool & { tools: NodeTools; source: string }>;

  /** Which restore tool, what etcd version, from where (asked once per instance). */
  restoreTool(): Promise<RestoreTool & { tools: NodeTools; source: string }> {
    this.tool ??= this.findRestoreTool();
    this.tool.catch(() => (this.tool = undefined));
    return this.tool;
  }

  private async findRestoreTool(): Promise<RestoreTool & { tools: NodeTools; source: string }> {
    const { tools, manifest } = await this.tools.resolve();
    if (tools.from === 'image') return this.imageTool(tools, manifest ?? 'the etcd manifest');
    // Host: the installed binaries. Without configured paths, exactly what drctl always ran.
    const version = tools.etcdctl
      ? `${shq(tools.etcdctl)} version 2>/dev/null | head -1`
      : tools.etcdutl
        ? `${shq(tools.etcdutl)} version 2>/dev/null | head -1`
        : 'etcd --version 2>/dev/null | head -1';
    const utl = tools.etcdutl
      ? `if [ -x ${shq(tools.etcdutl)} ]; then echo ${shq(tools.etcdutl)}; fi`
      : 'command -v etcdutl || true';
    const r = await this.shell.exec(`${version}; ${utl}`, { timeoutMs: 15_000 });
    const [versionLine = '', utlPath = ''] = r.stdout.trim().split('\n');
    const etcdVersion = versionLine.match(/(\d+\.\d+\.\d+)/)?.[1];
    if (!etcdVersion)
      throw failure(
        FailureType.RemoteCommandFailed,
        `${this.label}: cannot find the etcd binary's version (\`${version.replace(/ 2>.*$/, '')}\`)`,
      );
    return {
      tool: utlPath.trim() ? 'etcdutl' : 'etcdctl',
      etcdVersion,
      supportsBumpRevision: supportsBumpRevision(etcdVersion),
      tools,
      source: tools.etcdctl ?? tools.etcdutl ?? 'etcd on PATH',
    };
  }

  /**
   * Image mode: the version from the image's tag (kubeadm's `3.5.35-0`), else from `etcdctl
   * version` in the image; cross-checked with the running member's own version when it answers.
   * etcdutl is in the image from 3.5 on.
   */
  private async imageTool(
    tools: Extract<NodeTools, { from: 'image' }>,
    manifest: string,
  ): Promise<RestoreTool & { tools: NodeTools; source: string }> {
    let etcdVersion = versionOfImage(tools.image);
    if (!etcdVersion) {
      const r = await this.shell.exec(await this.tools.command('version', { tool: 'etcdctl', args: 'version' }), {
        timeoutMs: 60_000,
      });
      etcdVersion = r.stdout.match(/etcdctl version: (\d+\.\d+\.\d+)/)?.[1];
      if (!etcdVersion)
        throw failure(
          FailureType.RemoteCommandFailed,
          `${this.label}: cannot tell the etcd version of ${tools.image} (no version tag; \`etcdctl version\` in it: ${(r.stderr || r.stdout).trim().slice(-300)})`,
        );
    }
    let running: string | undefined;
    try {
      running = (await new EtcdGateway(this.shell, this.node).status()).version;
    } catch {
      // not running or not answering: nothing to cross-check
    }
    if (running && running !== etcdVersion)
      throw failure(
        FailureType.PreflightFailed,
        `${this.label}: the etcd image in ${manifest} (${tools.image}) is etcd ${etcdVersion}, but the running member reports ${running}: is an upgrade half-way? Finish it first`,
      );
    const [maj = 0, min = 0] = parseVersion(etcdVersion);
    return {
      tool: maj > 3 || (maj === 3 && min >= 5) ? 'etcdutl' : 'etcdctl',
      etcdVersion,
      supportsBumpRevision: supportsBumpRevision(etcdVersion),
      tools,
      source: `${tools.image} (${manifest})`,
    };
  }

  /** `etcdctl snapshot save` against this node's member, into `path` on the node. */
  async save(path: string): Promise<void> {
    const dir = dirOf(path);
    const cmd = await this.tools.etcdctl('snapshot-save', `snapshot save ${shq(path)}`, {
      commandTimeout: '10m',
      rw: [dir],
    });
    await this.shell.exec(`mkdir -p ${shq(dir)} && ${cmd}`, { timeoutMs: 15 * 60_000, check: true });
  }

  /** `snapshot status -w json` with etcdutl where present (3.6 has nothing else), and the file's sha256. */
  async status(path: string): Promise<SnapshotStatus & { sha256: string; size: number }> {
    const { tool } = await this.restoreTool();
    const status = await this.tools.onFile('snapshot-status', tool, `snapshot status ${shq(path)} -w json`, path);
    const cmd = `${status} && sha256sum ${shq(path)} && stat -c %s ${shq(path)}`;
    const r = await this.shell.exec(cmd, { timeoutMs: 10 * 60_000 });
    if (r.code !== 0) {
      throw failure(
        FailureType.SnapshotCorrupt,
        `${this.label}: ${path} failed verification: ${(r.stderr || r.stdout).trim().split('\n').slice(-2).join(' ')}`,
      );
    }
    const lines = r.stdout.trim().split('\n');
    const json = lines.find((l) => l.startsWith('{'));
    const shaLine = lines.find((l) => /^[0-9a-f]{64}\s/.test(l));
    const size = Number(lines[lines.length - 1]);
    if (!json || !shaLine)
      throw failure(
        FailureType.SnapshotCorrupt,
        `${this.label}: unexpected snapshot status output: ${r.stdout.slice(0, 300)}`,
      );
    const st = JSON.parse(json) as SnapshotStatus;
    return { ...st, sha256: shaLine.slice(0, 64), size };
  }
}
