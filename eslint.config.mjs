import js from '@eslint/js'
import tseslint from 'typescript-eslint'

export default tseslint.config(
  {ignores: ['dist/**', 'node_modules/**', '.tools/**', 'bench/**', 'bin/**']},
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', {argsIgnorePattern: '^_', varsIgnorePattern: '^_'}],
      'no-constant-condition': ['error', {checkLoops: false}],
    },
  },
  {
    // Library code returns data and throws typed errors; only commands print or choose exit codes.
    files: ['src/lib/**/*.ts'],
    rules: {
      'no-console': 'error',
      'no-restricted-properties': ['error', {object: 'process', property: 'exit', message: 'Throw a ZtError; the command layer picks the exit code.'}],
      'no-restricted-imports': ['error', {patterns: [{group: ['@oclif/*'], message: 'src/lib must not import oclif (except src/lib/cli).'}]}],
    },
  },
  {
    files: ['src/lib/cli/**/*.ts'],
    rules: {'no-restricted-imports': 'off'},
  },
)
