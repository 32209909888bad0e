import { EnvelopArmor } from '@escape.tech/graphql-armor';
import { GraphQLError, Kind, visit, type ValidationContext, type ASTVisitor } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { userError } from '../errors.js';
import { pageSizeProblem } from '../pagination.js';

export type QueryLimits = { maxDepth: number; maxAliases: number; maxTokens: number; maxCost: number; production: boolean };

export const MAX_DIRECTIVES = 20;

/**
 * The query limits (graphql-armor) as ordinary validation errors: reported, not thrown, so over graphql-ws a
 * violation is an error result for that one operation instead of a thrown error that closes the socket (4500).
 * Each carries `GRAPHQL_VALIDATION_FAILED`; armor's "Syntax Error: " prefix is dropped (none of them is one).
 */
export function queryLimits(limits: QueryLimits): Plugin[] {
  // Contexts whose page size was already refused: the cost rule (which multiplies by `first`) stays quiet on them.
  const pageRefused = new WeakSet<ValidationContext>();
  const limitErrors = new WeakSet<GraphQLError>();
  const report = (context: ValidationContext | null, err: GraphQLError) => {
    if (!context || pageRefused.has(context)) return;
    const error = limitError(err);
    limitErrors.add(error);
    context.reportError(error);
  };
  const rule = { onReject: [report], propagateOnRejection: false };
  const armor = new EnvelopArmor({
    maxDepth: { n: limits.maxDepth, ...rule },
    maxAliases: { n: limits.maxAliases, ...rule },
    // The token limit runs inside the parser, which cannot report and continue: relabel the error it throws.
    maxTokens: { n: limits.maxTokens, onReject: [(_ctx, err) => relabel(err)] },
    costLimit: { maxCost: limits.maxCost, ...rule },
    maxDirectives: { n: MAX_DIRECTIVES, ...rule },
    blockFieldSuggestion: { enabled: limits.production },
  });
  return [pageSizeLimit(pageRefused, limitErrors), ...(armor.protect().plugins as Plugin[]), onlyLimitErrors(limitErrors)];
}

/** A query over a limit gets the limit's error alone, not also what the other rules say about its 25 directives. */
function onlyLimitErrors(limitErrors: WeakSet<GraphQLError>): Plugin {
  return {
    onValidate:
      () =>
      ({ result, setResult }) => {
        const overLimit = result.filter((e) => e instanceof GraphQLError && limitErrors.has(e));
        if (overLimit.length > 0 && overLimit.length < result.length) setResult(overLimit);
      },
  };
}

/** `first`/`last` written into the query outside 1..100 get the resolver's own message, before the cost rule counts them. */
function pageSizeLimit(refused: WeakSet<ValidationContext>, limitErrors: WeakSet<GraphQLError>): Plugin {
  const rule = (context: ValidationContext): ASTVisitor => ({
    Document(document) {
      visit(document, {
        Argument(node) {
          const name = node.name.value;
          if ((name !== 'first' && name !== 'last') || node.value.kind !== Kind.INT) return;
          const problem = pageSizeProblem(name, Number(node.value.value));
          if (!problem) return;
          refused.add(context);
          const err = userError('BAD_USER_INPUT', problem);
          const error = new GraphQLError(problem, { nodes: [node], extensions: { ...err.extensions } });
          limitErrors.add(error);
          context.reportError(error);
        },
      });
    },
  });
  return { onValidate: ({ addValidationRule }) => addValidationRule(rule) };
}

const stripPrefix = (message: string) => message.replace(/^Syntax Error: /, '');

function limitError(err: GraphQLError): GraphQLError {
  return new GraphQLError(stripPrefix(err.message), { extensions: { code: 'GRAPHQL_VALIDATION_FAILED' } });
}

function relabel(err: GraphQLError): void {
  err.message = stripPrefix(err.message);
  (err.extensions as Record<string, unknown>).code = 'GRAPHQL_VALIDATION_FAILED';
}
