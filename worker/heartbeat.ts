// Every activity heartbeats while it runs, whether or not its own code does: a worker that dies
// mid-step is then noticed within the heartbeat timeout (seconds) instead of the step's whole
// start-to-close timeout (minutes), and its step is retried on another worker. Activities that
// report progress heartbeat with details as before; nothing reads heartbeat details back.
import type { ActivityInterceptorsFactory } from '@temporalio/worker';

const EVERY_MS = 5_000;

export const heartbeatWhileRunning: ActivityInterceptorsFactory = (ctx) => ({
  inbound: {
    async execute(input, next) {
      const timer = setInterval(() => ctx.heartbeat(), EVERY_MS);
      try {
        return await next(input);
      } finally {
        clearInterval(timer);
      }
    },
  },
});
