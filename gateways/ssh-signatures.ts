// SSH signatures (OpenSSH's `ssh-keygen -Y`): the CLI signs a person's decision with their key
// (a key file, or through ssh-agent with the public key's file), the worker verifies it against an
// allowed_signers file written from its config. No signature code of our own: ssh-keygen does it.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { canonicalJson, SIGNATURE_NAMESPACE, type Claims, type Signed, type VerifiedSigner } from '../common/signed.ts';

/** sha256 (hex) of canonicalJson(value): the digest a signature binds (evidence, a run's input). */
export function digestOf(value: unknown): string {
  return createHash('sha256')
    .update(canonicalJson(value ?? null))
    .digest('hex');
}

function keygen(args: string[], stdin: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = execFile('ssh-keygen', args, { timeout: 30_000 }, (err, stdout, stderr) => {
      if (err && typeof (err as { code?: unknown }).code !== 'number') return reject(err);
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
    // ssh-keygen may exit before reading its input (`-y`, a bad key): that is its answer, not ours to crash on.
    p.stdin?.on('error', () => undefined);
    p.stdin?.end(stdin);
  });
}

/** Signs claims with a private key file (or a public key file whose private half ssh-agent holds). */
export async function signClaims<C extends Claims>(claims: C, keyPath: string): Promise<Signed<C>> {
  const r = await keygen(['-Y', 'sign', '-q', '-f', keyPath, '-n', SIGNATURE_NAMESPACE], canonicalJson(claims));
  if (r.code !== 0 || !r.stdout.includes('BEGIN SSH SIGNATURE'))
    throw new Error(`ssh-keygen -Y sign with ${keyPath} failed: ${(r.stderr || r.stdout).trim()}`);
  return { claims, signature: r.stdout.trim() };
}

/** The public key line of a key file (`<type> <base64>`), for finding its principal in the config. */
export async function publicKeyOf(keyPath: string): Promise<string> {
  const text = keyPath.endsWith('.pub')
    ? await readFile(keyPath, 'utf8')
    : await keygen(['-y', '-f', keyPath], '').then((r) => {
        if (r.code !== 0) throw new Error(`cannot read the public key of ${keyPath}: ${r.stderr.trim()}`);
        return r.stdout;
      });
  return keyWords(text);
}

/** `<type> <base64>` of an authorized_keys-style line (options and comment dropped). */
export function keyWords(line: string): string {
  const words = line.trim().split(/\s+/);
  const i = words.findIndex((w) => /^(ssh-|ecdsa-|sk-)/.test(w));
  if (i < 0 || !words[i + 1]) throw new Error(`not an SSH public key: ${line.slice(0, 40)}`);
  return `${words[i]} ${words[i + 1]}`;
}

export type SignatureVerdict = { ok: true; signer: VerifiedSigner } | { ok: false; why: string };

/**
 * Verifies `signed` as made by `claims.by` with one of `signers[claims.by]` (public key lines).
 * A name with no key, a key of someone else, a changed byte: refused, with ssh-keygen's words.
 */
export async function verifyClaims(signed: Signed, signers: Record<string, string[]>): Promise<SignatureVerdict> {
  const by = signed.claims.by;
  const keys = signers[by];
  if (!keys?.length) return { ok: false, why: `${by} has no public key in the worker's approvals.signers` };
  const dir = await mkdtemp(join(tmpdir(), 'drctl-sig-'));
  try {
    const allowed = join(dir, 'allowed_signers');
    const principal = by.replace(/[^A-Za-z0-9._@-]/g, '_');
    await writeFile(
      allowed,
      keys.map((k) => `${principal} namespaces="${SIGNATURE_NAMESPACE}" ${keyWords(k)}\n`).join(''),
    );
    const sig = join(dir, 'decision.sig');
    await writeFile(sig, `${signed.signature.trim()}\n`);
    const r = await keygen(
      ['-Y', 'verify', '-f', allowed, '-I', principal, '-n', SIGNATURE_NAMESPACE, '-s', sig],
      canonicalJson(signed.claims),
    );
    const m = /signature for .* with .* key (SHA256:[A-Za-z0-9+/=]+)/.exec(r.stdout);
    if (r.code !== 0 || !m)
      return {
        ok: false,
        why: `signature check failed for ${by}: ${(r.stderr || r.stdout).trim().split('\n').pop() || `ssh-keygen exit ${r.code}`}`,
      };
    return { ok: true, signer: { by, fingerprint: m[1]! } };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
