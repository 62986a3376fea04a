// @ts-check
import tseslint from 'typescript-eslint';
import { importX } from 'eslint-plugin-import-x';
import { builtinModules } from 'node:module';
import prettier from 'eslint-config-prettier';

const nodeBuiltins = [...builtinModules, ...builtinModules.map((m) => `node:${m}`)];

export default tseslint.config(
  { ignores: ['node_modules/**', 'test/histories/**', 'coverage/**'] },
  ...tseslint.configs.recommended,
  prettier,
  {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    plugins: { 'import-x': importX },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      'import-x/no-cycle': 'error',
    },
  },
  {
    // import-x's resolver throws on 'vitest/node' ("node with invalid interface loaded as resolver");
    // the sequencer imports nothing of this project, so it can take part in no cycle.
    files: ['test/support/sequencer.ts'],
    rules: { 'import-x/no-cycle': 'off' },
  },
  {
    // Workflow code runs in Temporal's deterministic sandbox: no Node built-ins, no gateways.
    files: ['workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: nodeBuiltins.map((name) => ({ name, message: 'Node built-ins are not allowed in workflow code.' })),
          patterns: [
            {
              group: ['**/gateways/**', '**/activities/**'],
              allowTypeImports: true,
              message: 'Workflows reach the outside only through proxied activities (import type is fine).',
            },
          ],
        },
      ],
    },
  },
  {
    // Activities are given their gateways (gateways/index.ts); how the worker builds them, the lab
    // and the CLI are above them.
    files: ['activities/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/worker/**', '**/lab/**', '**/client/**'],
              message: 'Activities get what they reach through the Gateways interface (gateways/index.ts).',
            },
          ],
        },
      ],
    },
  },
  {
    // A gateway talks to one outside system; the runbooks, activities and whoever builds gateways
    // sit above it.
    files: ['gateways/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/activities/**', '**/workflows/**', '**/worker/**', '**/client/**', '**/lab/**'],
              message: 'Gateways depend on config/ and common/ only, never on the layers above them.',
            },
          ],
        },
      ],
    },
  },
);
