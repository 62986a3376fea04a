// docker-compose.yml and the Dockerfile it builds, checked by parsing alone (there is no Docker engine
// here): the services users expect, every image pinned, the worker wired to Temporal and MinIO, and
// no credential written inline. Pure file parsing: no lab needed.
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { SEARCH_ATTRIBUTE_TYPES } from '../../common/runbook.ts';
import { composeImages } from '../../lab/compose.ts';

const root = new URL('../../', import.meta.url);
const composeText = readFileSync(new URL('docker-compose.yml', root), 'utf8');

interface Service {
  image?: string;
  build?: string | { context?: string; dockerfile?: string };
  environment?: Record<string, string | number | boolean | null> | string[];
  depends_on?: string[] | Record<string, { condition?: string }>;
  command?: string | string[];
  entrypoint?: string | string[];
}
interface Compose {
  services: Record<string, Service>;
}

const compose = parse(composeText) as Compose;
const services = compose.services;

/** The tag of an image reference ('' when there is none); a digest (@sha256:...) also counts as pinned. */
function imageTag(ref: string): { tag: string; digest: boolean } {
  const [name = '', digest] = ref.split('@');
  const last = name.slice(name.lastIndexOf('/') + 1); // a registry's :port sits before the last '/'
  const colon = last.indexOf(':');
  return { tag: colon === -1 ? '' : last.slice(colon + 1), digest: Boolean(digest?.startsWith('sha256:')) };
}

/** `${VAR:-default}` as Compose reads it with VAR unset: the default. */
const withDefaults = (ref: string) => ref.replace(/\$\{[A-Za-z_][A-Za-z0-9_]*:-([^}]*)\}/g, '$1');

function isPinned(ref: string): boolean {
  const { tag, digest } = imageTag(withDefaults(ref));
  return digest || (tag !== '' && tag !== 'latest');
}

/** A service's environment as a map, whichever of the two Compose forms it uses. */
function envOf(s: Service): Record<string, string> {
  const env = s.environment ?? {};
  if (Array.isArray(env)) {
    return Object.fromEntries(
      env.map((kv) => {
        const i = kv.indexOf('=');
        return i === -1 ? [kv, ''] : [kv.slice(0, i), kv.slice(i + 1)];
      }),
    );
  }
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v == null ? '' : String(v)]));
}

function dependsOn(s: Service): string[] {
  const d = s.depends_on ?? [];
  return Array.isArray(d) ? d : Object.keys(d);
}

/**
 * Only a variable reference: ${NAME}, ${NAME:?message}, or ${NAME:-} with an empty default (a
 * non-empty default would be an inline value again).
 */
const VAR_REF = /^\$\{[A-Za-z_][A-Za-z0-9_]*(?::?\?[^}]*|:?-)?\}$/;
const SECRET_NAME = /PASSWORD|SECRET|TOKEN|API_?KEY|ACCESS_?KEY|PRIVATE|CREDENTIAL|_KEY$/i;

