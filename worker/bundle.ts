// Builds the workflow bundle the way the worker does: CI runs this so a workflow that imports a
// Node built-in (or anything non-deterministic the bundler rejects) fails the build.
import { bundleWorkflowCode } from '@temporalio/worker';
import { workflowsPath } from './worker.ts';

const { code } = await bundleWorkflowCode({
  workflowsPath,
  logger: { info() {}, warn: console.warn, error: console.error, debug() {}, trace() {}, log() {} },
});
console.log(`workflow bundle ok: ${(code.length / 1024).toFixed(0)} KiB`);
