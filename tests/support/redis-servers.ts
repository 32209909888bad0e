/**
 * Real Redis topologies a test starts for itself from this machine's `redis-server` and `redis-cli`, on
 * free loopback ports in a temporary folder, and always tears down: a Cluster (3 masters + 3 replicas)
 * and a Sentinel-managed master with one replica and three Sentinels.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { freePort } from '../../tools/kit/service-process.js';

const run = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Server = { port: number; child: ChildProcess };

async function launch(args: string[], port: number): Promise<Server> {
  const child = spawn('redis-server', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  await until(
    async () => {
      if (child.exitCode !== null) throw new Error(`redis-server on ${port} exited with ${child.exitCode}: ${stderr}`);
      return (await ping(port)) === 'PONG';
    },
    10_000,
    `redis-server on ${port}`,
  );
  return { port, child };
}

async function kill(server: Server): Promise<void> {
  if (server.child.exitCode !== null || server.child.signalCode !== null) return;
  const exited = once(server.child, 'exit');
  server.child.kill('SIGKILL');
  await exited;
}

/** One short-lived connection: a command and its answer (null when the server does not answer). */
export async function redisCommand(port: number, ...args: (string | number)[]): Promise<unknown> {
  const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true, connectTimeout: 1_000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on('error', () => {});
  try {
    await client.connect();
    return await client.call(String(args[0]), ...args.slice(1).map(String));
  } catch {
    return null;
  } finally {
    client.disconnect();
  }
}
const ping = (port: number) => redisCommand(port, 'PING');

export async function until(check: () => Promise<boolean> | boolean, timeoutMs: number, what: string): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (await check()) return Date.now() - started;
    if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

export type ClusterNode = { port: number; id: string; role: 'master' | 'replica'; masterId: string | null; slots: Array<[number, number]>; failed: boolean };

export type RedisCluster = {
  ports: number[];
  /** `host:port,…` for REDIS_CLUSTER_NODES. */
  nodesEnv: string;
  /** The cluster's view from a live node (`CLUSTER NODES`). */
  nodes(): Promise<ClusterNode[]>;
  /** The live master serving a channel's (or key's) slot. */
  ownerOf(channel: string): Promise<ClusterNode>;
  /** Whether a live replica could take over from this master. */
  hasLiveReplica(master: ClusterNode): Promise<boolean>;
  kill(port: number): Promise<void>;
  close(): Promise<void>;
};

