import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { resolve } from 'node:path';

/** PGlite has no cross-process lock: two processes on one folder both start and silently lose writes. */
export class DataDirInUseError extends Error {
  constructor(
    readonly dataDir: string,
    readonly holder: string,
    readonly lockFile: string,
  ) {
    super(
      `The embedded database folder ${dataDir} is in use by ${holder} (another "npm start" or "npm run migrate"); ` +
        `stop that process first, or set PGLITE_DATA_DIR to another folder. If that process is gone, delete ${lockFile}.`,
    );
    this.name = 'DataDirInUseError';
  }
}

/** Lock files this process holds: a lock left by an earlier process with our pid (a restarted container) is stale. */
const held = new Set<string>();

/**
 * Takes the folder's lock file (`<folder>.lock`, next to it: PGlite owns the folder's contents), holding
 * "pid@host". A lock whose holder is dead on this host is stale and taken over. Returns the release function.
 */
export function lockDataDir(dataDir: string): () => void {
  const dir = resolve(dataDir);
  const lockFile = `${dir}.lock`;
  const me = `${process.pid}@${hostname()}`;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(lockFile, 'wx');
      try {
        writeSync(fd, `${me}\n`);
      } finally {
        closeSync(fd);
      }
      held.add(lockFile);
      return () => {
        held.delete(lockFile);
        if (readHolder(lockFile) === me) unlinkQuietly(lockFile);
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = readHolder(lockFile);
    if (holder !== null && !isStale(holder, lockFile)) throw new DataDirInUseError(dir, describe(holder), lockFile);
    unlinkQuietly(lockFile);
  }
  throw new DataDirInUseError(dir, 'another process (the lock file keeps coming back)', lockFile);
}

function readHolder(lockFile: string): string | null {
  try {
    return readFileSync(lockFile, 'utf8').trim();
  } catch {
    return null;
  }
}

function isStale(holder: string, lockFile: string): boolean {
  const [pidText, host] = holder.split('@');
  const pid = Number(pidText);
  // Unreadable content is a half-written lock of a crashed start: stale.
  if (!Number.isInteger(pid) || pid <= 0) return true;
  // Another host's process cannot be checked from here: only a person can say it is gone.
  if (host !== hostname()) return false;
  if (pid === process.pid) return !held.has(lockFile);
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

function describe(holder: string): string {
  const [pid, host] = holder.split('@');
  return host === hostname() ? `process ${pid}` : `process ${pid} on host ${host}`;
}

function unlinkQuietly(file: string): void {
  try {
    unlinkSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
