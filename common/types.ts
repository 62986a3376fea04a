// Shapes that cross the workflow/activity boundary. Names and paths only: never secrets.

export interface ClusterShape {
  cluster: string;
  nodes: {
    name: string;
    memberName: string;
    peerUrl: string;
    clientUrl: string;
    dataDir: string;
    apiserver: boolean;
  }[];
}

export interface NodeCheck {
  node: string;
  reachable: boolean;
  hostKeyMismatch?: boolean;
  error?: string;
  etcd: {
    healthy: boolean;
    version?: string;
    revision?: number;
    leader?: string;
    memberId?: string;
    dbSize?: number;
    error?: string;
  };
  tookMs: number;
}

export interface KubeCheck {
  ready: boolean;
  detail: string;
  namespaces: string[];
}

export interface ClusterHealthReport {
  cluster: string;
  checkedAt: string;
  ok: boolean;
  quorum: boolean;
  healthyMembers: number;
  members: number;
  leader?: string;
  nodes: NodeCheck[];
  kube: KubeCheck;
  problems: string[];
}
