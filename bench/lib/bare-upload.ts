// The baseline for bench/snapshot-pipeline.ts, run in a fresh Node process:
//   ssh root@node cat FILE | @aws-sdk/lib-storage Upload (same part size and queue as drctl)
// with the system OpenSSH client and a plain S3 client (the SDK's default CRC32 part checksums, as
// drctl). Prints one JSON line with what it measured. With "sha256": true it also does what drctl
// adds on top: a streaming sha256 of the bytes (to tell the transport's cost from the hashing's).
// With "encrypt" (the config's key references, never keys) it does all drctl does to the bytes:
// sha256 of the plaintext → drctl's encryption (gateways/snapshot-crypto.ts) → sha256 of what is
// stored, so its MB/s against the plain baseline's is what encryption costs the pipeline.
//   node --import tsx bench/lib/bare-upload.ts '<json args>'
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { pipeline, type Readable, Transform } from 'node:stream';
import { HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { parse } from 'yaml';
import { shq } from '../../common/shell.ts';
import type { SnapshotsConfig } from '../../config/schema.ts';
import { SnapshotKeys } from '../../gateways/snapshot-crypto.ts';
import { opensshArgs, type SshNode } from './openssh.ts';

interface Args {
  ssh: SshNode;
  knownHosts: string;
  path: string;
  endpoint: string;
  region: string;
  forcePathStyle: boolean;
  bucket: string;
  key: string;
  credentialsFile: string;
  partSize: number;
  queueSize: number;
  sha256: boolean;
  encrypt?: Pick<SnapshotsConfig, 'encryptionKey' | 'signingKey'>;
}

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const a = JSON.parse(process.argv[2] ?? '{}') as Args;
const creds = parse(readFileSync(a.credentialsFile, 'utf8')) as Record<string, string>;
const client = new S3Client({
  endpoint: a.endpoint,
  region: a.region,
  forcePathStyle: a.forcePathStyle,
  credentials: {
    accessKeyId: creds.accessKeyId ?? creds.AWS_ACCESS_KEY_ID ?? '',
    secretAccessKey: creds.secretAccessKey ?? creds.AWS_SECRET_ACCESS_KEY ?? '',
  },
});

const t0 = performance.now();
const ssh = spawn('ssh', opensshArgs(a.ssh, a.knownHosts, `cat ${shq(a.path)}`), {
  stdio: ['ignore', 'pipe', 'pipe'],
});
let stderr = '';
ssh.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
const exited = new Promise<number>((resolve) => ssh.on('close', (code) => resolve(code ?? 128)));

let body: Readable = ssh.stdout;
const hash = createHash('sha256');
let plainBytes = 0;
const hashing = (h: ReturnType<typeof createHash>, count = false) =>
  new Transform({
    transform(chunk: Buffer, _enc, cb) {
      h.update(chunk);
      if (count) plainBytes += chunk.length;
      cb(null, chunk);
    },
  });
if (a.encrypt) {
  const keys = SnapshotKeys.load(a.encrypt);
  const stored = hashing(createHash('sha256'));
  pipeline(ssh.stdout, hashing(hash, true), keys.encryptStream(), stored, () => undefined);
  body = stored;
} else if (a.sha256) {
  body = ssh.stdout.pipe(hashing(hash, true));
}
const upload = new Upload({
  client,
  params: { Bucket: a.bucket, Key: a.key, Body: body },
  partSize: a.partSize,
  queueSize: a.queueSize,
  leavePartsOnError: false,
});
await upload.done();
const code = await exited;
const ms = performance.now() - t0;
const head = await client.send(new HeadObjectCommand({ Bucket: a.bucket, Key: a.key }));
const storedBytes = head.ContentLength ?? 0;
// MB/s of the snapshot itself (the plaintext), as drctl's figure is: the same work on each side.
const bytes = a.encrypt ? plainBytes : storedBytes;
process.stdout.write(
  `${JSON.stringify({
    bytes,
    storedBytes,
    ms,
    mbPerS: bytes / 1e6 / (ms / 1000),
    sshExit: code,
    sshStderr: stderr.trim().slice(-500),
    sha256: a.sha256 || a.encrypt ? hash.digest('hex') : undefined,
    maxRssBytes: process.resourceUsage().maxRSS * 1024,
  })}\n`,
);
client.destroy();
process.exit(code === 0 ? 0 : 1);
