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
    return { endpoint: this.node.etcd.clientUrl, health: false, error: (r.stderr || r.stdout).trim().split('\n').pop() ?? `exit ${r.code}` };
  }

  async status(): Promise<EndpointStatus> {
    const r = await this.shell.exec(etcdctl(this.node, 'endpoint status -w json'), { timeoutMs: 15_000 });
    if (r.code !== 0) throw failure(FailureType.EtcdUnhealthy, `${this.shell.target.label}: endpoint status failed: ${r.stderr.trim()}`);
    const [entry] = JSON.parse(quoteBigInts(r.stdout)) as {
      Endpoint: string;
      Status: { header: { member_id: string; revision: number; raft_term: number }; version: string; dbSize: number; leader: string };
    }[];
    if (!entry) throw failure(FailureType.EtcdUnhealthy, `${this.shell.target.label}: endpoint status returned nothing`);
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

  async members(): Promise<Member[]> {
    const r = await this.shell.exec(etcdctl(this.node, 'member list -w json'), { timeoutMs: 15_000, check: true });
    const parsed = JSON.parse(quoteBigInts(r.stdout)) as { members?: { ID: string; name: string; peerURLs?: string[]; clientURLs?: string[] }[] };
    return (parsed.members ?? []).map((m) => ({ id: hex(m.ID), name: m.name, peerURLs: m.peerURLs ?? [], clientURLs: m.clientURLs ?? [] }));
  }
}
