// EtcdGateway: etcdctl run on the node itself over SSH, with the node's own TLS files, the way the
// runbook does it by hand. Nothing etcd-related needs to be reachable from the worker.
import { FailureType, failure } from '../common/errors.ts';
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
}

export interface Member {
  id: string;
  name: string;
  peerURLs: string[];
  clientURLs: string[];
}

/** `etcdctl` with the node's endpoint and TLS files; the arguments follow. */
export function etcdctl(node: NodeConfig, args: string, endpoints = node.etcd.clientUrl): string {
  const { caFile, certFile, keyFile } = node.etcd.tls;
  return `etcdctl --endpoints=${shq(endpoints)} --cacert=${shq(caFile)} --cert=${shq(certFile)} --key=${shq(keyFile)} --command-timeout=5s --dial-timeout=3s ${args}`;
}

// etcdctl prints 64-bit ids as JSON numbers, which lose precision in JS: quote them first.
const quoteBigInts = (json: string) => json.replace(/("(?:cluster_id|member_id|ID|leader)"\s*:\s*)(\d+)/g, '$1"$2"');
const hex = (id: string) => BigInt(id).toString(16);

export class EtcdGateway {
  constructor(
    private readonly shell: RemoteShell,
    private readonly node: NodeConfig,
  ) {}

  /** `endpoint health` for this node's member; a member that is down reports health=false. */
  async health(): Promise<EndpointHealth> {
    const r = await this.shell.exec(etcdctl(this.node, 'endpoint health -w json'), { timeoutMs: 15_000 });
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
    const r = await this.shell.exec(etcdctl(this.node, 'endpoint status -w json'), { timeoutMs: 15_000 });
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
        leader: string;
      };
    }[];
    if (!entry)
      throw failure(FailureType.EtcdUnhealthy, `${this.shell.target.label}: endpoint status returned nothing`);
    return {
      endpoint: entry.Endpoint,
      version: entry.Status.version,
      revision: entry.Status.header.revision,
      dbSize: entry.Status.dbSize,
      leader: hex(entry.Status.leader),
      memberId: hex(entry.Status.header.member_id),
      raftTerm: entry.Status.header.raft_term,
    };
  }

  /** Key count and revision as this member itself holds them (a serializable read stays local). */
  async keyCount(): Promise<{ revision: number; keys: number }> {
    const r = await this.shell.exec(etcdctl(this.node, 'get "" --prefix --count-only --consistency=s -w fields'), {
      check: true,
      timeoutMs: 60_000,
    });
    const field = (name: string) => Number(r.stdout.match(new RegExp(`"${name}" : (\\d+)`))?.[1] ?? NaN);
    return { revision: field('Revision'), keys: field('Count') };
  }

  async members(): Promise<Member[]> {
    const r = await this.shell.exec(etcdctl(this.node, 'member list -w json'), { timeoutMs: 15_000, check: true });
    const parsed = JSON.parse(quoteBigInts(r.stdout)) as {
      members?: { ID: string; name: string; peerURLs?: string[]; clientURLs?: string[] }[];
    };
    return (parsed.members ?? []).map((m) => ({
      id: hex(m.ID),
      name: m.name,
      peerURLs: m.peerURLs ?? [],
      clientURLs: m.clientURLs ?? [],
    }));
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
  constructor(
    private readonly shell: RemoteShell,
    private readonly node: NodeConfig,
  ) {}

  async restoreTool(): Promise<RestoreTool> {
    const r = await this.shell.exec('etcd --version 2>/dev/null | head -1; command -v etcdutl || true', {
      timeoutMs: 15_000,
    });
    const [versionLine = '', utl = ''] = r.stdout.trim().split('\n');
    const etcdVersion = versionLine.match(/(\d+\.\d+\.\d+)/)?.[1];
    if (!etcdVersion)
      throw failure(
        FailureType.RemoteCommandFailed,
        `${this.shell.target.label}: cannot find the etcd binary's version (\`etcd --version\`)`,
      );
    return {
      tool: utl.trim() ? 'etcdutl' : 'etcdctl',
      etcdVersion,
      supportsBumpRevision: supportsBumpRevision(etcdVersion),
    };
  }

  /** `etcdctl snapshot save` against this node's member, into `path` on the node. */
  async save(path: string): Promise<void> {
    const dir = path.replace(/\/[^/]+$/, '');
    await this.shell.exec(
      `mkdir -p ${shq(dir)} && ${etcdctl(this.node, `snapshot save ${shq(path)}`).replace('--command-timeout=5s', '--command-timeout=10m')}`,
      {
        timeoutMs: 15 * 60_000,
        check: true,
      },
    );
  }

  /** `snapshot status -w json` with etcdutl where present (3.6 has nothing else), and the file's sha256. */
  async status(path: string): Promise<SnapshotStatus & { sha256: string; size: number }> {
    const { tool } = await this.restoreTool();
    const cmd = `${tool} snapshot status ${shq(path)} -w json && sha256sum ${shq(path)} && stat -c %s ${shq(path)}`;
    const r = await this.shell.exec(cmd, { timeoutMs: 10 * 60_000 });
    if (r.code !== 0) {
      throw failure(
        FailureType.SnapshotCorrupt,
        `${this.shell.target.label}: ${path} failed verification: ${(r.stderr || r.stdout).trim().split('\n').slice(-2).join(' ')}`,
      );
    }
    const lines = r.stdout.trim().split('\n');
    const json = lines.find((l) => l.startsWith('{'));
    const shaLine = lines.find((l) => /^[0-9a-f]{64}\s/.test(l));
    const size = Number(lines[lines.length - 1]);
    if (!json || !shaLine)
      throw failure(
        FailureType.SnapshotCorrupt,
        `${this.shell.target.label}: unexpected snapshot status output: ${r.stdout.slice(0, 300)}`,
      );
    const st = JSON.parse(json) as SnapshotStatus;
    return { ...st, sha256: shaLine.slice(0, 64), size };
  }
}
