// The node side without a lab: how etcd tools are spelled (host binaries or one-off containers of
// the etcd image), sudo wrapping, the root check, and the restore's data-dir scripts run for real
// with bash against temp dirs (a mount point too: a small ext4 image on a loop device, when root).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toolCommand, versionOfImage } from '../../common/etcd-tools.ts';
import { FailureType, failure } from '../../common/errors.ts';
import { type NodePlan, type NodePreflight, planRestore } from '../../common/restore.ts';
import type { SnapshotRef } from '../../common/snapshots.ts';
import type { NodeConfig } from '../../config/schema.ts';
import { containerId, EtcdGateway, EtcdSnapshotTools, EtcdTools, etcdImageOf } from '../../gateways/etcd.ts';
import { nodeLockFor, RestoreNode } from '../../gateways/restore-node.ts';
import { asRoot, checkRoot, type ExecResult, type RemoteShell } from '../../gateways/ssh.ts';
import { localShell } from './support/local-shell.ts';

const tmp = mkdtempSync(join(tmpdir(), 'drctl-node-side-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** The snapshot every plan below restores (only its shape matters to the scripts). */
const SNAPSHOT: SnapshotRef = {
  key: 'k',
  takenAt: '2026-01-01T00:00:00Z',
  revision: 1,
  etcdHash: 1,
  sha256: 'a',
  size: 1,
  cluster: 'c',
  member: 'cp1',
  etcdVersion: '3.5.35',
  totalKey: 1,
  totalSize: 1,
  storedSha256: 'b',
  storedSize: 2,
  encryption: 'drctl-stream/aes-256-gcm/v1',
  encryptionKeyId: 'e',
  signingKeyId: 's',
  signature: 'x',
};

const IMAGE = {
  from: 'image',
  image: 'registry.drctl.lab/etcd:3.5.35-0',
  containerd: { address: '/run/containerd/containerd.sock', namespace: 'k8s.io' },
} as const;

function nodeConfig(root: string, over: Partial<NodeConfig['etcd']> = {}): NodeConfig {
  return {
    name: 'cp1',
    ssh: {
      host: '127.0.0.1',
      port: 22,
      user: 'root',
      privateKeyPath: '/dev/null',
      hostKeyFingerprint: 'SHA256:x',
      connectTimeout: 1000,
      sudo: false,
    },
    etcd: {
      memberName: 'cp1',
      // Nothing listens on port 1: the "is etcd running" test sees no etcd.
      clientUrl: 'https://127.0.0.1:1',
      peerUrl: 'https://127.0.0.1:2380',
      dataDir: join(root, 'var/lib/etcd'),
      tls: {
        caFile: join(root, 'pki/etcd/ca.crt'),
        certFile: join(root, 'pki/etcd/server.crt'),
        keyFile: join(root, 'pki/etcd/server.key'),
      },
      tools: { from: 'host' },
      ...over,
    },
    containerd: { address: '/run/containerd/containerd.sock', namespace: 'k8s.io' },
    controlPlane: {
      profile: 'kubeadm',
      manifestsDir: join(root, 'manifests'),
      parkedDir: join(root, 'manifests-parked'),
      apiserverStopGrace: 1000,
      restartAfterRestore: [],
      kubeletRestart: 'true',
    },
    apiserver: true,
  };
}

describe('etcd tools: the command line', () => {
  const inv = {
    tool: 'etcdutl' as const,
    args: "snapshot restore /var/lib/drctl-restore-x/snapshot.db '--name=a b'",
    ro: ['/var/lib/drctl-restore-x', '/etc/kubernetes/pki/etcd'],
    rw: ['/var/lib/etcd'],
  };

  it('host mode is the plain binary (configured path, else PATH), as before', () => {
    expect(toolCommand({ from: 'host' }, { ...inv, id: 'x' })).toBe(`etcdutl ${inv.args}`);
    expect(toolCommand({ from: 'host', etcdutl: '/opt/etcd/etcdutl' }, { ...inv, id: 'x' })).toBe(
      `/opt/etcd/etcdutl ${inv.args}`,
    );
    expect(toolCommand({ from: 'host' }, { ...inv, tool: 'etcdctl', env: { ETCDCTL_API: '3' }, id: 'x' })).toBe(
      `ETCDCTL_API=3 etcdctl ${inv.args}`,
    );
  });

  it('image mode: ctr run --rm in k8s.io, each dir bind-mounted at its own path, the tool run directly', () => {
    const cmd = toolCommand(IMAGE, { ...inv, id: 'drctl-restore-abc', env: { ETCDCTL_API: '3' } });
    expect(cmd).toBe(
      [
        'ctr --address /run/containerd/containerd.sock -n k8s.io run --rm --net-host',
        `--env ETCDCTL_API=3`,
        `--mount type=bind,src=/var/lib/drctl-restore-x,dst=/var/lib/drctl-restore-x,options=rbind:ro`,
        `--mount type=bind,src=/etc/kubernetes/pki/etcd,dst=/etc/kubernetes/pki/etcd,options=rbind:ro`,
        `--mount type=bind,src=/var/lib/etcd,dst=/var/lib/etcd,options=rbind:rw`,
        'registry.drctl.lab/etcd:3.5.35-0 drctl-restore-abc /usr/local/bin/etcdutl',
        inv.args,
      ].join(' '),
    );
    // As the node's bash splits it: after the image and the id comes the tool itself, no shell.
    const argv = execFileSync('bash', ['-c', `printf '%s\\n' ${cmd}`], { encoding: 'utf8' })
      .trim()
      .split('\n');
    const at = argv.indexOf('registry.drctl.lab/etcd:3.5.35-0');
    expect(argv.slice(at + 1, at + 3)).toEqual(['drctl-restore-abc', '/usr/local/bin/etcdutl']);
    expect(argv).not.toContain('sh');
    expect(argv).not.toContain('-c');
    expect(argv.at(-1)).toBe('--name=a b');
  });

  it('a dir both read and written is mounted once, read-write; unsafe paths and ids are refused', () => {
    const cmd = toolCommand(IMAGE, { tool: 'etcdctl', args: 'x', id: 'drctl-a-1', ro: ['/w', '/w'], rw: ['/w'] });
    expect(cmd.match(/--mount/g)).toHaveLength(1);
    expect(cmd).toContain('options=rbind:rw');
    expect(() => toolCommand(IMAGE, { tool: 'etcdctl', args: 'x', id: 'drctl-a-1', ro: ['/a,b'] })).toThrow(
      /bind-mount/,
    );
    expect(() => toolCommand(IMAGE, { tool: 'etcdctl', args: 'x', id: 'bad id' })).toThrow(/container id/);
  });

  it('container ids are unique per invocation', () => {
    const ids = new Set(Array.from({ length: 200 }, () => containerId('health')));
    expect(ids.size).toBe(200);
    for (const id of ids) expect(id).toMatch(/^drctl-health-[0-9a-f]{16}$/);
  });

  it.each([
    ['registry.k8s.io/etcd:3.5.35-0', '3.5.35'],
    ['registry.drctl.lab:5000/etcd:3.5.35-0', '3.5.35'],
    ['gcr.io/etcd-development/etcd:v3.6.4', '3.6.4'],
    ['registry.k8s.io/etcd:3.5.35-0@sha256:abc', '3.5.35'],
    ['registry.drctl.lab:5000/etcd', undefined],
    ['registry.k8s.io/etcd@sha256:abc', undefined],
    ['etcd:latest', undefined],
  ])('version of %s', (image, version) => expect(versionOfImage(image)).toBe(version));

  it('the image of the container named etcd in a static pod manifest', () => {
    const manifest = [
      'apiVersion: v1',
      'kind: Pod',
      'spec:',
      '  initContainers: [{ name: etcd, image: wrong/init:1 }]',
      '  containers:',
      '    - name: sidecar',
      '      image: other/thing:1.0',
      '    - name: etcd',
      '      # a comment',
      '      image: "registry.drctl.lab/etcd:3.5.35-0"',
      '      command: [etcd]',
    ].join('\n');
    expect(etcdImageOf(manifest)).toBe('registry.drctl.lab/etcd:3.5.35-0');
    expect(etcdImageOf('spec: { containers: [] }')).toBeUndefined();
  });
});

describe('image mode on a node (a fake ctr that runs the tool without a shell)', () => {
  const root = join(tmp, 'image-node');
  const node = nodeConfig(root, { tools: { from: 'image' } });
  const bin = join(root, 'bin');
  const log = join(root, 'ctr.log');
  mkdirSync(bin, { recursive: true });
  mkdirSync(join(root, 'pki/etcd'), { recursive: true });
  mkdirSync(join(root, 'manifests-parked'), { recursive: true });
  mkdirSync(join(root, 'manifests'), { recursive: true });
  // Records its argv, checks every mount's source exists, and answers `endpoint status` as a member
  // of version $FAKE_RUNNING would.
  writeFileSync(
    join(bin, 'ctr'),
    [
      '#!/bin/bash',
      `printf '%q ' "$@" >> ${log}; echo >> ${log}`,
      'while [ $# -gt 0 ]; do case "$1" in',
      '  --address|-n|--env) shift 2 ;; run|--rm|--net-host) shift ;;',
      '  --mount) src=${2#*src=}; src=${src%%,*}; [ -d "$src" ] || { echo "no such dir $src" >&2; exit 9; }; shift 2 ;;',
      '  *) break ;; esac; done',
      'image=$1 id=$2 tool=$3; shift 3',
      'case "$tool $*" in',
      '  "/usr/local/bin/etcdctl "*"endpoint status"*) echo "[{\\"Endpoint\\":\\"x\\",\\"Status\\":{\\"header\\":{\\"member_id\\":1,\\"revision\\":5,\\"raft_term\\":2},\\"version\\":\\"$FAKE_RUNNING\\",\\"dbSize\\":1,\\"leader\\":1}}]" ;;',
      '  *) echo "fake ctr: $tool $*" >&2; exit 1 ;;',
      'esac',
    ].join('\n'),
  );
  chmodSync(join(bin, 'ctr'), 0o755);
  const manifest = (image: string) =>
    `apiVersion: v1\nkind: Pod\nspec:\n  containers:\n    - name: etcd\n      image: ${image}\n`;
  const shell = (running = '') =>
    localShell({ env: { PATH: `${bin}:${process.env.PATH}`, FAKE_RUNNING: running }, label: 'site-b/cp1' });

  it('reads the image from the parked manifest while etcd is stopped, and the version from its tag', async () => {
    writeFileSync(join(root, 'manifests-parked/etcd.yaml'), manifest('registry.drctl.lab/etcd:3.5.35-0'));
    const t = await new EtcdSnapshotTools(shell(), node).restoreTool();
    expect(t).toMatchObject({ tool: 'etcdutl', etcdVersion: '3.5.35', supportsBumpRevision: true });
    expect(t.tools).toEqual({ ...IMAGE });
    expect(t.source).toContain('manifests-parked/etcd.yaml');
  });

  it('cross-checks the tag with the running member, and every etcdctl runs in the image with the PKI dir read-only', async () => {
    rmSync(join(root, 'manifests-parked/etcd.yaml'));
    writeFileSync(join(root, 'manifests/etcd.yaml'), manifest('registry.drctl.lab/etcd:3.5.35-0'));
    writeFileSync(log, '');
    expect((await new EtcdSnapshotTools(shell('3.5.35'), node).restoreTool()).etcdVersion).toBe('3.5.35');
    const st = await new EtcdGateway(shell('3.5.35'), node).status();
    expect(st.version).toBe('3.5.35');
    const calls = readFileSync(log, 'utf8').trim().split('\n');
    expect(calls).toHaveLength(2);
    for (const c of calls) {
      expect(c).toContain(`--mount type=bind\\,src=${root}/pki/etcd\\,dst=${root}/pki/etcd\\,options=rbind:ro`);
      expect(c).toMatch(/registry\.drctl\.lab\/etcd:3\.5\.35-0 drctl-status-[0-9a-f]{16} \/usr\/local\/bin\/etcdctl /);
    }
    expect(calls[0]!.match(/drctl-status-[0-9a-f]+/)![0]).not.toBe(calls[1]!.match(/drctl-status-[0-9a-f]+/)![0]);

    const mismatch = await new EtcdSnapshotTools(shell('3.5.21'), node).restoreTool().catch((e: unknown) => e);
    expect(mismatch).toMatchObject({ type: FailureType.PreflightFailed });
    expect((mismatch as Error).message).toMatch(/is etcd 3\.5\.35, but the running member reports 3\.5\.21/);
  });

  it('no manifest at all: a one-line preflight failure naming both places', async () => {
    rmSync(join(root, 'manifests/etcd.yaml'));
    const err = await new EtcdTools(shell(), node).resolve().catch((e: unknown) => e);
    expect(err).toMatchObject({ type: FailureType.PreflightFailed });
    expect((err as Error).message).toContain(`no etcd static pod manifest at ${root}/manifests/etcd.yaml or`);
  });

  it('the plan builds the restore command in the image, mounting the staged dir and the scratch dir', () => {
    const pf: NodePreflight = {
      node: 'cp1',
      reachable: true,
      tool: 'etcdutl',
      supportsBumpRevision: true,
      tools: IMAGE,
    };
    const plan = planRestore({
      shape: {
        cluster: 'c',
        nodes: [
          {
            name: 'cp1',
            memberName: 'cp1',
            peerUrl: 'https://10.0.0.1:2380',
            clientUrl: 'https://10.0.0.1:2379',
            dataDir: '/var/lib/etcd',
            apiserver: true,
          },
        ],
      },
      snapshot: SNAPSHOT,
      runId: '0190aaaa-bbbb-7ccc-8ddd-eeeeffff0001',
      preflight: [{ ...pf, dataDirMountPoint: true }],
    });
    const n = plan.nodes[0]!;
    expect(n.layout).toBe('contents');
    expect(n.restoreContainer).toMatch(/^drctl-restore-[0-9a-f]{12}$/);
    expect(n.restoreCommand).toMatch(
      /^ctr --address \/run\/containerd\/containerd.sock -n k8s.io run --rm --net-host /,
    );
    expect(n.restoreCommand).toContain(`--mount type=bind,src=${n.workDir},dst=${n.workDir},options=rbind:ro`);
    expect(n.restoreCommand).toContain('--mount type=bind,src=/var/lib/etcd,dst=/var/lib/etcd,options=rbind:rw');
    expect(n.restoreCommand).toContain(
      `${n.restoreContainer} /usr/local/bin/etcdutl snapshot restore ${n.stagedSnapshot} `,
    );
    expect(n.restoreCommand).toContain(`--data-dir=${n.scratchDir}`);
    expect(n.scratchDir).toMatch(/^\/var\/lib\/etcd\/\.drctl-restored-/);
    expect(n.asideDir).toMatch(/^\/var\/lib\/etcd\/\.drctl-aside-/);
  });
});

describe('sudo', () => {
  const nasty = `echo "it's $HOME" 'quoted' \`backtick\` $(printf dollar) \\ back; printf '%s\\n' "a  b" ; echo ';|&<>*?!'`;

  it('wraps the command once, single-quoted, for bash as root', () => {
    expect(asRoot('id -u', false)).toBe('id -u');
    expect(asRoot('id -u', true)).toBe("sudo -n -- bash -c 'id -u'");
    expect(asRoot("echo 'x'", true)).toBe(`sudo -n -- bash -c 'echo '\\''x'\\'''`);
  });

  it('nasty input reaches bash exactly as written (run for real through sudo)', async () => {
    // Needs root and Debian's sudo (scripts/test-unit.sh and lab/install.sh install it).
    expect(spawnSync('sudo', ['-n', 'true']).status, 'sudo -n true as root').toBe(0);
    const direct = spawnSync('bash', ['-c', nasty], { encoding: 'utf8', env: { ...process.env, HOME: '/root' } });
    const viaSudo = await localShell({ sudo: true }).exec(nasty);
    expect(viaSudo.code).toBe(0);
    expect(viaSudo.stdout).toBe(direct.stdout);
    expect(viaSudo.stdout).toContain("it's /root");
    const ids = await localShell({ sudo: true }).exec('id -u; echo "$SUDO_USER"');
    expect(ids.stdout.split('\n')[0]).toBe('0');
  });

  const fake = (r: ExecResult, sudo: boolean, user = 'drctl'): RemoteShell => ({
    target: {
      label: 'site-b/cp2',
      host: 'h',
      port: 22,
      user,
      privateKeyPath: '',
      hostKeyFingerprint: '',
      connectTimeout: 1,
      sudo,
    },
    exec: () => Promise.resolve(r),
    readStream: () => Promise.reject(new Error('no')),
    writeStream: () => Promise.reject(new Error('no')),
    close: () => undefined,
  });

  it('checkRoot: refused sudo is a one-line MissingPrivilege naming node, user and what is missing', async () => {
    const err = await checkRoot(fake({ code: 1, stdout: '', stderr: 'sudo: a password is required\n' }, true)).catch(
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ type: FailureType.MissingPrivilege, nonRetryable: true });
    expect((err as Error).message).toBe(
      'site-b/cp2: user drctl may not run commands as root without a password (sudo -n: a password is required); drctl needs NOPASSWD sudo for bash (README: "Root on the nodes")',
    );
    const notRoot = await checkRoot(fake({ code: 0, stdout: '1000\n', stderr: '' }, false)).catch((e: unknown) => e);
    expect((notRoot as Error).message).toMatch(
      /^site-b\/cp2: user drctl is not root \(uid 1000\) and ssh.sudo is false/,
    );
    const noSudo = await checkRoot(
      fake({ code: 127, stdout: '', stderr: 'bash: sudo: command not found' }, true),
    ).catch((e: unknown) => e);
    expect((noSudo as Error).message).toMatch(/sudo is not installed/);
    await expect(checkRoot(fake({ code: 0, stdout: '0\n', stderr: '' }, true))).resolves.toBeUndefined();
    await expect(checkRoot(fake({ code: 0, stdout: '0\n', stderr: '' }, false, 'root'))).resolves.toBeUndefined();
  });

  it('checkRoot changes nothing: it runs one `id -u`', async () => {
    const s = localShell();
    await checkRoot(s);
    expect(s.commands).toEqual(['id -u']);
  });
});

// ---- the restore's data-dir steps, run for real ----

const RUN_ID = '0190aaaa-bbbb-7ccc-8ddd-eeeeffff0001';

/** A fake etcdutl: `snapshot restore` writes a member dir holding the snapshot's contents. */
function fakeEtcdutl(dir: string): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, 'etcdutl');
  writeFileSync(
    path,
    [
      '#!/bin/bash',
      'snap=$3; for a; do case $a in --data-dir=*) d=${a#--data-dir=} ;; esac; done',
      '[ ! -e "$d" ] || { echo "data dir $d exists" >&2; exit 1; }',
      'mkdir -p "$d/member/snap" "$d/member/wal" && cp "$snap" "$d/member/snap/db"',
    ].join('\n'),
  );
  chmodSync(path, 0o755);
  return path;
}

