// The embedded lab: real servers on this machine, each host on its own address (the control-plane
// nodes and the bastion in network namespaces of their own, the rest on loopback). This file
// is its front door (what `drctl lab`, the tests' global setup and the fault tests call); each room
// of the lab is its own file:
//   topology.ts       hosts, addresses, ports, paths, the built servers' versions
//   layout.ts         what `lab up` writes first; pki.ts the certificates and kubeconfigs
//   nodes.ts          a control-plane node's disk before kubeadm: containerd, tools, CAs, sshd
//   kubeadm.ts        kubeadm init/join on each site's nodes; images.ts the images they run
//   controlplane.ts   kwok and Velero, static pods on each site's cp1
//   network.ts        the lab bridge and each host's network namespace
//   namespaces.ts     each node's namespaces; supervisor.ts its init (sshd, containerd, kubelet)
//   processes.ts      starting, recording (state.json) and stopping the lab's processes
//   services.ts       Temporal, MinIO, PowerDNS (pdns.ts), the sites' app endpoints (app-endpoint.ts)
//   objects.ts        the sites' Kubernetes objects; kube.ts, velero.ts and demo-app.ts beside it
//   health.ts         probes; status.ts and site-status.ts, `lab status`
//   site-loss.ts      losing a site on purpose; faults.ts sshd and Temporal faults
//   config.ts         the lab's drctl.yaml and `lab env`
//   up-down.ts        `lab up` and `lab down`
//   compose.ts        docker-compose.yml for real: nerdctl compose on the drctl host's own containerd
//   stretched.ts      the stretched cluster on demand, its cross-site link through Toxiproxy (link.ts)
// Nothing here is imported by drctl's workflows or activities.
export { env, labConfig } from './config.ts';
export { killSshd, restartTemporal, startSshd } from './faults.ts';
export type { Component } from './health.ts';
export { type SiteChange, siteDestroy, siteDown, siteUp } from './site-loss.ts';
export { status } from './status.ts';
export {
  setSiteLink,
  siteLinkState,
  SITE_LINK,
  startStretchedNode,
  stretchedDown,
  stretchedHealth,
  stretchedUp,
} from './stretched.ts';
export { down, up, type UpResult } from './up-down.ts';
