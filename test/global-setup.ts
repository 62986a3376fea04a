// Integration tests run against the real lab. If it is not up, start it here (and stop it after);
// if it is up already (e.g. `drctl lab up` by hand, or scripts/test.sh), leave it running.
// Never skip: a lab that cannot start fails the run.
import { down, status, up } from '../lab/lab.ts';

export default async function setup() {
  const before = await status();
  let started = false;
  if (!before.every((c) => c.healthy)) {
    process.stderr.write('[global-setup] starting the lab ...\n');
    const r = await up({ log: (m) => process.stderr.write(`[global-setup] ${m}\n`) });
    process.stderr.write(`[global-setup] lab up in ${r.seconds.toFixed(1)} s\n`);
    started = true;
  }
  return async () => {
    if (started && !process.env.DRCTL_KEEP_LAB) await down();
  };
}
