/**
 * The `pipeline` command line, before anything heavy is loaded: the help text, option
 * parsing, the checks of arguments that need nothing but the arguments, and shell
 * completion. Node's built-ins only, so that `--help`, a usage error or `completion` answer
 * at once (cli.ts loads commands.ts, and with it the broker client, only for real work).
 */
import { parseArgs } from 'node:util';

/** Exit codes, documented in --help. */
export const Exit = {
  OK: 0,
  JOB_FAILED: 1,
  USAGE: 2,
  BROKER: 3,
  TIMEOUT: 4,
  /** sysexits' EX_CONFIG; the same as @amqp-pipeline/shared's EXIT_CONFIG (cli-args.test.ts). */
  CONFIG: 78,
  INTERRUPTED: 130,
} as const;

export const HELP = `pipeline — submit jobs to the amqp-pipeline and print their results

Usage:
  pipeline range FROM TO          primes AND squares of every integer in [FROM, TO]
  pipeline primes FROM TO         the primes in [FROM, TO]
  pipeline squares FROM TO        the square of every integer in [FROM, TO] (exact;
                                  squares above 2^53 are printed as exact digit strings)
  pipeline titles URL...          the <title> of each web page
  pipeline titles --file FILE     URLs from FILE, one per line ('-' reads stdin)
  pipeline collect BATCH          results of an earlier batch (see --no-wait)
  pipeline status [--watch]       what waits in the broker, from its management HTTP API:
                                  batches waiting for collection, each work queue (depth,
                                  rates, retries, consumers) and the dead letters by
                                  reason; --json fields: see 'pipeline status --json' below
  pipeline topology               the exchanges, queues, bindings and per-role permissions
  pipeline topology --export      the same as broker definitions (JSON) for load_definitions:
                                  this is how rabbitmq/definitions.json is made
  pipeline completion bash|zsh    a shell completion script: eval "$(pipeline completion bash)"

Options:
  --count           a summary instead of the list: how many, first, last, exact sum.
                    A prime count over more than 1e9 numbers goes as jobs of up to 1e9
                    (~0.2 s of work each, the last ones shorter), shared by every running
                    prime-filter; --chunk overrides
  --chunk N         split the range into jobs of N numbers each, shared by every running
                    copy of the service; lists come back in order, counts are added up
  --json            one JSON object per result on stdout (for scripts); nothing else on stdout.
                    A long list arrives as several lines with "part": {"index", "last"}
  --timeout SECS    longest wait for results (default 120); what has not arrived
                    stays queued, and 'pipeline collect BATCH' picks it up later
  --watch           with 'status': again every second until Ctrl-C (a terminal is redrawn
                    like top; with --json, one object a line, or {"at", "error": {"code",
                    "message"}} for a second it could not read); exits 0
  --no-wait         publish, print the batch id, and exit; results wait in a durable
                    queue (pipeline.replies.USER:BATCH, USER: the broker user) until
                    collected or expired; only that broker user can collect them
  -f, --file FILE   with 'titles': read URLs from FILE ('-' for stdin); blank lines
                    and lines starting with # are skipped
  -o, --out FILE    append the results to FILE as JSON lines (as --json prints them)
                    instead of printing them. Safe to repeat: 'pipeline collect BATCH
                    -o FILE' after a crash or Ctrl-C skips every result FILE already holds,
                    so each result is in FILE exactly once (on stdout, the last second
                    before a crash may be printed again by collect)
  -h, --help        this text
  --version         the version

Examples:
  pipeline range 2 100                      the original example: primes of 2..100 and their squares
  pipeline primes 1 1e10 --count            count the primes below 10^10 (in 15 jobs)
  pipeline primes 1 1e10 --count --chunk 5e7   the same in 200 smaller jobs
  pipeline primes 1000000 1001000 --json | jq '.primes | length'
  pipeline titles https://example.com https://www.rabbitmq.com
  B=$(pipeline squares 1 50000 --no-wait --json | jq -r .batch); pipeline collect "$B"
  pipeline primes 1 1e8 --chunk 1e6 -o primes.jsonl   if it dies, finish with:
  pipeline collect BATCH -o primes.jsonl              (BATCH: see the log, or the file)
  pipeline status --watch                   the batches, queues and dead letters, live
  pipeline status --json | jq '.batches[] | select(.state == "waiting") | .batch'

pipeline status --json: one object (with --watch, one a line; rates per second, null
when the broker has none; ages in seconds, null for a batch id without a time stamp):
  at, management, vhost, sessions {open, consuming},
  batches [{user, batch, queue, startedAt, ageSeconds, ready, unacked, consumers,
            state: "waiting" | "collecting"}],
  queues  [{name, declared, type, ready, unacked, rateIn, rateOut, consumers,
            clients [{name, consumers}], retry {ready, unacked, tiers [{name, ready, unacked}]}}],
  dead    {name, declared, messages, ready, unacked, rateIn, sampleError,
           sample {read, at, byReason [{code, count, services, example}]}}
  (byReason covers the first 500 dead letters, read and put back in order; code is the
  service's PIPELINE_ERR_..., or broker:REASON such as broker:delivery_limit)

Environment:
  AMQP_URL            broker (default amqp://guest:guest@127.0.0.1:5672)
  REPLY_QUEUE_TTL_MS  how long uncollected results are kept (default 86400000, a day)
  MAX_RANGE_WIDTH     most numbers in one list job (default 10000000); wider needs --count or --chunk
  MAX_COUNT_WIDTH     most numbers in one --count job (default 100000000000); wider needs --chunk
  LOG_LEVEL           diagnostics on stderr, JSON lines (default error)
  SERVICE_USERS       whose results are taken: roles (the services' own broker users;
                      default for the user producer), primes=U,squares=U,title=U, or off
  WORK_QUEUE_TYPE     quorum (default) or classic; must match the services' setting
  JOBS_PER_MESSAGE    small jobs sent in one message (default 50; URLs 10 at most);
                      1 for services from before bundles, which take one job a message
  PIPELINE_MANAGEMENT_URL  for 'status': http[s]://USER:PASS@HOST:PORT[/PREFIX] of the
                      management API; its user needs the management (or monitoring) tag.
                      Default: AMQP_URL's host, user and password on http port 15672
                      (amqps: https, 15671). The vhost is always AMQP_URL's

Exit codes:
  0 every job succeeded     1 some job failed (its error is printed)
  2 usage error             3 broker unreachable or connection lost
  4 timed out (some results missing; collect them later)   78 bad configuration
  ('status': 3 management API unreachable, 78 its user not allowed or a bad URL)
  130 interrupted (Ctrl-C or SIGTERM): what has not arrived stays queued for collect
`;

