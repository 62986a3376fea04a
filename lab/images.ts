// The control-plane images the lab's kubelets run, built here from the Go-built binaries (nothing
// can be pulled on these machines): one OCI image layout per image, written as a tar that
// `ctr -n k8s.io images import` takes, cached in $DRCTL_CACHE_DIR/images keyed by name and tag.
// Each image holds its binaries in /usr/local/bin (as upstream's etcd image does: etcd, etcdctl,
// etcdutl) and the shared libraries they link (our Go builds use cgo's resolver, so they are not
// static), and no shell: what runs in it is the binary itself, as with upstream's distroless images.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { bin, CACHE, VERSIONS } from './topology.ts';

/** The image repository the lab's kubeadm is told to use (ClusterConfiguration.imageRepository). */
export const IMAGE_REPO = 'registry.drctl.lab';
/** kubeadm 1.35's pause image tag (`kubeadm config images list`). */
export const PAUSE_TAG = '3.10.1';

export interface ImageSpec {
  /** Full reference, e.g. registry.drctl.lab/etcd:3.5.35-0 */
  ref: string;
  /** Files copied to /usr/local/bin in the image. */
  binaries: string[];
  /** Extra files: image path -> host path. */
  files?: Record<string, string>;
  /** Empty directories the image needs (writable in the container's rootfs). */
  dirs?: string[];
  entrypoint?: string[];
}

/** kubeadm tags etcd images `<version>-0`. */
export const etcdImage = (etcdVersion: string) => `${IMAGE_REPO}/etcd:${etcdVersion.replace(/^v/, '')}-0`;
export const kubeImage = (name: string) => `${IMAGE_REPO}/${name}:${VERSIONS.kubernetes}`;
export const pauseImage = `${IMAGE_REPO}/pause:${PAUSE_TAG}`;
export const kwokImage = `${IMAGE_REPO}/kwok:${VERSIONS.kwok}`;
export const veleroImage = `${IMAGE_REPO}/velero:${VERSIONS.velero}`;

/** Where kwok's stages and Velero's plugins sit inside their images. */
export const IMAGE_PATHS = { kwokStages: '/etc/kwok/stages.yaml', veleroPlugins: '/plugins' };

export function imageSpecs(etcdVersions: string[]): ImageSpec[] {
  const k = (n: string) => join(bin.kubeDir, n);
  return [
    ...[...new Set(etcdVersions)].map((v) => ({
      ref: etcdImage(v),
      binaries: ['etcd', 'etcdctl', 'etcdutl'].map((t) => join(bin.etcdVersionDir(v), t)),
      dirs: ['/var/lib/etcd', '/tmp'],
    })),
    ...['kube-apiserver', 'kube-controller-manager', 'kube-scheduler'].map((n) => ({
      ref: kubeImage(n),
      binaries: [k(n)],
      dirs: ['/tmp'],
    })),
    { ref: pauseImage, binaries: [bin.pause], entrypoint: ['/usr/local/bin/pause'] },
    {
      ref: kwokImage,
      binaries: [join(bin.kwokDir, 'kwok')],
      files: { [IMAGE_PATHS.kwokStages]: bin.kwokStages },
      dirs: ['/tmp'],
    },
    {
      ref: veleroImage,
      binaries: [bin.velero],
      files: {
        [`${IMAGE_PATHS.veleroPlugins}/velero-plugin-for-aws`]: join(bin.veleroPluginDir, 'velero-plugin-for-aws'),
      },
      dirs: ['/tmp', '/scratch'],
    },
  ];
}

/** The shared libraries `ldd` says a binary loads (absolute paths), the loader included. */
function sharedLibs(file: string): string[] {
  let out = '';
  try {
    out = execFileSync('ldd', [file], { encoding: 'utf8' });
  } catch {
    return []; // "not a dynamic executable"
  }
  return [...out.matchAll(/(\/[^\s)]+)/g)].map((m) => m[1]!).filter((p) => existsSync(p));
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/** The image's tar in the cache: built once per ref (and builder revision). */
export function imageTar(spec: ImageSpec): string {
  const dir = join(CACHE, 'images');
  const file = join(dir, `${spec.ref.replace(/[/:]/g, '_')}.oci.tar`);
  if (existsSync(file)) return file;
  mkdirSync(dir, { recursive: true });
  const work = mkdtempSync(join(tmpdir(), 'drctl-image-'));
  try {
    const root = join(work, 'rootfs');
    const put = (inside: string, host: string) => {
      mkdirSync(join(root, dirname(inside)), { recursive: true });
      copyFileSync(host, join(root, inside));
    };
    for (const b of spec.binaries) {
      put(join('/usr/local/bin', basename(b)), b);
      for (const lib of sharedLibs(b)) put(lib, lib);
    }
    for (const [inside, host] of Object.entries(spec.files ?? {})) {
      put(inside, host);
      for (const lib of sharedLibs(host)) put(lib, lib);
    }
    for (const d of spec.dirs ?? []) mkdirSync(join(root, d), { recursive: true });
    execFileSync('chmod', ['-R', 'a+rX', root]);
    // A reproducible layer: sorted, fixed owner and mtime.
    const layerFile = join(work, 'layer.tar');
    execFileSync('tar', [
      '--sort=name',
      '--owner=0',
      '--group=0',
      '--numeric-owner',
      '--mtime=@0',
      '-cf',
      layerFile,
      '-C',
      root,
      '.',
    ]);
    const layer = readFileSync(layerFile);
    const layerDigest = sha256(layer);
    const config = Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        config: {
          Env: ['PATH=/usr/local/bin:/usr/bin:/bin'],
          ...(spec.entrypoint ? { Entrypoint: spec.entrypoint } : {}),
        },
        rootfs: { type: 'layers', diff_ids: [`sha256:${layerDigest}`] },
      }),
    );
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: {
          mediaType: 'application/vnd.oci.image.config.v1+json',
          digest: `sha256:${sha256(config)}`,
          size: config.length,
        },
        layers: [
          { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: `sha256:${layerDigest}`, size: layer.length },
        ],
      }),
    );
    const oci = join(work, 'oci');
    const blobs = join(oci, 'blobs/sha256');
    mkdirSync(blobs, { recursive: true });
    renameSync(layerFile, join(blobs, layerDigest));
    writeFileSync(join(blobs, sha256(config)), config);
    writeFileSync(join(blobs, sha256(manifest)), manifest);
    writeFileSync(join(oci, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    writeFileSync(
      join(oci, 'index.json'),
      JSON.stringify({
        schemaVersion: 2,
        manifests: [
          {
            mediaType: 'application/vnd.oci.image.manifest.v1+json',
            digest: `sha256:${sha256(manifest)}`,
            size: manifest.length,
            annotations: {
              'io.containerd.image.name': spec.ref,
              'org.opencontainers.image.ref.name': spec.ref.split(':').pop(),
            },
          },
        ],
      }),
    );
    execFileSync('tar', ['-cf', `${file}.tmp`, '-C', oci, '.']);
    renameSync(`${file}.tmp`, file);
    return file;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
