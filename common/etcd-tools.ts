// How an etcdctl/etcdutl invocation is spelled on a node. Pure code: the workflow builds the
// restore command with it (plan.restoreCommand), the gateways every other one.
//   host:  the binaries installed on the node (configured absolute paths, else found on PATH);
//   image: a one-off container of the etcd static pod's image (stock kubeadm: no etcd binaries on
//          the host), run with containerd's `ctr` in the kubelet's namespace:
//            ctr --address <sock> -n k8s.io run --rm --net-host --mount type=bind,src=D,dst=D,options=rbind:ro ...
//                <image> drctl-<purpose>-<random> /usr/local/bin/etcdctl <args>
//          Each directory the command needs is bind-mounted at its own path, so paths in the
//          arguments are the node's paths. The container runs the tool directly: no shell needed
//          in the image (upstream's and kubeadm's etcd images have none).
import { shq } from './shell.ts';

/** etcd's tools; `etcd` itself for a one-off server run (a recover's --force-new-cluster). */
export type EtcdTool = 'etcdctl' | 'etcdutl' | 'etcd';

/** The tools of one node, resolved: names and paths only (this crosses into workflow history). */
export type NodeTools =
  | { from: 'host'; etcdctl?: string; etcdutl?: string }
  | {
      from: 'image';
      /** e.g. registry.k8s.io/etcd:3.5.35-0, from the etcd static pod's manifest. */
      image: string;
      containerd: { address: string; namespace: string };
    };

/** Where the tools live inside the etcd image (upstream's layout; kubeadm's image is the same). */
export const IMAGE_BIN_DIR = '/usr/local/bin';

export interface ToolInvocation {
  tool: EtcdTool;
  /** The tool's arguments, already shell-quoted words. */
  args: string;
  /** Container id in image mode: unique per invocation on the node (`drctl-<purpose>-<random>`). */
  id: string;
  /** Directories the command reads (image mode: bind-mounted read-only at the same path). */
  ro?: string[];
  /** Directories the command writes (image mode: bind-mounted read-write at the same path). */
  rw?: string[];
  /** Environment for the tool (e.g. ETCDCTL_API=3). */
  env?: Record<string, string>;
}

/** The directory a file is in. */
export const dirOf = (path: string) => path.replace(/\/[^/]+\/?$/, '') || '/';

const CONTAINER_ID = /^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$/;

/**
 * The same image-mode command under another container id (the id is the word after the image).
 * A retry on the node needs a fresh id: runc can fail to join a cgroup of the same name that the
 * previous container's teardown is still removing (`cgroup.procs: no such device`, cgroup v1).
 */
export function withContainerId(command: string, id: string, newId: string): string {
  if (!CONTAINER_ID.test(newId)) throw new Error(`invalid container id ${JSON.stringify(newId)}`);
  const word = ` ${id} ${IMAGE_BIN_DIR}/`;
  const at = command.indexOf(word);
  if (at < 0 || command.indexOf(word, at + 1) >= 0)
    throw new Error(`container id ${JSON.stringify(id)} does not appear exactly once in the command`);
  return `${command.slice(0, at)} ${newId} ${IMAGE_BIN_DIR}/${command.slice(at + word.length)}`;
}

/** One shell command line that runs the tool on the node (no trailing redirections). */
export function toolCommand(tools: NodeTools, inv: ToolInvocation): string {
  const env = Object.entries(inv.env ?? {});
  if (tools.from === 'host') {
    const bin = inv.tool === 'etcd' ? 'etcd' : (tools[inv.tool] ?? inv.tool);
    return [...env.map(([k, v]) => `${k}=${shq(v)}`), shq(bin), inv.args].join(' ');
  }
  if (!CONTAINER_ID.test(inv.id)) throw new Error(`invalid container id ${JSON.stringify(inv.id)}`);
  const rw = [...new Set(inv.rw ?? [])];
  // A directory both read and written is mounted once, read-write.
  const ro = [...new Set(inv.ro ?? [])].filter((d) => !rw.includes(d));
  const mount = (dir: string, mode: 'ro' | 'rw') => {
    // ctr splits the spec on ',' and the options on ':'.
    if (!dir.startsWith('/') || /[,:\s]/.test(dir))
      throw new Error(
        `cannot bind-mount ${JSON.stringify(dir)} into the etcd container (needs an absolute path without , : or spaces)`,
      );
    return `--mount ${shq(`type=bind,src=${dir},dst=${dir},options=rbind:${mode}`)}`;
  };
  return [
    'ctr',
    `--address ${shq(tools.containerd.address)}`,
    `-n ${shq(tools.containerd.namespace)}`,
    'run --rm --net-host',
    ...env.map(([k, v]) => `--env ${shq(`${k}=${v}`)}`),
    ...ro.map((d) => mount(d, 'ro')),
    ...rw.map((d) => mount(d, 'rw')),
    shq(tools.image),
    inv.id,
    `${IMAGE_BIN_DIR}/${inv.tool}`,
    inv.args,
  ].join(' ');
}

/**
 * The etcd version in an image tag: kubeadm's `3.5.35-0`, upstream's `v3.5.35`. Undefined for a
 * digest-only reference or a tag without a version.
 */
export function versionOfImage(image: string): string | undefined {
  const noDigest = image.split('@')[0]!;
  const slash = noDigest.lastIndexOf('/');
  const colon = noDigest.lastIndexOf(':');
  if (colon <= slash) return undefined;
  return noDigest.slice(colon + 1).match(/^v?(\d+\.\d+\.\d+)(?:[-+][0-9A-Za-z.-]*)?$/)?.[1];
}
