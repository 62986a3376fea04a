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
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
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
  /** A root filesystem (a directory on this machine) laid down first, ownership kept: a base image. */
  base?: string;
  /** Files copied to /usr/local/bin in the image. */
  binaries: string[];
  /** Extra files: image path -> host path. */
  files?: Record<string, string>;
  /** Files written with the given content: image path -> text (e.g. an /etc/passwd for a named user). */
  texts?: Record<string, string>;
  /** Directory trees: image path -> host directory, copied whole. */
  trees?: Record<string, string>;
  /** Symbolic links: image path -> target. */
  links?: Record<string, string>;
  /** Empty directories the image needs (writable in the container's rootfs). */
  dirs?: string[];
  /** Owners (`uid:gid`) of image paths, e.g. a home directory an unprivileged user writes to. */
  owners?: Record<string, string>;
  entrypoint?: string[];
  cmd?: string[];
  /** Environment beyond PATH. */
  env?: Record<string, string>;
  user?: string;
  workdir?: string;
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
    out = execFileSync('ldd', [file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return []; // "not a dynamic executable"
  }
  return [...out.matchAll(/(\/[^\s)]+)/g)].map((m) => m[1]!).filter((p) => existsSync(p));
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/** The image's tar in the cache: built once per ref and spec (and builder revision). */
export function imageTar(spec: ImageSpec): string {
  const dir = join(CACHE, 'images');
  // Keyed by the spec too: a changed image under the same ref is built again.
  const key = sha256(Buffer.from(JSON.stringify(spec))).slice(0, 12);
  const safeRef = spec.ref.replace(/[/:]/g, '_');
  const file = join(dir, `${safeRef}-${key}.oci.tar`);
  if (existsSync(file)) return file;
  mkdirSync(dir, { recursive: true });
  const work = mkdtempSync(join(tmpdir(), 'drctl-image-'));
  try {
    const root = join(work, 'rootfs');
    if (spec.base) execFileSync('cp', ['-a', `${spec.base}/.`, root]);
    const put = (inside: string, host: string) => {
      mkdirSync(join(root, dirname(inside)), { recursive: true });
      copyFileSync(host, join(root, inside));
    };
    for (const b of spec.binaries) {
      put(join('/usr/local/bin', basename(b)), b);
      if (!spec.base) for (const lib of sharedLibs(b)) put(lib, lib);
    }
    for (const [inside, host] of Object.entries(spec.files ?? {})) {
      put(inside, host);
      if (!spec.base) for (const lib of sharedLibs(host)) put(lib, lib); // a base brings its own libraries
    }
    for (const [inside, text] of Object.entries(spec.texts ?? {})) {
      mkdirSync(join(root, dirname(inside)), { recursive: true });
      writeFileSync(join(root, inside), text);
    }
    for (const [inside, host] of Object.entries(spec.trees ?? {})) {
      mkdirSync(join(root, dirname(inside)), { recursive: true });
      execFileSync('cp', ['-a', host, join(root, inside)]);
    }
    for (const [inside, target] of Object.entries(spec.links ?? {})) {
      mkdirSync(join(root, dirname(inside)), { recursive: true });
      symlinkSync(target, join(root, inside));
    }
    for (const d of spec.dirs ?? []) mkdirSync(join(root, d), { recursive: true });
    if (!spec.base) execFileSync('chmod', ['-R', 'a+rX', root]);
    for (const [inside, owner] of Object.entries(spec.owners ?? {}))
      execFileSync('chown', ['-R', owner, join(root, inside)]);
    // A reproducible layer: sorted, fixed mtime; owners as laid down here (root, but for `base` and `owners`).
    const layerFile = join(work, 'layer.tar');
    execFileSync('tar', ['--sort=name', '--numeric-owner', '--mtime=@0', '-cf', layerFile, '-C', root, '.']);
    const layer = readFileSync(layerFile);
    const layerDigest = sha256(layer);
    const config = Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        config: {
          Env: [
            `PATH=${spec.base ? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' : '/usr/local/bin:/usr/bin:/bin'}`,
            ...Object.entries(spec.env ?? {}).map(([k, v]) => `${k}=${v}`),
          ],
          ...(spec.entrypoint ? { Entrypoint: spec.entrypoint } : {}),
          ...(spec.cmd ? { Cmd: spec.cmd } : {}),
          ...(spec.user ? { User: spec.user } : {}),
          ...(spec.workdir ? { WorkingDir: spec.workdir } : {}),
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
    // Older builds of the same ref (another spec) go.
    for (const old of readdirSync(dir))
      if (old.startsWith(`${safeRef}-`) && old.endsWith('.oci.tar') && join(dir, old) !== file) rmSync(join(dir, old));
    return file;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
