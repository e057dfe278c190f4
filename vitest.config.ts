import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['shared/src/**/*.test.ts', 'producer/src/**/*.test.ts', 'consumers/*/src/**/*.test.ts'],
          sequence: { groupOrder: 0 },
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/**/*.test.ts'],
          // test/faults runs its own throwaway broker: see the `faults` project below.
          exclude: [...configDefaults.exclude, 'test/faults/**'],
          globalSetup: ['test/global-setup.ts'],
          // The files share the broker's work queues and spawn real services: one at a time.
          fileParallelism: false,
          sequence: { groupOrder: 1 },
          testTimeout: 60_000,
          hookTimeout: 180_000,
        },
      },
      {
        test: {
          // Fault injection against a throwaway RabbitMQ node each file starts itself (never the
          // shared broker, so no globalSetup). Slow rows run only with FAULTS=full: docs/reliability.md.
          name: 'faults',
          include: ['test/faults/**/*.test.ts'],
          fileParallelism: false,
          sequence: { groupOrder: 2 },
          testTimeout: 180_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
