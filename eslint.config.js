import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  // What git ignores (node_modules, dist, .bench, .cache) plus root-level dot-paths, where no
  // source lives (local scratch files), and the Go wrapper modules.
  { ignores: ['node_modules', 'dist', '.bench', '.cache', '.*', 'test/controlplane'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
      'no-console': ['error', { allow: ['error'] }],
    },
  },
  {
    files: ['src/cli/**', 'test/**', 'scripts/**'],
    rules: { 'no-console': 'off' },
  },
);
