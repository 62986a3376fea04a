#!/usr/bin/env bash
# The main job on the embedded lab: set-up, `drctl lab up` (Temporal + UI, MinIO, two sites of
# three control-plane nodes with sshd, etcd and kube-apiserver, and a drctl worker), then through
# Temporal: the cluster-health runbook on both sites, a verified off-site etcd snapshot of each,
# and a quorum-restore dry run. The lab stays up; `drctl lab down` stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
node bin/drctl.js lab up
export DRCTL_CONFIG="$PWD/.lab/drctl.yaml"
drctl() { node bin/drctl.js "$@"; }

echo; echo "== cluster health (both sites) =="
drctl cluster check
for site in site-a site-b; do
  echo; echo "== etcd snapshot of $site: taken on a follower, verified, streamed off-site =="
  drctl snapshot now --cluster "$site" --wait
done
echo; echo "== snapshots of site-a against its RPO target =="
drctl snapshot list --cluster site-a
echo; echo "== quorum restore of site-a: dry run (the plan and exact per-node commands; nothing changes) =="
drctl etcd restore --cluster site-a --snapshot latest --dry-run

cat <<TXT

Try a real restore (site-a has quorum, hence --force; it waits for go/no-go):
  export DRCTL_CONFIG=$DRCTL_CONFIG
  node bin/drctl.js etcd restore --cluster site-a --force --as alice
  node bin/drctl.js status etcd-restore-site-a          # evidence, plan, per-node progress
  node bin/drctl.js approve etcd-restore-site-a --as bob --reason "drill"
    (or in the Temporal UI, http://127.0.0.1:8233: the workflow → Signal → approve, input {"by":"bob"})
  node bin/drctl.js status etcd-restore-site-a --wait
Other:
  node bin/drctl.js lab status                           # every component, address, pid, health
  eval "\$(node bin/drctl.js lab env --site site-a)"; etcdctl endpoint status -w table
  node bin/drctl.js lab down                             # stop everything the lab started
TXT
