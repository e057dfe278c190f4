import { spawnSync } from 'node:child_process';
import { EXIT_CONFIG } from '@amqp-pipeline/shared';
import { describe, expect, it } from 'vitest';
import { COMMANDS, Exit, HELP, UsageError, checkArgs, completionScript, parse, type Parsed } from './cli-args.js';

const parsed = (argv: string[]): Parsed => {
  const p = parse(argv);
  if (typeof p === 'string') throw new Error(`parsed as ${p}`);
  return p;
};

describe('cli-args', () => {
  it('when the exit codes are listed, then the configuration one is the services\' EXIT_CONFIG', () => {
    expect(Exit.CONFIG).toBe(EXIT_CONFIG);
  });

  it('when the arguments alone are wrong, then checkArgs says what is wrong before anything is loaded', () => {
    const wrong: [string[], RegExp][] = [
      [['primes', '5', '2'], /FROM \(5\) is greater than TO \(2\)/],
      [['primes', '5'], /takes two integers/],
      [['squares', '1', 'ten'], /TO must be an integer/],
      [['frobnicate'], /unknown command "frobnicate" \(commands: range, primes/],
      [['collect'], /one batch id/],
      [['completion', 'fish'], /bash or zsh/],
    ];
    for (const [argv, message] of wrong) expect(() => checkArgs(parsed(argv)), argv.join(' ')).toThrow(message);
    for (const argv of [['range', '2', '100'], ['primes', '1', '1e10', '--count'], ['titles', 'https://example.com/'], ['completion', 'zsh'], ['topology']]) {
      expect(() => checkArgs(parsed(argv)), argv.join(' ')).not.toThrow();
    }
    expect(() => parse(['--frob'])).toThrow(UsageError);
  });

  it('when `status` is parsed, then --watch and --json are read and it takes no arguments', () => {
    expect(parsed(['status'])).toMatchObject({ command: 'status', args: [], watch: false, json: false });
    expect(parsed(['status', '--watch', '--json'])).toMatchObject({ command: 'status', watch: true, json: true });
    expect(parsed(['primes', '1', '9']).watch).toBe(false);
    expect(() => checkArgs(parsed(['status', '--watch']))).not.toThrow();
    expect(() => checkArgs(parsed(['status', 'now']))).toThrow(/'status' takes no arguments/);
    expect(() => checkArgs(parsed(['primes', '1', '9', '--watch']))).toThrow(/--watch applies to 'status'/);
    expect(HELP).toContain('PIPELINE_MANAGEMENT_URL');
    expect(HELP).toContain('--watch');
  });

  it('when --help is printed, then it lists every command', () => {
    for (const c of COMMANDS.filter((c) => c !== 'help')) expect(HELP).toContain(`pipeline ${c}`);
  });
});

describe('shell completion', () => {
  /** What bash offers for the words typed so far (the last one being completed). */
  function complete(shell: 'bash', words: string[]): string[] {
    const script = `${completionScript(shell)}
COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _pipeline; printf '%s\\n' "\${COMPREPLY[@]}"`;
    const r = spawnSync('bash', ['--norc', '-c', script], { encoding: 'utf8', cwd: new URL('.', import.meta.url).pathname });
    expect(r.status, r.stderr).toBe(0);
    return r.stdout.split('\n').filter(Boolean);
  }

  it('when the script runs in bash, then it completes commands, options, shells and file names', () => {
    expect(complete('bash', ['pipeline', ''])).toEqual([...COMMANDS]);
    expect(complete('bash', ['pipeline', 'pr'])).toEqual(['primes']);
    expect(complete('bash', ['pipeline', 'primes', '1', '100', '--c'])).toEqual(['--count', '--chunk']);
    expect(complete('bash', ['pipeline', 'completion', ''])).toEqual(['bash', 'zsh']);
    // After --out, a file name (this folder holds cli-args.test.ts).
    expect(complete('bash', ['pipeline', 'primes', '1', '9', '--out', 'cli-args.te'])).toEqual(['cli-args.test.ts']);
    // After --chunk, a number: nothing to offer. After a command's argument, no command again.
    expect(complete('bash', ['pipeline', 'primes', '--chunk', ''])).toEqual([]);
    expect(complete('bash', ['pipeline', 'primes', ''])).toEqual([]);
    expect(complete('bash', ['pipeline', '--json', 'ti'])).toEqual(['titles']);
    expect(complete('bash', ['pipeline', 'st'])).toEqual(['status']);
    expect(complete('bash', ['pipeline', 'status', '--w'])).toEqual(['--watch']);
  });

  it('when the zsh script is asked for, then it loads bashcompinit and defines the same function', () => {
    const zsh = completionScript('zsh');
    expect(zsh.startsWith('#compdef pipeline\n')).toBe(true);
    expect(zsh).toContain('autoload -U +X bashcompinit && bashcompinit');
    expect(zsh).toContain('complete -F _pipeline pipeline');
    const hasZsh = spawnSync('zsh', ['--version']).status === 0;
    if (hasZsh) {
      const r = spawnSync('zsh', ['-f', '-c', `autoload -U compinit && compinit -u; ${zsh}; print -r -- \${+_comps[pipeline]}`], { encoding: 'utf8' });
      expect(r.stdout.trim(), r.stderr).toBe('1');
    }
  });
});
