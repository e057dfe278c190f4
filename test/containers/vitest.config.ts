import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// `npm run test:containers`: the container path (image, docker compose, the testcontainers
// fallback) against the Docker-compatible engine at DOCKER_HOST. Never part of `npm test`: the
// files are named *.containers.ts, which the root config's projects do not include.
export default defineConfig({
  test: {
    name: 'containers',
    root: fileURLToPath(new URL('../..', import.meta.url)),
    include: ['test/containers/**/*.containers.ts'],
    // One engine, real ports and images: one file at a time.
    fileParallelism: false,
    testTimeout: 180_000,
    // beforeAll builds the image and brings the stack up (its own bounds are inside).
    hookTimeout: 1_500_000,
    teardownTimeout: 300_000,
  },
});
