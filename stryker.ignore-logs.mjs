// @ts-check
/**
 * A Stryker ignorer (see stryker.config.mjs): mutants inside a logger call (`logger.warn(...)`,
 * `log.info(...)`) change only what an operator reads in the log, never what a client, a subscriber or the
 * database sees; they are left out of the score instead of being counted as survivors.
 */
import { declareValuePlugin, PluginKind } from '@stryker-mutator/api/plugin';

const LEVELS = new Set(['trace', 'debug', 'info', 'warn', 'error', 'fatal']);

/** `logger.warn(…)`, `log.info(…)`, `this.deps.logger.warn(…)`. @param {import('@babel/core').types.Node} node */
function isLoggerCall(node) {
  if (node.type !== 'CallExpression') return false;
  const callee = node.callee;
  if (callee.type !== 'MemberExpression' || callee.property.type !== 'Identifier' || !LEVELS.has(callee.property.name)) return false;
  const target = callee.object;
  const name =
    target.type === 'Identifier' ? target.name : target.type === 'MemberExpression' && target.property.type === 'Identifier' ? target.property.name : '';
  return /^(logger|log)$/.test(name);
}

export const strykerPlugins = [
  declareValuePlugin(PluginKind.Ignore, 'logger-calls', {
    /** @param {import('@babel/core').NodePath} path */
    shouldIgnore(path) {
      const node = path.node;
      // `if (…) logger.info(…)` with nothing else: the condition only decides whether a line is logged.
      if (node.type === 'IfStatement' && !node.alternate) {
        const body = node.consequent.type === 'BlockStatement' && node.consequent.body.length === 1 ? node.consequent.body[0] : node.consequent;
        if (body?.type === 'ExpressionStatement' && isLoggerCall(body.expression)) return 'only decides whether a line is logged (stryker.ignore-logs.mjs)';
      }
      if (isLoggerCall(node)) return 'a log line: what operators read, not a promise to clients (stryker.ignore-logs.mjs)';
      return undefined;
    },
  }),
];
