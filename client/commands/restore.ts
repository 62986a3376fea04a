import type { Command } from 'commander';

export function registerRestoreCommands(_program: Command) {}
