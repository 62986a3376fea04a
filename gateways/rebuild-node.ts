// RebuildNode: the node-side steps of `drctl cluster rebuild` on one new host (the etcd restore
// itself is RestoreNode's). A new host is what provisioning leaves: OS, sshd, the login user,
// containerd, kubelet, kubeadm, the control-plane images; no /etc/kubernetes, no etcd data. Every
// step looks before it acts, so a retry or a new worker after a crash repeats nothing: files that
// are already there with the bundle's bytes are kept; kubeadm's phases keep what they find valid.
import { createHash } from 'node:crypto';
import { finished } from 'node:stream/promises';
import { parse as parseYaml, stringify } from 'yaml';
import { FailureType, failure } from '../common/errors.ts';
import { type BundleManifest, KUBEADM_PATHS } from '../common/cp-bundle.ts';
import type { NodeConfig } from '../config/schema.ts';
import { replaceFile } from './restore-node.ts';
import { type RemoteShell, shq } from './ssh.ts';

/** What a new host has, read without changing anything. */
export interface HostLook {
  /** What a new host must not have: a control plane or etcd data (then it is a restore, not a rebuild). */
  leftovers: string[];
  hostname: string;
  kubeadm?: string;
  kubelet?: string;
  /** Images in containerd's k8s.io namespace (the control plane's, preloaded). */
  images: number;
  /** Free bytes where etcd's data goes. */
  freeBytes: number;
  dataDirMountPoint: boolean;
}

/** A file of the bundle, to lay on the node. */
export interface HostFile {
  path: string;
  mode: string;
  data: Buffer;
}

/** The files named `prefix…` of a decrypted bundle, each at its place under `dir` on the node. */
export function bundleFilesUnder(
  bundle: { manifest: BundleManifest; files: Map<string, Buffer> },
  prefix: string,
  dir: string,
): HostFile[] {
  return bundle.manifest.items
    .filter((i) => i.name.startsWith(prefix))
    .map((i) => ({ path: `${dir}/${i.name.slice(prefix.length)}`, mode: i.mode, data: bundle.files.get(i.name)! }));
}

/** kubeadm's static pods: the rebuild writes them, the undo takes them away. */
const STATIC_PODS = ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler'];
const MANIFESTS = '/etc/kubernetes/manifests';
/** The address a node's control plane advertises: its etcd peer URL's host (an IPv6 one unbracketed). */
export const advertiseAddressOf = (node: NodeConfig) => new URL(node.etcd.peerUrl).hostname.replace(/^\[(.*)\]$/, '$1');

/**
 * The kubeadm config a rebuild runs kubeadm's phases with on `node`: its InitConfiguration (its
 * name, the address it advertises: its etcd peer URL's host, its CRI socket) and the bundle's
 * ClusterConfiguration as the cluster held it (its apiVersion and kind added when it has none).
 */
export function kubeadmRebuildConfig(node: NodeConfig, clusterConfiguration: string): string {
  const cluster = parseYaml(clusterConfiguration) as { apiVersion?: string; kind?: string };
  const apiVersion = cluster.apiVersion ?? 'kubeadm.k8s.io/v1beta4';
  const init = {
    apiVersion,
    kind: 'InitConfiguration',
    localAPIEndpoint: { advertiseAddress: advertiseAddressOf(node), bindPort: 6443 },
    nodeRegistration: { name: node.etcd.memberName, criSocket: `unix://${node.containerd.address}` },
  };
  const clusterDoc = cluster.kind
    ? clusterConfiguration
    : stringify({ ...cluster, apiVersion, kind: 'ClusterConfiguration' });
  return `${stringify(init)}---\n${clusterDoc}`;
}

/** The kubeadm config a rebuild runs the phases with (the run's tag in its name). */
export const rebuildConfigPath = (tag: string) => `/etc/kubernetes/drctl-rebuild-${tag}.yaml`;

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** `fn` over `xs`, at most `n` at a time. */
async function inBatches<T>(xs: T[], n: number, fn: (x: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < xs.length; i += n) await Promise.all(xs.slice(i, i + n).map(fn));
}

