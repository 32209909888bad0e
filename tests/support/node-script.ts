import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** tsx by absolute URL, so a script runs from any working directory (a temp dir with its own env.local). */
const TSX = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

/** Only what a shell gives every process: the developer's own variables must not leak into a test. */
const baseEnv = () => ({ PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' });

export type ScriptRun = { child: ChildProcess; output(): { stdout: string; stderr: string }; exited: Promise<number | null> };

/** Starts `node --import tsx <script> ...args` (script relative to the repository root) as its own process. */
export function startNodeScript(script: string, args: string[] = [], opts: { cwd?: string; env?: Record<string, string> } = {}): ScriptRun {
  const child = spawn(process.execPath, ['--import', TSX, fileURLToPath(new URL(script, pathToFileURL(ROOT))), ...args], {
    cwd: opts.cwd ?? ROOT,
    env: { ...baseEnv(), ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  return { child, output: () => ({ stdout, stderr }), exited };
}

export type ScriptResult = { code: number | null; stdout: string; stderr: string };

/** Runs a script to its end (killed after `timeoutMs`). */
export async function runNodeScript(
  script: string,
  args: string[] = [],
  opts: { cwd?: string; env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<ScriptResult> {
  const run = startNodeScript(script, args, opts);
  const timer = setTimeout(() => run.child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
  const code = await run.exited;
  clearTimeout(timer);
  return { code, ...run.output() };
}

/** Resolves once `predicate` holds for the output so far; rejects when the process exits first or time runs out. */
export async function waitForOutput(run: ScriptRun, predicate: (out: { stdout: string; stderr: string }) => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate(run.output())) {
    if (run.child.exitCode !== null || run.child.signalCode !== null) {
      throw new Error(`process exited (${run.child.exitCode ?? run.child.signalCode}) first:\n${JSON.stringify(run.output(), null, 1)}`);
    }
    if (Date.now() > deadline) throw new Error(`output not seen within ${timeoutMs} ms:\n${JSON.stringify(run.output(), null, 1)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