describe('docker-compose.yml', () => {
  it("registers drctl's search attributes in its Temporal, exactly those the runbooks upsert", () => {
    const command = compose.services.temporal?.command;
    const args = Array.isArray(command) ? command : String(command ?? '').split(/\s+/);
    const registered = args.flatMap((a, i) => (args[i - 1] === '--search-attribute' ? [a] : []));
    expect(registered.sort()).toEqual(
      Object.entries(SEARCH_ATTRIBUTE_TYPES)
        .map(([k, t]) => `${k}=${t}`)
        .sort(),
    );
  });

  it('parses to a services map', () => {
    expect(compose).toBeTypeOf('object');
    expect(services).toBeTypeOf('object');
  });

  it('has the temporal, temporal-ui, minio, minio-init and worker services', () => {
    expect(Object.keys(services)).toEqual(
      expect.arrayContaining(['temporal', 'temporal-ui', 'minio', 'minio-init', 'worker']),
    );
  });

  it('pins every image to a tag that is not latest', () => {
    const images = Object.entries(services).filter(([, s]) => s.image !== undefined);
    expect(images.length).toBeGreaterThanOrEqual(5);
    for (const [name, s] of images) {
      expect(isPinned(String(s.image)), `${name}: ${s.image}`).toBe(true);
    }
  });

  it('recognises unpinned references (the check above can fail)', () => {
    for (const ref of ['minio/minio', 'minio/minio:latest', 'minio/minio:', 'localhost:5000/drctl'])
      expect(isPinned(ref), ref).toBe(false);
    for (const ref of ['temporalio/ui:2.42.1', 'localhost:5000/drctl:0.1.0', 'node@sha256:0123abcd'])
      expect(isPinned(ref), ref).toBe(true);
    expect(isPinned('${M:-quay.io/minio/minio}')).toBe(false);
    expect(isPinned('${M:-quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z}')).toBe(true);
  });

  it('names the Temporal and Web UI releases the lab builds its images of (lab/compose.ts)', () => {
    expect(services.temporal!.image).toBe(composeImages.temporal);
    expect(services['temporal-ui']!.image).toBe(composeImages.ui);
    expect(services.worker!.image).toBe(composeImages.worker);
  });

  it('points the Web UI at the temporal service', () => {
    const ui = services['temporal-ui']!;
    expect(envOf(ui).TEMPORAL_ADDRESS).toMatch(/^temporal:\d+$/);
    expect(dependsOn(ui)).toContain('temporal');
  });

  it('builds the worker from the repository and starts it after Temporal and the bucket', () => {
    const worker = services.worker!;
    const context = typeof worker.build === 'string' ? worker.build : worker.build?.context;
    expect(context).toBe('.');
    expect(dependsOn(worker)).toContain('temporal');
    expect(dependsOn(worker)).toContain('minio-init');
    const d = worker.depends_on;
    if (d && !Array.isArray(d)) expect(d['minio-init']?.condition).toBe('service_completed_successfully');
    const env = envOf(worker);
    expect(env.TEMPORAL_ADDRESS).toMatch(/^temporal:\d+$/);
    expect(env.DRCTL_CONFIG).toBe('/etc/drctl/drctl.yaml');
    const argv = [worker.entrypoint ?? [], worker.command ?? []].flat().join(' ');
    expect(argv).toContain('worker');
  });

  it('creates the drctl-offsite and velero-backups buckets in minio-init', () => {
    const cmd = [services['minio-init']!.command ?? []].flat().join(' ');
    expect(cmd).toMatch(/mc mb\b.*drctl-offsite/);
    expect(cmd).toMatch(/mc mb\b.*velero-backups/);
    expect(dependsOn(services['minio-init']!)).toContain('minio');
  });

  it('writes no credential inline', () => {
    const minio = envOf(services.minio!);
    expect(minio.MINIO_ROOT_PASSWORD).toMatch(VAR_REF);
    expect(minio.MINIO_ROOT_PASSWORD).toContain('MINIO_ROOT_PASSWORD');
    expect(minio.MINIO_ROOT_USER).toMatch(VAR_REF);
    for (const [name, s] of Object.entries(services)) {
      for (const [key, value] of Object.entries(envOf(s))) {
        if (SECRET_NAME.test(key)) expect(value, `${name}.environment.${key}`).toMatch(VAR_REF);
      }
    }
    for (const inline of ['hunter2', '${X:-hunter2}', 'x${X}']) expect(inline).not.toMatch(VAR_REF);
    // Nor a well-known default pair anywhere in the file.
    expect(composeText).not.toMatch(/minioadmin/i);
  });
});

describe('Dockerfile', () => {
  const dockerfile = new URL('Dockerfile', root);

  it('exists beside docker-compose.yml', () => {
    expect(existsSync(dockerfile)).toBe(true);
  });

  it("builds FROM the Node.js release the project pins (scripts/node-env.sh), which the lab's base image carries", () => {
    const from = /^FROM\s+(\S+)/m.exec(readFileSync(dockerfile, 'utf8'))?.[1];
    expect(from).toBe(composeImages.node());
  });

  it('pins every FROM image', () => {
    const froms = readFileSync(dockerfile, 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => /^FROM\s/i.test(l))
      .map((l) => l.split(/\s+/).filter((w) => !w.startsWith('--'))[1] ?? '');
    expect(froms.length).toBeGreaterThan(0);
    for (const image of froms) expect(isPinned(image), `FROM ${image}`).toBe(true);
  });

  it('runs drctl as a non-root user', () => {
    const users = readFileSync(dockerfile, 'utf8')
      .split('\n')
      .filter((l) => /^USER\s/i.test(l.trim()));
    expect(users.length).toBeGreaterThan(0);
    expect(users.at(-1)!.trim().split(/\s+/)[1]).not.toMatch(/^(root|0)(:|$)/);
  });
});