function planFor(node: NodeConfig, pf: Partial<NodePreflight>): NodePlan {
  return planRestore({
    shape: {
      cluster: 'c',
      nodes: [
        {
          name: 'cp1',
          memberName: 'cp1',
          peerUrl: node.etcd.peerUrl,
          clientUrl: node.etcd.clientUrl,
          dataDir: node.etcd.dataDir,
          apiserver: true,
        },
      ],
    },
    snapshot: SNAPSHOT,
    runId: RUN_ID,
    preflight: [{ node: 'cp1', reachable: true, tool: 'etcdutl', supportsBumpRevision: true, ...pf }],
  }).nodes[0]!;
}

const ls = (dir: string) => readdirSync(dir).sort();

describe('move aside, restore, put back: a plain data dir (rename)', () => {
  const root = join(tmp, 'rename');
  const node = nodeConfig(root);
  const dataDir = node.etcd.dataDir;

  it('renames the dir, restores into a scratch dir, puts the original back; every step idempotent', async () => {
    mkdirSync(join(dataDir, 'member/snap'), { recursive: true });
    writeFileSync(join(dataDir, 'member/snap/db'), 'original');
    const etcdutl = fakeEtcdutl(join(root, 'bin'));
    const shell = localShell();
    const rn = new RestoreNode(shell, node);
    const disk = await rn.diskSpace();
    expect(disk).toMatchObject({ dataDirExists: true, mountPoint: false });
    const plan = planFor(node, { tools: { from: 'host', etcdutl } });
    expect(plan.layout).toBeUndefined();
    expect(plan.restoreCommand).toMatch(new RegExp(`^${etcdutl} snapshot restore `));
    mkdirSync(plan.workDir, { recursive: true });
    writeFileSync(plan.stagedSnapshot, 'restored');

    expect(await rn.moveDataDirAside(plan)).toEqual({ outcome: 'moved' });
    expect(await rn.moveDataDirAside(plan)).toEqual({ outcome: 'already-moved' });
    expect(readFileSync(join(plan.asideDir, 'member/snap/db'), 'utf8')).toBe('original');
    expect(await rn.restoreMember(plan)).toEqual({ outcome: 'restored' });
    expect(await rn.restoreMember(plan)).toEqual({ outcome: 'already-restored' });
    expect(readFileSync(join(dataDir, 'member/snap/db'), 'utf8')).toBe('restored');
    expect(await rn.putOriginalBack(plan)).toEqual({ outcome: 'put-back' });
    expect(await rn.putOriginalBack(plan)).toEqual({ outcome: 'nothing-to-undo' });
    expect(readFileSync(join(dataDir, 'member/snap/db'), 'utf8')).toBe('original');
    expect((await rn.journal(plan)).map((l) => l.split(' ')[1])).toEqual(['moved-aside', 'restored', 'put-back']);
  });
});

