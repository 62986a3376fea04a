// The lab's certificates, laid out like kubeadm's: an etcd CA and a Kubernetes CA per site, server
// and peer certificates per etcd member, the API server's serving and etcd-client certificates, an
// admin client certificate (system:masters) and the service-account key pair, and the kubeconfigs
// that carry a client certificate. Made with openssl.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { LabCluster } from './topology.ts';

function openssl(args: string[]) {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function key(path: string) {
  if (!existsSync(path)) openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', path]);
}

export function ca(dir: string, cn: string): { crt: string; key: string } {
  mkdirSync(dir, { recursive: true });
  const k = join(dir, 'ca.key');
  const crt = join(dir, 'ca.crt');
  key(k);
  if (!existsSync(crt))
    openssl([
      'req',
      '-x509',
      '-new',
      '-key',
      k,
      '-subj',
      `/CN=${cn}`,
      '-days',
      '3650',
      '-sha256',
      '-out',
      crt,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign,digitalSignature',
    ]);
  return { crt, key: k };
}

export interface LeafSpec {
  cn: string;
  org?: string;
  ips?: string[];
  dns?: string[];
  usage: ('server' | 'client')[];
}

/** Writes `${base}.crt` and `${base}.key` signed by `authority`, unless they already exist. */
export function leaf(authority: { crt: string; key: string }, base: string, spec: LeafSpec): void {
  const crt = `${base}.crt`;
  const k = `${base}.key`;
  key(k);
  if (existsSync(crt)) return;
  const csr = `${base}.csr`;
  const ext = `${base}.ext`;
  const san = [...(spec.ips ?? []).map((i) => `IP:${i}`), ...(spec.dns ?? []).map((d) => `DNS:${d}`)];
  const eku = spec.usage.map((u) => (u === 'server' ? 'serverAuth' : 'clientAuth')).join(',');
  writeFileSync(
    ext,
    [
      'basicConstraints=CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      `extendedKeyUsage=${eku}`,
      ...(san.length ? [`subjectAltName=${san.join(',')}`] : []),
    ].join('\n'),
  );
  openssl(['req', '-new', '-key', k, '-subj', `/CN=${spec.cn}${spec.org ? `/O=${spec.org}` : ''}`, '-out', csr]);
  openssl([
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    authority.crt,
    '-CAkey',
    authority.key,
    '-CAcreateserial',
    '-days',
    '825',
    '-sha256',
    '-extfile',
    ext,
    '-out',
    crt,
  ]);
  execFileSync('rm', ['-f', csr, ext]);
}

export function serviceAccountKeys(dir: string): void {
  const k = join(dir, 'sa.key');
  key(k);
  if (!existsSync(join(dir, 'sa.pub'))) openssl(['pkey', '-in', k, '-pubout', '-out', join(dir, 'sa.pub')]);
}

/** A kubeconfig with an embedded client certificate, like the ones kubeadm writes to /etc/kubernetes. */
export function kubeconfig(
  site: Pick<LabCluster, 'name' | 'apiserver'>,
  user: string,
  caCrt: string,
  certBase: string,
  context = `${user}@${site.name}`,
): string {
  const b64 = (f: string) => readFileSync(f).toString('base64');
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: site.name, cluster: { server: site.apiserver, 'certificate-authority-data': b64(caCrt) } }],
    users: [
      {
        name: user,
        user: { 'client-certificate-data': b64(`${certBase}.crt`), 'client-key-data': b64(`${certBase}.key`) },
      },
    ],
    contexts: [{ name: context, context: { cluster: site.name, user } }],
    'current-context': context,
  });
}
