// Runbook: etcd snapshot (issue 3, part A). Filled in by the snapshot work.
export {};