describe('image mode: a restore try that runc could not start is tried again under a fresh container id', () => {
  const root = join(tmp, 'image-retry');
  const node = nodeConfig(root);
  const dataDir = node.etcd.dataDir;
  const bin = join(root, 'bin');
  const calls = join(root, 'ctr.log');

  it('ends leftover containers of the run, fails the first try, restores on the second, journals both', async () => {
    mkdirSync(join(dataDir, 'member/snap'), { recursive: true });
    writeFileSync(join(dataDir, 'member/snap/db'), 'original');
    mkdirSync(bin, { recursive: true });
    const plan = planFor(node, { tools: IMAGE });
    // A fake ctr: lists a leftover of this run (and one of another run), fails the first `run` the
    // way runc did on the lab, then restores like etcdutl.
    writeFileSync(join(root, 'containers'), `${plan.restoreContainer}-2\ndrctl-restore-otherrun0001\n`);
    writeFileSync(join(root, 'fail-once'), '');
    writeFileSync(
      join(bin, 'ctr'),
      [
        '#!/bin/bash',
        `printf '%s\\n' "$*" >> ${calls}`,
        'args=("$@"); set -- "${args[@]:4}"',
        `case "$1 $2" in "containers ls") cat ${root}/containers; exit 0 ;; "tasks "*|"containers delete") exit 0 ;; esac`,
        `if [ -e ${root}/fail-once ]; then rm ${root}/fail-once; echo "runc create failed: write /sys/fs/cgroup/cpuacct/k8s.io/x/cgroup.procs: no such device" >&2; exit 1; fi`,
        'for a; do case $a in --data-dir=*) d=${a#--data-dir=} ;; esac; done',
        'mkdir -p "$d/member/snap" && echo restored > "$d/member/snap/db"',
      ].join('\n'),
    );
    chmodSync(join(bin, 'ctr'), 0o755);
    const rn = new RestoreNode(localShell({ env: { PATH: `${bin}:${process.env.PATH}` } }), node);
    mkdirSync(plan.workDir, { recursive: true });
    writeFileSync(plan.stagedSnapshot, 'snapshot');

    expect(await rn.moveDataDirAside(plan)).toEqual({ outcome: 'moved' });
    expect(await rn.restoreMember(plan)).toEqual({ outcome: 'restored' });
    expect(readFileSync(join(dataDir, 'member/snap/db'), 'utf8')).toBe('restored\n');
    const ran = readFileSync(calls, 'utf8')
      .split('\n')
      .filter((l) => l.includes(' run --rm '))
      .map((l) => l.match(/ (drctl-restore-[0-9a-f]+-\d) /)?.[1]);
    expect(ran).toEqual([`${plan.restoreContainer}-1`, `${plan.restoreContainer}-2`]);
    const deleted = readFileSync(calls, 'utf8')
      .split('\n')
      .filter((l) => l.includes('containers delete'));
    expect(deleted.length).toBeGreaterThan(0);
    expect(deleted.every((l) => l.endsWith(`containers delete ${plan.restoreContainer}-2`))).toBe(true);
    const journal = await rn.journal(plan);
    expect(journal.some((l) => /restore try 1 of 3 failed: runc create failed: .*no such device/.test(l))).toBe(true);
    expect(journal.some((l) => l.includes(`removed the leftover restore container ${plan.restoreContainer}-2`))).toBe(
      true,
    );
  });
});

