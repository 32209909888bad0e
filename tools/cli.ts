/**
 * Command-line handling shared by the tools: `--help` prints the usage (exit 0); a bad flag or a missing
 * value prints one line and the usage (exit 2), never a stack trace.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';

type Options = NonNullable<ParseArgsConfig['options']>;

/** Exit codes the tools share: 1 the work failed, 2 the command line was wrong. */
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

export type Cli = { name: string; usage: string };

/** Prints `message`, the usage line and where the details are to stderr, and exits 2. */
export function usageError(cli: Cli, message: string): never {
  const synopsis = cli.usage.split('\n', 1)[0];
  process.stderr.write(`${cli.name}: ${message}\n${synopsis}\n(--help for details)\n`);
  process.exit(EXIT_USAGE);
}

/** Prints one line to stderr and exits 1 (the command line was fine; the work failed). */
export function fail(cli: Cli, message: string): never {
  process.stderr.write(`${cli.name}: ${message}\n`);
  process.exit(EXIT_FAILED);
}

/** Parses `argv` strictly (no positionals); handles `--help`/`-h` and parse errors itself. */
export function parseToolArgs<const O extends Options>(cli: Cli, options: O, argv: string[] = process.argv.slice(2)) {
  const config = { args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false } as const;
  let parsed: ReturnType<typeof parseArgs<typeof config>>;
  try {
    parsed = parseArgs(config);
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_')) usageError(cli, firstSentence((err as Error).message));
    throw err;
  }
  if ((parsed.values as { help?: boolean }).help) {
    process.stdout.write(`${cli.usage.trimEnd()}\n`);
    process.exit(0);
  }
  return parsed.values;
}

/** Node's parse errors add advice about `--` that only confuses here: keep the first sentence. */
function firstSentence(message: string): string {
  const end = message.search(/\.\s/);
  return end === -1 ? message : message.slice(0, end + 1);
}
