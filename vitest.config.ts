import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    exclude: ['dist/**', 'node_modules/**'],
    // Starts a throwaway PostgreSQL cluster (or uses INGOT_TEST_POSTGRES_URL) for the store tests.
    globalSetup: ['test/support/global-setup.ts'],
    // Loads the secret-leak capture into every worker and labels its output with the test
    // file (leak-scan.ts explains the check; global-setup.ts scans at the end).
    setupFiles: ['test/support/capture-setup.ts'],
    // Tests start real servers, databases and child processes: give them room, and keep
    // the 2-core CI machine from being oversubscribed.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    maxWorkers: 2,
  },
});
