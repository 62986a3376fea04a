// The lab's control-plane nodes are what kubeadm makes, and drctl reaches them as it would a
// hardened fleet: read through drctl's own SSH gateway (site B through its bastion, as a sudoer).
import { CoreV1Api } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FailureType } from '../common/errors.ts';
import type { DrctlConfig } from '../config/schema.ts';
import { connectShell } from '../gateways/ssh.ts';
import { createGateways, type Gateways } from '../worker/gateways.ts';
import { ensureLabHealthy, labConfig } from './support/lab.ts';

let config: DrctlConfig;
let gw: Gateways;

beforeAll(async () => {
  await ensureLabHealthy();
  config = labConfig();
  gw = createGateways(config);
});
afterAll(() => gw?.close());

const nodes = () => config.sites.flatMap((s) => s.cluster.nodes.map((n) => ({ cluster: s.cluster.name, node: n })));

describe('each control-plane node, as kubeadm made it', () => {
  it('has the node agents on its PATH and no etcd tool or control-plane binary', async () => {
    for (const { cluster, node } of nodes()) {
      const r = await gw
        .shell(cluster, node.name)
        .exec(
          'for t in kubelet kubeadm crictl ctr etcd etcdctl etcdutl kube-apiserver; do command -v $t >/dev/null && echo "$t yes" || echo "$t no"; done',
          { check: true },
        );
      expect(r.stdout.trim().split('\n'), `${cluster}/${node.name}`).toEqual([
        'kubelet yes',
        'kubeadm yes',
        'crictl yes',
        'ctr yes',
        'etcd no',
        'etcdctl no',
        'etcdutl no',
        'kube-apiserver no',
      ]);
    }
  });

  it("runs kubeadm's static pods as containers under its kubelet, each from the lab's image of the site's version", async () => {
    for (const { cluster, node } of nodes()) {
      const r = await gw
        .shell(cluster, node.name)
        .exec(
          'crictl ps --state running -o json | grep -o \'"image": *"[^"]*"\' | sort -u; ' +
            'grep -h "image:" /etc/kubernetes/manifests/*.yaml | sort -u; test -s /var/lib/kubelet/config.yaml && echo kubelet-config; ' +
            'grep -c "^- name: etcd\\|kubeadm" /etc/kubernetes/manifests/etcd.yaml',
          { check: true },
        );
      const want = cluster === 'site-a' ? 'registry.drctl.lab/etcd:3.5.35-0' : 'registry.drctl.lab/etcd:3.6.16-0';
      expect(r.stdout, `${cluster}/${node.name}`).toContain(`image: ${want}`);
      for (const c of ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler'])
        expect(r.stdout).toContain(`image: registry.drctl.lab/${c}:v1.35.4`);
      expect(r.stdout).toContain('kubelet-config');
    }
    // kubeadm's own records: its ClusterConfiguration, and every node registered by its kubelet.
    for (const site of config.sites) {
      const core = gw.kube(site.cluster.name).kc.makeApiClient(CoreV1Api);
      const cm = await core.readNamespacedConfigMap({ namespace: 'kube-system', name: 'kubeadm-config' });
      expect(cm.data?.ClusterConfiguration).toContain(`clusterName: ${site.cluster.name}`);
      expect(cm.data?.ClusterConfiguration).toContain('imageRepository: registry.drctl.lab');
      const list = await core.listNode({ labelSelector: 'node-role.kubernetes.io/control-plane' });
      expect(list.items.map((n) => n.metadata?.name).sort()).toEqual(['cp1', 'cp2', 'cp3']);
    }
  });

  it("cp2's /var/lib/etcd is a filesystem of its own (a dedicated etcd disk), the others' are not", async () => {
    for (const { cluster, node } of nodes()) {
      const r = await gw.shell(cluster, node.name).exec('findmnt -n -o SOURCE,FSTYPE --target /var/lib/etcd', {
        check: true,
      });
      if (node.name === 'cp2') expect(r.stdout, `${cluster}/cp2`).toMatch(/^\/dev\/loop\d+\s+ext4$/m);
      else expect(r.stdout, `${cluster}/${node.name}`).not.toMatch(/\/dev\/loop/);
    }
  });
});

describe('site B is hardened: root login off, a sudoer, SSH only through the bastion', () => {
  it('drctl logs in as drctl with sudo through the bastion', async () => {
    const node = config.sites[1]!.cluster.nodes[0]!;
    expect(node.ssh).toMatchObject({ user: 'drctl', sudo: true, jump: { host: '172.30.20.250' } });
    const r = await gw.shell('site-b', 'cp1').exec('id -un; hostname', { check: true });
    expect(r.stdout.trim().split('\n')).toEqual(['root', 'cp1']);
  });

  it('a direct connection (no bastion) and root through the bastion are both refused', async () => {
    const node = config.sites[1]!.cluster.nodes[0]!;
    const { jump, ...direct } = node.ssh;
    for (const target of [
      { label: 'site-b/cp1 direct', ...direct },
      { label: 'site-b/cp1 as root', ...node.ssh, user: 'root', sudo: false },
    ]) {
      const shell = connectShell(target);
      try {
        const err = await shell.exec('true').then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err, target.label).toMatchObject({ type: FailureType.SshUnreachable });
        expect(String((err as Error).message)).toMatch(/authentication methods failed|Permission denied/i);
      } finally {
        shell.close();
      }
    }
    expect(jump).toBeDefined();
  });
});