describe('a step that changes the node runs detached, under the node lock: a retry waits for it, never beside it', () => {
  const root = join(tmp, 'detached');
  const node = nodeConfig(root);
  const dataDir = node.etcd.dataDir;

  it("the first attempt's channel dies while the step waits for the node; the retry adopts the job, which runs once", async () => {
    mkdirSync(join(dataDir, 'member/snap'), { recursive: true });
    writeFileSync(join(dataDir, 'member/snap/db'), 'original');
    const etcdutl = fakeEtcdutl(join(root, 'bin'));
    const plan = planFor(node, { tools: { from: 'host', etcdutl } });
    mkdirSync(plan.workDir, { recursive: true });
    writeFileSync(plan.stagedSnapshot, 'restored');
    const base = localShell();
    expect(await new RestoreNode(base, node).moveDataDirAside(plan)).toEqual({ outcome: 'moved' });
    // The first attempt's SSH channel is cut after 1 s (a killed worker); the retry's is not.
    let calls = 0;
    const shell: RemoteShell = {
      ...base,
      exec: (cmd, o) => {
        const running = base.exec(cmd, o);
        if (calls++ > 0) return running;
        // The node goes on running what it was sent; the worker hears nothing more.
        return sleep(1000).then(() => Promise.reject(failure(FailureType.SshUnreachable, 'test: the channel closed')));
      },
    };
    const rn = new RestoreNode(shell, node, () => 'activity-7');
    // Another drctl step holds the node for 4 s (as a slow one would): the restore waits for it.
    const holder = spawn('flock', [nodeLockFor(plan.dataDir), 'sleep', '4'], { stdio: 'ignore' });
    const held = new Promise((r) => holder.on('exit', r));
    await sleep(300);
    await expect(rn.restoreMember(plan)).rejects.toMatchObject({ type: FailureType.SshUnreachable });
    expect(await rn.restoreMember(plan)).toEqual({ outcome: 'restored' });
    await held;
    expect(readFileSync(join(dataDir, 'member/snap/db'), 'utf8')).toBe('restored');
    // A retry after the result was lost gets the job's result; nothing runs again.
    expect(await rn.restoreMember(plan)).toEqual({ outcome: 'restored' });
    const journal = (await rn.journal(plan)).map((l) => l.split(' ').slice(1).join(' '));
    expect(journal).toEqual([
      `moved-aside ${dataDir} -> ${plan.asideDir}`,
      `adopted restoring ${dataDir}: its attempt still runs on the node`,
      `restored ${dataDir} from ${plan.stagedSnapshot}`,
      `answered restoring ${dataDir} from its finished attempt`,
    ]);
    // The node lock names the last step that held it: this run's work dir and the step.
    expect(readFileSync(nodeLockFor(plan.dataDir), 'utf8').trim()).toBe(
      `${plan.workDir} restoring-${dataDir.replace(/[^A-Za-z0-9]+/g, '-').replace(/^-/, '')}-activity-7`,
    );
  });

  it('without an attempt key every call is its own job: a second restore finds the first done', async () => {
    const plan = planFor(node, { tools: { from: 'host', etcdutl: join(root, 'bin/etcdutl') } });
    const rn = new RestoreNode(localShell(), node);
    expect(await rn.restoreMember(plan)).toEqual({ outcome: 'already-restored' });
    expect(
      readdirSync(join(plan.workDir, 'steps'))
        .filter((d) => d.startsWith('restoring-'))
        .sort(),
    ).toEqual([expect.stringMatching(/-activity-7$/), expect.stringMatching(/-once-\w+$/)]);
  });
});

