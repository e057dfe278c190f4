// The `pipeline` command as a bundle (npm run bundle, part of the root build): the CLI's own
// modules, `@amqp-pipeline/shared`, zod, pino and cli-progress in a few files instead of
// hundreds, which saves Node about a quarter of a one-job command's start-up (see
// docs/benchmarks.md, cli-start). amqplib stays external: shared/src/broker.ts loads amqplib's
// own recovery module from node_modules, and one copy of amqplib must serve both. OpenTelemetry
// stays external too: it is loaded (from node_modules) only when tracing is on, and an
// application's own @opentelemetry/api must be the one our spans go through.
// Source maps are written beside the chunks; NODE_OPTIONS=--enable-source-maps uses them.
export default {
  input: { cli: 'dist/cli.js' },
  platform: 'node',
  external: [/^amqplib(\/|$)/, /^@opentelemetry\//],
  output: { dir: 'dist/bundle', format: 'esm', sourcemap: true, chunkFileNames: '[name].js' },
};
