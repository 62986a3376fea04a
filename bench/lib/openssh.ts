// The system OpenSSH client as an operator would run it against a node: the node's key, its pinned
// host keys in a known_hosts file, through the site's bastion (ProxyCommand carrying the same
// options, so the bastion's key is checked too: ProxyJump would not pass them on), and `sudo -n`
// for a login user that is not root. The baselines that compare drctl's transport with OpenSSH's.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { shq } from '../../common/shell.ts';
import type { SshHop } from '../../gateways/ssh.ts';

type Hop = Omit<SshHop, 'connectTimeout'>;
/** A node's SSH settings as the config gives them (gateways/ssh.ts), as far as OpenSSH needs them. */
export interface SshNode extends Hop {
  sudo?: boolean;
  jump?: Hop;
}

const common = (identity: string, knownHosts: string) => [
  '-i',
  identity,
  '-o',
  `UserKnownHostsFile=${knownHosts}`,
  '-o',
  'StrictHostKeyChecking=yes',
  '-o',
  'BatchMode=yes',
  '-o',
  'IdentitiesOnly=yes',
];

/** argv for `ssh` running `remote` (a shell command line) on the node, as root. */
export function opensshArgs(t: SshNode, knownHosts: string, remote: string): string[] {
  const proxy = t.jump
    ? [
        '-o',
        `ProxyCommand=ssh ${common(t.jump.privateKeyPath, knownHosts)
          .map((a) => shq(a))
          .join(' ')} -p ${t.jump.port} -W %h:%p ${t.jump.user}@${t.jump.host}`,
      ]
    : [];
  return [
    ...common(t.privateKeyPath, knownHosts),
    ...proxy,
    '-p',
    String(t.port),
    `${t.user}@${t.host}`,
    t.sudo ? `sudo -n -- bash -c ${shq(remote)}` : remote,
  ];
}

/** known_hosts for the node (and its bastion): the keys as presented, accepted only if they match the pinned fingerprints. */
export function knownHostsFile(t: SshNode, file: string): string {
  const lines: string[] = [];
  for (const hop of [t, ...(t.jump ? [t.jump] : [])]) {
    const scanned = execFileSync('ssh-keyscan', ['-p', String(hop.port), '-t', 'ed25519,ecdsa,rsa', hop.host], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const pinned = scanned
      .split('\n')
      .filter((l) => l && !l.startsWith('#'))
      .filter(
        (l) =>
          execFileSync('ssh-keygen', ['-lf', '-'], { input: l, encoding: 'utf8' }).split(' ')[1] ===
          hop.hostKeyFingerprint,
      );
    if (!pinned.length)
      throw new Error(`${hop.host}: no host key from ssh-keyscan matches the pinned ${hop.hostKeyFingerprint}`);
    lines.push(...pinned);
  }
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}
