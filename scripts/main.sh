#!/usr/bin/env bash
# The main job on the embedded lab: set-up, `drctl lab up` (Temporal + UI, MinIO, two sites of
# three control-plane nodes with sshd, etcd and kube-apiserver, and a drctl worker), then the
# cluster-health runbook on both sites through Temporal. The lab stays up: `drctl lab down` stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
node bin/drctl.js lab up
export DRCTL_CONFIG="$PWD/.lab/drctl.yaml"
node bin/drctl.js cluster check
cat <<TXT

Next:
  export DRCTL_CONFIG=$DRCTL_CONFIG
  node bin/drctl.js lab status                # every component, address, pid, health
  eval "\$(node bin/drctl.js lab env --site site-a)"; etcdctl endpoint status -w table
  node bin/drctl.js lab down                  # stop everything the lab started
TXT