describe('move aside, restore, put back: a data dir that is a mount point (ext4 on loop)', () => {
  // Needs root, mkfs.ext4 and a free loop device (as the lab's etcd disks do): a failure, not a skip.
  beforeAll(() => {
    const r = spawnSync('bash', ['-c', 'id -u; command -v mkfs.ext4 && command -v losetup && losetup -f'], {
      encoding: 'utf8',
    });
    expect(`${r.status} ${r.stdout.split('\n')[0]}`, `root, mkfs.ext4 and a loop device: ${r.stderr}`).toBe('0 0');
  });
  const root = join(tmp, 'mount');
  const node = nodeConfig(root);
  const dataDir = node.etcd.dataDir;
  const image = join(tmp, 'etcd-disk.img');
  let mounted = false;

  afterAll(() => {
    if (mounted) spawnSync('umount', [dataDir]);
  });

  it('moves the contents, never the mount point; resumes interrupted steps; puts everything back', async () => {
    mkdirSync(dataDir, { recursive: true });
    execFileSync('truncate', ['-s', '32M', image]);
    execFileSync('mkfs.ext4', ['-q', '-F', image]);
    execFileSync('mount', ['-o', 'loop', image, dataDir]);
    mounted = true;
    mkdirSync(join(dataDir, 'member/snap'), { recursive: true });
    mkdirSync(join(dataDir, 'member/wal'), { recursive: true });
    writeFileSync(join(dataDir, 'member/snap/db'), 'original');
    writeFileSync(join(dataDir, '.hidden-extra'), 'x');
    const dev = () => execFileSync('stat', ['-c', '%d', dataDir], { encoding: 'utf8' }).trim();
    const mountDev = dev();
    const etcdutl = fakeEtcdutl(join(root, 'bin'));
    const rn = new RestoreNode(localShell(), node);

    const disk = await rn.diskSpace();
    expect(disk.mountPoint).toBe(true);
    // The free space is the data dir's own filesystem's (32M), not its parent's.
    expect(disk.freeBytes).toBeLessThan(32 * 1024 * 1024);

    // A plan made as if it were a plain dir refuses instead of failing on EBUSY.
    const wrong = planFor(node, { tools: { from: 'host', etcdutl } });
    mkdirSync(wrong.workDir, { recursive: true });
    expect(await rn.moveDataDirAside(wrong)).toMatchObject({ outcome: 'layout-changed' });

    const plan = planFor(node, { tools: { from: 'host', etcdutl }, dataDirMountPoint: true });
    expect(plan.layout).toBe('contents');
    writeFileSync(plan.stagedSnapshot, 'restored');
    const aside = plan.asideDir;

    // A worker killed half-way through the move: some entries aside, no marker. The retry resumes.
    mkdirSync(aside, { mode: 0o700 });
    execFileSync('mv', [join(dataDir, '.hidden-extra'), aside]);
    expect(await rn.moveDataDirAside(plan)).toEqual({ outcome: 'moved' });
    expect(await rn.moveDataDirAside(plan)).toEqual({ outcome: 'already-moved' });
    expect(ls(dataDir)).toEqual([aside.split('/').pop(), 'lost+found'].sort());
    expect(ls(aside)).toEqual(['.hidden-extra', 'member']);
    expect(dev()).toBe(mountDev); // still the mount point

    expect(await rn.restoreMember(plan)).toEqual({ outcome: 'restored' });
    expect(await rn.restoreMember(plan)).toEqual({ outcome: 'already-restored' });
    expect(readFileSync(join(dataDir, 'member/snap/db'), 'utf8')).toBe('restored');
    expect(existsSync(plan.scratchDir!)).toBe(false);
    expect(ls(dataDir)).toEqual([aside.split('/').pop(), 'lost+found', 'member'].sort());

    // A put-back killed after the restored entries were set apart and half the originals moved back.
    const discard = join(dataDir, `.drctl-discard-${aside.split('.drctl-aside-')[1]}`);
    mkdirSync(discard);
    execFileSync('mv', [join(dataDir, 'member'), discard]);
    writeFileSync(join(plan.workDir, 'put-back.started'), '');
    execFileSync('mv', [join(aside, 'member'), dataDir]);
    expect(await rn.putOriginalBack(plan)).toEqual({ outcome: 'put-back' });
    expect(await rn.putOriginalBack(plan)).toEqual({ outcome: 'nothing-to-undo' });
    expect(ls(dataDir)).toEqual(['.hidden-extra', 'lost+found', 'member']);
    expect(readFileSync(join(dataDir, 'member/snap/db'), 'utf8')).toBe('original');
    expect(dev()).toBe(mountDev);

    // And a put-back from scratch after a full restore: the restored member is discarded.
    rmSync(join(plan.workDir, 'journal'));
    expect(await rn.moveDataDirAside(plan)).toEqual({ outcome: 'moved' });
    expect(await rn.restoreMember(plan)).toEqual({ outcome: 'restored' });
    expect(await rn.putOriginalBack(plan)).toEqual({ outcome: 'put-back' });
    expect(ls(dataDir)).toEqual(['.hidden-extra', 'lost+found', 'member']);
    expect(readFileSync(join(dataDir, 'member/snap/db'), 'utf8')).toBe('original');
    expect((await rn.journal(plan)).map((l) => l.split(' ')[1])).toEqual(['moved-aside', 'restored', 'put-back']);
  });
});

