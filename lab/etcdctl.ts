// The lab's own etcdctl (its build of the site's etcd version, on this machine) against one
// member, with that node's healthcheck-client certificate, as from an operator's workstation:
// how tests and benchmarks put data in and read it back (kubeadm nodes have no etcdctl; drctl
// itself runs it from the node's etcd image). Arguments are argv words; `input` goes to stdin.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { bin, CLUSTERS, onHost } from './topology.ts';

export function labEtcdctl(
  siteName: string,
  nodeName: string,
  args: string[],
  opts: { input?: string; timeoutMs?: number } = {},
): Promise<string> {
  const site = CLUSTERS.find((c) => c.name === siteName);
  if (!site) return Promise.reject(new Error(`unknown lab cluster ${siteName}`));
  const node = site.nodes.find((n) => n.name === nodeName);
  if (!node) return Promise.reject(new Error(`no node ${nodeName} at ${siteName}`));
  const pki = (f: string) => onHost(node, `/etc/kubernetes/pki/etcd/${f}`);
  const timeoutMs = opts.timeoutMs ?? 10_000;
  return new Promise((resolve, reject) => {
    const p = spawn(join(bin.etcdVersionDir(site.etcdVersion), 'etcdctl'), [
      `--endpoints=https://${node.ip}:2379`,
      `--cacert=${pki('ca.crt')}`,
      `--cert=${pki('healthcheck-client.crt')}`,
      `--key=${pki('healthcheck-client.key')}`,
      `--command-timeout=${Math.ceil(timeoutMs / 1000)}s`,
      ...args,
    ]);
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('error', reject);
    p.on('close', (code) =>
      code === 0
        ? resolve(out)
        : reject(new Error(`etcdctl ${args.join(' ')} on ${siteName}/${nodeName}: ${err.trim() || `exit ${code}`}`)),
    );
    p.stdin.end(opts.input ?? '');
  });
}