export class RebuildNode {
  constructor(
    private readonly shell: RemoteShell,
    private readonly node: NodeConfig,
  ) {}

  private get label() {
    return this.shell.target.label;
  }

  /** Read-only: what is on the host. */
  async look(): Promise<HostLook> {
    const dataDir = this.node.etcd.dataDir;
    const sock = this.node.containerd.address;
    const script = [
      `for p in ${KUBEADM_PATHS.pki} ${KUBEADM_PATHS.adminKubeconfig} /etc/kubernetes/kubelet.conf ${KUBEADM_PATHS.kubelet}/config.yaml ${shq(`${dataDir}/member`)}; do [ -e "$p" ] && echo "leftover=$p"; done`,
      `for f in ${MANIFESTS}/*.yaml; do [ -e "$f" ] && echo "leftover=$f"; done`,
      `for p in etcd kube-apiserver; do pgrep -x "$p" >/dev/null && echo "leftover=a running $p process"; done`,
      'echo "hostname=$(hostname)"',
      'echo "kubeadm=$(kubeadm version -o short 2>/dev/null)"',
      `echo "kubelet=$(kubelet --version 2>/dev/null | awk '{print $2}')"`,
      `echo "images=$(ctr -a ${shq(sock)} -n k8s.io images ls -q 2>/dev/null | wc -l)"`,
      `d=${shq(dataDir)}; while [ ! -d "$d" ]; do d=$(dirname "$d"); done; echo "free=$(df -B1 --output=avail "$d" | tail -1 | tr -d ' ')"`,
      `mountpoint -q ${shq(dataDir)} 2>/dev/null && echo mount=yes || true`,
    ].join('\n');
    const r = await this.shell.exec(script, { timeoutMs: 60_000, check: true });
    const lines = r.stdout.split('\n');
    const value = (k: string) =>
      lines
        .find((l) => l.startsWith(`${k}=`))
        ?.slice(k.length + 1)
        .trim() || undefined;
    return {
      leftovers: lines.filter((l) => l.startsWith('leftover=')).map((l) => l.slice('leftover='.length)),
      hostname: value('hostname') ?? '',
      kubeadm: value('kubeadm'),
      kubelet: value('kubelet'),
      images: Number(value('images') ?? 0),
      freeBytes: Number(value('free') ?? 0),
      dataDirMountPoint: value('mount') === 'yes',
    };
  }

  /**
   * Lays `files` on the node, each with its mode, written to a temp name and renamed into place.
   * A file already there with the same bytes is kept (a retry); one with other bytes is refused:
   * this run did not write it.
   */
  async layFiles(files: HostFile[]): Promise<{ written: string[]; kept: string[] }> {
    const sums = await this.shell.exec(
      files
        .map((f) => `if [ -e ${shq(f.path)} ]; then sha256sum ${shq(f.path)} | cut -c1-64; else echo none; fi`)
        .join('\n'),
      { timeoutMs: 60_000, check: true },
    );
    const there = sums.stdout.trim().split('\n');
    const kept: string[] = [];
    const toWrite: HostFile[] = [];
    for (const [i, f] of files.entries()) {
      const now = there[i]?.trim();
      if (now === sha256(f.data)) kept.push(f.path);
      else if (now !== 'none')
        throw failure(
          FailureType.PreflightFailed,
          `${this.label}: ${f.path} is already there with other content: not this run's; nothing was overwritten`,
        );
      else toWrite.push(f);
    }
    if (!toWrite.length) return { written: [], kept };
    // Three round trips whatever the count: the directories, the files to temp names side by side
    // (a few channels at a time), then every file into place at once.
    const dirs = [...new Set(toWrite.map((f) => f.path.replace(/\/[^/]+$/, '')))];
    await this.shell.exec(`mkdir -p ${dirs.map(shq).join(' ')}`, { timeoutMs: 30_000, check: true });
    const tmp = (f: HostFile) => `${f.path}.drctl-tmp`;
    await inBatches(toWrite, 4, async (f) => {
      const out = await this.shell.writeStream(tmp(f), Number.parseInt(f.mode, 8));
      await finished(out.end(f.data));
    });
    await this.shell.exec(
      ['set -e', ...toWrite.map((f) => `chmod ${shq(f.mode)} ${shq(tmp(f))} && mv ${shq(tmp(f))} ${shq(f.path)}`)].join(
        '\n',
      ),
      { timeoutMs: 30_000, check: true },
    );
    const written = toWrite.map((f) => f.path);
    return { written, kept };
  }