export class UsageError extends Error {}

export interface Parsed {
  command: string;
  export: boolean;
  args: string[];
  json: boolean;
  count: boolean;
  chunk: number | undefined;
  wait: boolean;
  timeoutMs: number;
  file: string | undefined;
  out: string | undefined;
  /** `status --watch`: again every second until stopped. */
  watch: boolean;
}

export function parse(argv: string[]): Parsed | 'help' | 'version' {
  let values;
  let positionals;
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        json: { type: 'boolean', default: false },
        count: { type: 'boolean', default: false },
        chunk: { type: 'string' },
        timeout: { type: 'string' },
        'no-wait': { type: 'boolean', default: false },
        watch: { type: 'boolean', default: false },
        export: { type: 'boolean', default: false },
        file: { type: 'string', short: 'f' },
        out: { type: 'string', short: 'o' },
        help: { type: 'boolean', short: 'h', default: false },
        version: { type: 'boolean', default: false },
      },
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (values.help) return 'help';
  if (values.version) return 'version';
  const [command, ...args] = positionals;
  if (!command) throw new UsageError('no command given');
  let timeoutMs = 120_000;
  if (values.timeout !== undefined) {
    const secs = Number(values.timeout);
    if (!Number.isFinite(secs) || secs <= 0) throw new UsageError(`--timeout must be a positive number of seconds, not "${values.timeout}"`);
    timeoutMs = Math.round(secs * 1000);
  }
  const chunk = values.chunk === undefined ? undefined : integer('--chunk', values.chunk);
  if (chunk !== undefined && chunk < 1) throw new UsageError('--chunk must be at least 1');
  return { command, export: values.export, args, json: values.json, count: values.count, chunk, wait: !values['no-wait'], timeoutMs, file: values.file, out: values.out, watch: values.watch };
}

