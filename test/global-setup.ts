// Integration tests run against the real lab. If nothing of it runs, start it here (and stop it
// after); if it runs already (e.g. `drctl lab up` by hand, or a test left a site down on purpose),
// bring back what is missing and leave it running: another run may be using it.
// Never skip: a lab that cannot start fails the run.
import { down, status, up } from '../lab/lab.ts';

export default async function setup() {
  const before = await status();
  let started = false;
  if (!before.every((c) => c.healthy)) {
    const owned = !before.some((c) => c.healthy);
    process.stderr.write(
      `[global-setup] ${owned ? 'starting the lab' : 'bringing back what is down in the running lab'} ...\n`,
    );
    const r = await up({ log: (m) => process.stderr.write(`[global-setup] ${m}\n`) });
    process.stderr.write(`[global-setup] lab up in ${r.seconds.toFixed(1)} s\n`);
    started = owned;
  }
  return async () => {
    if (started && !process.env.DRCTL_KEEP_LAB) await down();
  };
}
