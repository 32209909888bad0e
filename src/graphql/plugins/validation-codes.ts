import { GraphQLError } from 'graphql';
import type { Plugin } from 'graphql-yoga';

/** Validation errors (unknown fields, wrong types…) get a machine-readable code like every other error. */
export function codeValidationErrors(): Plugin {
  const withCode = (e: GraphQLError): GraphQLError =>
    e.extensions?.code
      ? e
      : new GraphQLError(e.message, {
          nodes: e.nodes,
          source: e.source,
          positions: e.positions,
          path: e.path,
          originalError: e.originalError,
          extensions: { ...e.extensions, code: 'GRAPHQL_VALIDATION_FAILED' },
        });
  return {
    onValidate:
      () =>
      ({ result, setResult }) => {
        if (result.some((e) => !(e instanceof GraphQLError) || !e.extensions?.code)) {
          setResult((result as readonly Error[]).map((e) => (e instanceof GraphQLError ? withCode(e) : e)));
        }
      },
  };
}