  /**
   * kubeadm's own phases with `config` (an InitConfiguration for this node + the cluster's
   * ClusterConfiguration from the bundle): certs (every per-node certificate issued from the CAs
   * already laid; kubeadm keeps a valid existing one), kubeconfigs, the etcd and control-plane
   * static pod manifests. The kubelet has no config yet, so nothing starts.
   */
  async kubeadmPhases(tag: string, config: string): Promise<string[]> {
    const cfg = rebuildConfigPath(tag);
    const phases = ['certs all', 'kubeconfig all', 'etcd local', 'control-plane all'];
    const script = [
      'set -e',
      'umask 077',
      replaceFile(`${cfg}.tmp`, cfg, config),
      ...phases.map((p) => `echo "== ${p}"; kubeadm init phase ${p} --config ${shq(cfg)} 2>&1`),
    ].join('\n');
    const r = await this.shell.exec(script, { timeoutMs: 5 * 60_000, check: true });
    return r.stdout
      .split('\n')
      .filter((l) => l.startsWith('[') || l.startsWith('=='))
      .map((l) => l.trim());
  }

  /**
   * The kubelet's config from the bundle (as kubeadm wrote it on the old host), then the kubelet
   * (re)started so it reads it: it starts the static pods. A kubelet already running with these
   * files is left alone.
   */
  async startKubelet(files: HostFile[]): Promise<'started' | 'already-configured'> {
    const laid = await this.layFiles(files);
    if (!laid.written.length) return 'already-configured';
    const restart = this.node.controlPlane.profile === 'kubeadm' ? this.node.controlPlane.kubeletRestart : undefined;
    if (restart) await this.shell.exec(`${restart} || true`, { timeoutMs: 60_000 });
    return 'started';
  }

  /**
   * The undo: the host back to what provisioning left. The static pods' manifests taken away
   * (the kubelet stops them) and waited for, the kubelet's config removed and the kubelet
   * restarted (it waits for a config again), then what this run laid: /etc/kubernetes but its
   * empty manifest dir, the kubelet's config and certificates, etcd's data (not the disk's
   * lost+found), the run's work dir. Only after the preflight and the recheck saw the host new:
   * everything there was laid by this run.
   */
  async reset(tag: string, workDir: string): Promise<'reset' | 'timed-out'> {
    const dataDir = this.node.etcd.dataDir;
    const restart = this.node.controlPlane.profile === 'kubeadm' ? this.node.controlPlane.kubeletRestart : 'true';
    const script = [
      'set -e',
      ...STATIC_PODS.map((p) => `rm -f ${MANIFESTS}/${p}.yaml`),
      'for i in $(seq 1 900); do if ! pgrep -x etcd >/dev/null && ! pgrep -x kube-apiserver >/dev/null; then break; fi; if [ "$i" = 900 ]; then echo result=timed-out; exit 0; fi; sleep 0.1; done',
      `rm -rf ${KUBEADM_PATHS.kubelet}/config.yaml ${KUBEADM_PATHS.kubelet}/kubeadm-flags.env ${KUBEADM_PATHS.kubelet}/pki`,
      `${restart} || true`,
      `rm -rf ${KUBEADM_PATHS.pki} /etc/kubernetes/*.conf ${shq(rebuildConfigPath(tag))} ${shq(`${rebuildConfigPath(tag)}.tmp`)}`,
      `if [ -d ${shq(dataDir)} ]; then find ${shq(dataDir)} -mindepth 1 -maxdepth 1 ! -name lost+found -exec rm -rf {} +; fi`,
      `rm -rf ${shq(workDir)}`,
      'echo result=reset',
    ].join('\n');
    const r = await this.shell.exec(script, { timeoutMs: 3 * 60_000, check: true });
    return r.stdout.includes('result=timed-out') ? 'timed-out' : 'reset';
  }
}
