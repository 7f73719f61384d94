// ESLint (flat config): typescript-eslint's recommended rules over lib/, test/, bench/ and
// scripts/. Formatting is Prettier's job (npm run format:check), so no style rules here.
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['build/', 'build-*/', 'dist/', 'node_modules/', 'prebuilds/', 'bench/results/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    // The compiler already checks names in TypeScript.
    files: ['**/*.ts'],
    rules: { 'no-undef': 'off' },
  },
  {
    // scripts/*.js are CommonJS programs run by node.
    files: ['**/*.js'],
    languageOptions: { sourceType: 'commonjs', globals: globals.node },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    rules: {
      // `_name` marks a parameter an interface requires but this implementation ignores.
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      // A variable a closure reads before its one assignment cannot be const.
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
      // Patterns for column-aligned monitor output read best with the spaces written out.
      'no-regex-spaces': 'off',
    },
  },
);
