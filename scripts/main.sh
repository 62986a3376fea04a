#!/usr/bin/env bash
# The main job on the embedded lab: set-up, `drctl lab up` (Temporal + UI, MinIO, two sites of
# three control-plane nodes with sshd, etcd and kube-apiserver, and a drctl worker), then through
# Temporal: the cluster-health runbook on both sites, a verified off-site etcd snapshot of each,
# a quorum-restore dry run, and a DR drill end to end: it stops at the go/no-go gate until an
# approver says go from the Web UI or the CLI (`--unattended`: this script approves with bob's key and signs
# off as carol), restores into site-b, switches only the drill record, measures RTO/RPO, cleans up
# and prints where its evidence report is. The lab stays up; `drctl lab down` stops it.
#   npm run main [-- --unattended]
set -euo pipefail
cd "$(dirname "$0")/.."
unattended=false
for a in "$@"; do
  case "$a" in
    --unattended) unattended=true ;;
    *) echo "main: unknown option '$a' (known: --unattended)" >&2; exit 2 ;;
  esac
done
source scripts/node-env.sh # Node.js 24 first on PATH: the set-up, drctl, and the lab's worker
bash scripts/setup.sh
# From another shell, the commands printed below run on the same Node.js 24 after this line:
nodehint=""
[[ -z "${DRCTL_NODE_BIN:-}" ]] || nodehint="  export PATH=$DRCTL_NODE_BIN:\$PATH   # the set-up's Node.js 24
"
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

echo; echo "== DR drill 'quarterly': restore into site-b, switch drill.app.example.com (not production), measure, clean up =="
# Every request and decision is signed with the person's own SSH key (the lab made one for each:
# .lab/people/<name>/id_ed25519); the worker verifies it against the config's approvals.signers.
key() { echo ".lab/people/$1/id_ed25519"; }
started=$(drctl drill run --plan quarterly --key "$(key dave)" --reason "main job" --json)
wf=$(node -e 'process.stdout.write(JSON.parse(process.argv[1]).workflowId)' "$started")
webui="http://127.0.0.1:8233/namespaces/default/workflows/$wf"
if $unattended; then
  echo "unattended: approving as bob, with bob's key"
  drctl approve "$wf" --key "$(key bob)" --reason "unattended main job"
else
  cat <<TXT
The drill $wf waits for go/no-go by an approver (alice, bob or carol; not the requester):
${nodehint}  CLI:    DRCTL_CONFIG=$DRCTL_CONFIG node bin/drctl.js approve $wf --key .lab/people/bob/id_ed25519 --reason go
  Web UI: DRCTL_CONFIG=$DRCTL_CONFIG node bin/drctl.js approve $wf --key .lab/people/bob/id_ed25519 --sign-only
          prints a signed decision; paste it at $webui → More Actions → Send a Signal → approve
(unattended: npm run main -- --unattended)
TXT
fi
verdict=0
drctl status "$wf" --wait || verdict=$?
# A failed drill's report is evidence too: it is signed (unattended) and written all the same.
if $unattended; then drctl drill sign "$wf" --key "$(key carol)" --comment "unattended main job"; fi
drctl drill report "$wf" --out .lab/drill-report.html
echo "evidence report: .lab/drill-report.html (self-contained HTML; JSON: drctl drill report $wf --json), stored off-site as shown above"

cat <<TXT

Try a real restore (site-a has quorum, hence --force; it waits for go/no-go):
${nodehint}  export DRCTL_CONFIG=$DRCTL_CONFIG
  node bin/drctl.js etcd restore --cluster site-a --force --key .lab/people/alice/id_ed25519
  node bin/drctl.js status etcd-restore-site-a          # evidence, plan, per-node progress
  node bin/drctl.js approve etcd-restore-site-a --key .lab/people/bob/id_ed25519 --reason "drill"
    (or add --sign-only and paste its JSON in the Temporal UI, http://127.0.0.1:8233: the workflow → Signal → approve)
  node bin/drctl.js status etcd-restore-site-a --wait
Drills:
  node bin/drctl.js drill schedule --plan quarterly        # a Temporal Schedule, quarterly (overlap SKIP)
  node bin/drctl.js drill schedule list; node bin/drctl.js drill history   # schedules; past drills
  node bin/drctl.js drill sign $wf --key .lab/people/carol/id_ed25519 --comment ok  # sign the report off
Other:
  node bin/drctl.js lab status                           # every component, address, pid, health
  eval "\$(node bin/drctl.js lab env --site site-a)"; etcdctl endpoint status -w table
  node bin/drctl.js lab down                             # stop everything the lab started
TXT
exit $verdict
