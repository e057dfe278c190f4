#!/usr/bin/env node
/**
 * `pipeline`: submit jobs to the pipeline and print their results.
 *
 * This entry loads only cli-args.ts (Node's built-ins): --help, --version, `completion` and
 * mistakes in the arguments are answered from there, in about the time Node takes to start.
 * Real work loads commands.ts, and with it the broker client, the schemas and the logger.
 */
import { Exit, HELP, UsageError, checkArgs, completionScript, parse } from './cli-args.js';

async function start(argv: string[]): Promise<number> {
  let p;
  try {
    p = parse(argv);
    if (p === 'help' || (p !== 'version' && p.command === 'help')) {
      process.stdout.write(HELP);
      return Exit.OK;
    }
    if (p === 'version') {
      process.stdout.write('pipeline 0.1.0\n');
      return Exit.OK;
    }
    checkArgs(p);
    if (p.command === 'completion') {
      process.stdout.write(completionScript(p.args[0] as string));
      return Exit.OK;
    }
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`pipeline: ${err.message}\nRun 'pipeline --help' for usage.\n`);
    return Exit.USAGE;
  }
  const { main } = await import('./commands.js');
  return main(p);
}

process.exitCode = await start(process.argv.slice(2));