/** An integer as people type it: 100, -5, 10_000_000, 1e10. Exact, or refused. */
export function integer(name: string, text: string | undefined): number {
  if (text === undefined) throw new UsageError(`missing ${name}`);
  const plain = text.replace(/_/g, '');
  const m = /^(-?)(\d+)(?:e(\d+))?$/i.exec(plain);
  if (!m) throw new UsageError(`${name} must be an integer (like 100, 10_000 or 1e9), not "${text}"`);
  const n = BigInt(`${m[1]}${m[2]}`) * 10n ** BigInt(m[3] ?? 0);
  if (n > BigInt(Number.MAX_SAFE_INTEGER) || n < -BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new UsageError(`${name} ${text} is out of range: integers up to ±${Number.MAX_SAFE_INTEGER} (2^53 - 1)`);
  }
  return Number(n);
}


/** The commands, as --help lists them (`help` too, for `pipeline help`). */
export const COMMANDS = ['range', 'primes', 'squares', 'titles', 'collect', 'status', 'topology', 'completion', 'help'] as const;

/** FROM and TO of `range`, `primes` or `squares`: two exact integers, FROM <= TO. */
export function rangeArgs(p: Parsed): { from: number; to: number } {
  if (p.args.length !== 2) throw new UsageError(`'${p.command}' takes two integers, FROM and TO`);
  const from = integer('FROM', p.args[0]);
  const to = integer('TO', p.args[1]);
  if (from > to) throw new UsageError(`FROM (${from}) is greater than TO (${to})`);
  return { from, to };
}

/**
 * What can be said about the arguments from the arguments alone (the rest, such as the
 * widths the configuration allows, is checked once the command runs).
 */
export function checkArgs(p: Parsed): void {
  if (!(COMMANDS as readonly string[]).includes(p.command)) throw new UsageError(`unknown command "${p.command}" (commands: ${COMMANDS.join(', ')})`);
  if (p.watch && p.command !== 'status') throw new UsageError(`--watch applies to 'status', not to '${p.command}'`);
  switch (p.command) {
    case 'range':
    case 'primes':
    case 'squares':
      rangeArgs(p);
      break;
    case 'collect':
      if (p.args.length !== 1) throw new UsageError("'collect' takes one batch id, as printed by --no-wait");
      break;
    case 'status':
      if (p.args.length !== 0) throw new UsageError(`'status' takes no arguments (options: --json, --watch), not "${p.args.join(' ')}"`);
      break;
    case 'completion':
      if (p.args.length !== 1 || !(SHELLS as readonly string[]).includes(p.args[0] as string)) throw new UsageError(`'completion' takes the shell's name: ${SHELLS.join(' or ')}`);
      break;
  }
}

const SHELLS = ['bash', 'zsh'] as const;

/** Every option, long and short, as the completion offers them. */
const OPTIONS = ['--count', '--chunk', '--json', '--timeout', '--no-wait', '--watch', '--export', '--file', '-f', '--out', '-o', '--help', '-h', '--version'];

/**
 * A completion script for `shell`: commands first, then options; a file name after --file
 * and --out; the shells after `completion`. zsh runs the bash function through bashcompinit,
 * so both shells complete alike.
 */
export function completionScript(shell: string): string {
  const bash = `# pipeline completion for bash: eval "$(pipeline completion bash)", or save it as
# ~/.local/share/bash-completion/completions/pipeline
_pipeline() {
  local cur prev cmd i
  cur=\${COMP_WORDS[COMP_CWORD]}
  prev=\${COMP_WORDS[COMP_CWORD-1]}
  cmd=
  for ((i = 1; i < COMP_CWORD; i++)); do
    case \${COMP_WORDS[i]} in
      -*) ;;
      *) case \${COMP_WORDS[i-1]} in --chunk|--timeout|--file|-f|--out|-o) ;; *) cmd=\${COMP_WORDS[i]}; break ;; esac ;;
    esac
  done
  case $prev in
    --file|-f|--out|-o) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    --chunk|--timeout) COMPREPLY=(); return ;;
  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "${OPTIONS.join(' ')}" -- "$cur"))
  elif [[ -z $cmd ]]; then
    COMPREPLY=($(compgen -W "${COMMANDS.join(' ')}" -- "$cur"))
  elif [[ $cmd == completion ]]; then
    COMPREPLY=($(compgen -W "${SHELLS.join(' ')}" -- "$cur"))
  else
    COMPREPLY=()
  fi
}
complete -F _pipeline pipeline
`;
  if (shell === 'bash') return bash;
  return `#compdef pipeline
# pipeline completion for zsh: eval "$(pipeline completion zsh)" in ~/.zshrc (after compinit)
autoload -U +X bashcompinit && bashcompinit
${bash.split('\n').filter((l) => !l.startsWith('#')).join('\n')}`;
}
