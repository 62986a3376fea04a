// One logger (pino) for the CLI, the worker and Temporal's runtime. JSON lines on stderr; set
// DRCTL_LOG_LEVEL=debug for more.
import { pino } from 'pino';

export const log = pino({ level: process.env.DRCTL_LOG_LEVEL ?? 'info', base: { app: 'drctl' } }, pino.destination(2));
