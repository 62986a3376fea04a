#!/usr/bin/env node
// drctl's entry point: loads the TypeScript sources through tsx (no separate build step to drift).
import { register } from 'tsx/esm/api';

register();
await import('../client/cli.ts');
