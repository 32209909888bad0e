import { GraphQLError } from 'graphql';

export type ErrorCode = 'BAD_USER_INPUT' | 'NOT_FOUND' | 'ALREADY_EXISTS' | 'UNAUTHENTICATED' | 'FORBIDDEN';

/** The one way resolvers report an expected failure: a clear message and a machine-readable code. */
export const userError = (code: ErrorCode, message: string): GraphQLError => new GraphQLError(message, { extensions: { code } });
