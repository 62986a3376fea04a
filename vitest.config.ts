import { defineConfig } from 'vitest/config';
import DrctlSequencer from './test/support/sequencer.ts';

// Two projects: `unit` (pure logic, config, replay, and the runbooks' control flow on Temporal's
// time-skipping test server with mocked activities) needs no lab; `lab` runs against real servers
// and its global setup starts the lab.
export default defineConfig({
  test: {
    reporters: ['default'],
    sequence: { sequencer: DrctlSequencer },
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          testTimeout: 60_000,
          hookTimeout: 120_000,
        },
      },
      {
        extends: true,
        test: {
          name: 'lab',
          include: ['test/*.test.ts'],
          globalSetup: ['test/global-setup.ts'],
          // Ends any runbook a test left open, so its leases do not refuse the tests after it.
          setupFiles: ['test/support/run-guard.ts'],
          // Integration tests share one lab; running files one at a time keeps etcd/ssh timing honest on 2 cores.
          fileParallelism: false,
          testTimeout: 120_000,
          hookTimeout: 300_000,
        },
      },
    ],
  },
});
