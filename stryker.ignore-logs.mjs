// @ts-check
/**
 * A Stryker ignorer (see stryker.config.mjs): mutants inside a logger call (`logger.warn(...)`,
 * `log.info(...)`) change only what an operator reads in the log, never what a client, a subscriber or the
 * database sees; they are left out of the score instead of being counted as survivors.
 */
import { declareValuePlugin, PluginKind } from '@stryker-mutator/api/plugin';

const LEVELS = new Set(['trace', 'debug', 'info', 'warn', 'error', 'fatal']);

export const strykerPlugins = [
  declareValuePlugin(PluginKind.Ignore, 'logger-calls', {
    /** @param {import('@babel/core').NodePath} path */
    shouldIgnore(path) {
      const node = path.node;
      if (node.type !== 'CallExpression') return undefined;
      const callee = node.callee;
      if (callee.type !== 'MemberExpression' || callee.property.type !== 'Identifier' || !LEVELS.has(callee.property.name)) return undefined;
      if (callee.object.type !== 'Identifier' || !/^(logger|log)$/.test(callee.object.name)) return undefined;
      return 'a log line: what operators read, not a promise to clients (stryker.ignore-logs.mjs)';
    },
  }),
];