describe('pruning the data dirs earlier restores moved aside', () => {
  const root = join(tmp, 'prune');
  const node = nodeConfig(root);
  const dataDir = node.etcd.dataDir;
  const parent = join(root, 'var/lib');
  const olderRun = (tag: string) => `${dataDir}.drctl-${tag}`;

  /** Every kind of neighbour a prune must tell apart, fresh. */
  function lay(plan: NodePlan) {
    rmSync(root, { recursive: true, force: true });
    mkdirSync(join(dataDir, 'member/snap'), { recursive: true });
    writeFileSync(join(dataDir, 'member/snap/db'), 'live');
    for (const d of [olderRun('0123456789ab'), olderRun('abcdefabcdef'), join(dataDir, '.drctl-aside-00000000beef')])
      mkdirSync(join(d, 'member'), { recursive: true });
    mkdirSync(plan.asideDir, { recursive: true }); // this run's own
    mkdirSync(olderRun('not-a-run-tag'), { recursive: true }); // not drctl's name
    mkdirSync(olderRun('ABCDEFABCDEF'), { recursive: true }); // tags are lower-case hex
    mkdirSync(join(parent, 'etcd-other.drctl-0123456789ab'), { recursive: true }); // another dir's
    mkdirSync(join(root, 'target'), { recursive: true });
    execFileSync('ln', ['-s', join(root, 'target'), olderRun('feedfeedfeed')]); // a symlink
    writeFileSync(olderRun('cafecafecafe'), 'a file'); // not a dir
    mkdirSync(join(dataDir, '.drctl-discard-0123456789ab'), { recursive: true }); // not an aside dir
  }

  it('keeps everything younger than keepMovedAside; past it, removes only drctl-named aside dirs, never this run’s', async () => {
    const plan = planFor(node, {});
    lay(plan);
    const rn = new RestoreNode(localShell(), node);
    // Besides the node lock and the step's own record in the run's work dir, nothing changes.
    const own = ['.drctl.lock', plan.workDir.split('/').pop()!];
    const entries = () => [...ls(parent), ...ls(dataDir).map((e) => `etcd/${e}`)].filter((e) => !own.includes(e));
    const before = entries();

    expect(await rn.pruneMovedAside(plan, 3_600_000)).toEqual([]);
    expect(entries()).toEqual(before);

    // Everything is older than 0 s: the drctl-named aside dirs of other runs go, nothing else.
    const pruned = await rn.pruneMovedAside(plan, 0);
    expect(pruned.sort()).toEqual(
      [olderRun('0123456789ab'), olderRun('abcdefabcdef'), join(dataDir, '.drctl-aside-00000000beef')].sort(),
    );
    expect(ls(parent)).toEqual(
      [
        'etcd',
        plan.asideDir.split('/').pop()!,
        'etcd.drctl-not-a-run-tag',
        'etcd.drctl-ABCDEFABCDEF',
        'etcd-other.drctl-0123456789ab',
        'etcd.drctl-feedfeedfeed',
        'etcd.drctl-cafecafecafe',
        plan.workDir.split('/').pop()!,
        '.drctl.lock',
      ].sort(),
    );
    expect(ls(dataDir)).toEqual(['.drctl-discard-0123456789ab', 'member']);
    expect(readFileSync(join(dataDir, 'member/snap/db'), 'utf8')).toBe('live');
    expect(existsSync(join(root, 'target'))).toBe(true);
    const journal = await rn.journal(plan);
    expect(journal.map((l) => l.split(' ').slice(1, 3).join(' ')).sort()).toEqual(
      pruned.map((d) => `pruned ${d}`).sort(),
    );
    // Idempotent: nothing left to prune.
    expect(await rn.pruneMovedAside(plan, 0)).toEqual([]);
  });

  it('an aside dir is as old as its move: a rename sets its ctime, whatever its mtime says', async () => {
    const plan = planFor(node, {});
    lay(plan);
    const old = olderRun('0123456789ab');
    execFileSync('touch', ['-d', '2020-01-01', old]);
    const moved = olderRun('fedcbafedcba');
    execFileSync('mv', [old, moved]); // moved aside just now, with a 2020 mtime
    const rn = new RestoreNode(localShell(), node);
    const pruned = await rn.pruneMovedAside(plan, 3_600_000);
    expect(pruned).toEqual([]);
    expect(existsSync(moved)).toBe(true);
  });

  it('prunes nothing while the live data dir holds no member dir: an aside dir may be the only copy', async () => {
    const plan = planFor(node, {});
    lay(plan);
    rmSync(join(dataDir, 'member'), { recursive: true });
    const rn = new RestoreNode(localShell(), node);
    expect(await rn.pruneMovedAside(plan, 0)).toEqual([]);
    expect(existsSync(olderRun('0123456789ab'))).toBe(true);
    expect(existsSync(join(dataDir, '.drctl-aside-00000000beef'))).toBe(true);
  });
});