/** 3 masters + 3 replicas, `cluster-node-timeout` 1 s so a replica takes over a dead master within seconds. */
export async function startRedisCluster(): Promise<RedisCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'lkss-cluster-'));
  const servers: Server[] = [];
  const dead = new Set<number>();
  try {
    for (let i = 0; i < 6; i++) {
      const port = await freePort();
      // The cluster bus port defaults to port + 10000, which may be taken or out of range: pick a free one.
      const busPort = await freePort();
      servers.push(
        await launch(
          [
            ...['--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes', '--cluster-port', String(busPort)],
            ...['--cluster-config-file', join(dir, `nodes-${port}.conf`), '--cluster-node-timeout', '1000', '--dir', dir],
            ...['--save', '', '--appendonly', 'no', '--daemonize', 'no'],
          ],
          port,
        ),
      );
    }
    await run('redis-cli', ['--cluster', 'create', ...servers.map((s) => `127.0.0.1:${s.port}`), '--cluster-replicas', '1', '--cluster-yes'], {
      timeout: 30_000,
    });
  } catch (err) {
    await Promise.all(servers.map(kill));
    await rm(dir, { recursive: true, force: true });
    throw err;
  }

  const live = () => servers.filter((s) => !dead.has(s.port));
  const nodes = async (): Promise<ClusterNode[]> => {
    for (const s of live()) {
      const text = (await redisCommand(s.port, 'CLUSTER', 'NODES')) as string | null;
      if (text) return parseClusterNodes(text);
    }
    throw new Error('no cluster node answers');
  };
  const ownerOf = async (channel: string) => {
    const slot = Number(await redisCommand(live()[0]!.port, 'CLUSTER', 'KEYSLOT', channel));
    const owner = (await nodes()).find((n) => n.role === 'master' && !n.failed && n.slots.some(([a, b]) => slot >= a && slot <= b));
    if (!owner) throw new Error(`no live master serves slot ${slot}`);
    return owner;
  };

  // Every node agrees the cluster is whole and every replica has synced before the test uses it.
  await until(
    async () => {
      for (const s of servers) if (!String(await redisCommand(s.port, 'CLUSTER', 'INFO')).includes('cluster_state:ok')) return false;
      const view = await nodes();
      if (view.filter((n) => n.role === 'master' && n.slots.length > 0).length !== 3) return false;
      for (const n of view.filter((v) => v.role === 'replica')) {
        if (!String(await redisCommand(n.port, 'INFO', 'replication')).includes('master_link_status:up')) return false;
      }
      return true;
    },
    30_000,
    'a healthy cluster',
  );

  return {
    ports: servers.map((s) => s.port),
    nodesEnv: servers.map((s) => `127.0.0.1:${s.port}`).join(','),
    nodes,
    ownerOf,
    hasLiveReplica: async (master) => (await nodes()).some((n) => n.role === 'replica' && n.masterId === master.id && !n.failed && !dead.has(n.port)),
    async kill(port) {
      dead.add(port);
      await kill(servers.find((s) => s.port === port)!);
    },
    async close() {
      await Promise.all(servers.map(kill));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function parseClusterNodes(text: string): ClusterNode[] {
  return text
    .trim()
    .split('\n')
    .map((line) => {
      const [id, address, flags, masterId, , , , , ...slots] = line.split(' ');
      return {
        id: id!,
        port: Number(/:(\d+)@/.exec(address!)?.[1]),
        role: flags!.includes('master') ? ('master' as const) : ('replica' as const),
        masterId: masterId === '-' ? null : masterId!,
        failed: /fail|noaddr/.test(flags!),
        slots: slots
          .filter((s) => /^\d/.test(s))
          .map((s) => {
            const [a, b] = s.split('-').map(Number);
            return [a!, b ?? a!] as [number, number];
          }),
      };
    });
}

export type RedisSentinelSetup = {
  masterName: string;
  sentinelsEnv: string;
  /** The port of the server the Sentinels currently name as master. */
  masterPort(): Promise<number | null>;
  masterPortAtStart: number;
  replicaPort: number;
  killMaster(): Promise<void>;
  close(): Promise<void>;
};

/** One master, one replica and three Sentinels (quorum 2, `down-after-milliseconds` 1 s). */
export async function startRedisSentinel(masterName = 'lkss'): Promise<RedisSentinelSetup> {
  const dir = await mkdtemp(join(tmpdir(), 'lkss-sentinel-'));
  const servers: Server[] = [];
  const common = ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--dir', dir];
  try {
    const masterPort = await freePort();
    servers.push(await launch(['--port', String(masterPort), ...common], masterPort));
    const replicaPort = await freePort();
    servers.push(await launch(['--port', String(replicaPort), '--replicaof', '127.0.0.1', String(masterPort), ...common], replicaPort));
    await until(async () => String(await redisCommand(replicaPort, 'INFO', 'replication')).includes('master_link_status:up'), 15_000, 'replica in sync');

    const sentinelPorts: number[] = [];
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      // Sentinels rewrite their configuration file: each gets its own, writable.
      const conf = join(dir, `sentinel-${port}.conf`);
      await writeFile(
        conf,
        [
          `port ${port}`,
          'bind 127.0.0.1',
          `dir ${dir}`,
          `sentinel monitor ${masterName} 127.0.0.1 ${masterPort} 2`,
          `sentinel down-after-milliseconds ${masterName} 1000`,
          `sentinel failover-timeout ${masterName} 5000`,
          `sentinel parallel-syncs ${masterName} 1`,
          '',
        ].join('\n'),
      );
      servers.push(await launch([conf, '--sentinel'], port));
      sentinelPorts.push(port);
    }
    // Each Sentinel must know the replica and the other two before a failover can happen.
    await until(
      async () => {
        for (const port of sentinelPorts) {
          const replicas = (await redisCommand(port, 'SENTINEL', 'REPLICAS', masterName)) as unknown[] | null;
          const others = (await redisCommand(port, 'SENTINEL', 'SENTINELS', masterName)) as unknown[] | null;
          if (replicas?.length !== 1 || others?.length !== 2) return false;
        }
        return true;
      },
      20_000,
      'sentinels that know the replica and each other',
    );
    const masterPortNow = async () => {
      for (const port of sentinelPorts) {
        const answer = (await redisCommand(port, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', masterName)) as [string, string] | null;
        if (answer) return Number(answer[1]);
      }
      return null;
    };
    return {
      masterName,
      sentinelsEnv: sentinelPorts.map((p) => `127.0.0.1:${p}`).join(','),
      masterPort: masterPortNow,
      masterPortAtStart: masterPort,
      replicaPort,
      killMaster: () => kill(servers[0]!),
      async close() {
        await Promise.all(servers.map(kill));
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await Promise.all(servers.map(kill));
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/** Whether this machine has the Redis binaries these tests start (under REQUIRE_SERVICES=1 their absence fails the run). */
export function haveRedisBinaries(...names: string[]): boolean {
  try {
    for (const name of names) execFileSync(name, ['--version']);
    return true;
  } catch {
    if (process.env.REQUIRE_SERVICES === '1') throw new Error(`${names.join(' and ')} required (REQUIRE_SERVICES=1)`);
    return false;
  }
}
