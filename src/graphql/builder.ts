import SchemaBuilder from '@pothos/core';
import RelayPlugin from '@pothos/plugin-relay';
import ScopeAuthPlugin from '@pothos/plugin-scope-auth';
import ValidationPlugin from '@pothos/plugin-validation';
import { DateTimeResolver } from 'graphql-scalars';
import { authScopes, unauthorizedError, type AuthScopes } from './auth.js';
import type { GraphQLContext } from './context.js';
import { userError } from './errors.js';

/** Configures the builder only: plugins, scalars, context. Types live one file each. */
export const builder = new SchemaBuilder<{
  Context: GraphQLContext;
  AuthScopes: AuthScopes;
  DefaultFieldNullability: false;
  Scalars: { DateTime: { Input: Date; Output: Date } };
}>({
  // Relay first so scopes see decoded ids; input validation (an arg mapper) always runs before the scope checks.
  plugins: [RelayPlugin, ScopeAuthPlugin, ValidationPlugin],
  defaultFieldNullability: false,
  relay: {
    clientMutationId: 'omit',
    cursorType: 'String',
    nodesQueryOptions: false,
    nodeQueryOptions: {
      description: 'Any object by its global id (today: a Session). Needs a valid token; the object then checks its own grant.',
      authScopes: { authenticated: true },
      args: { id: { description: 'A global id, as `id` fields return it' } },
    },
    // Every field and argument says what it is (the schema is the reference a client reads).
    nodeTypeOptions: { description: 'An object with a global id, readable through `node(id:)`' },
    idFieldOptions: { description: 'The global id: pass it to `node` or `session`' },
    pageInfoTypeOptions: { description: 'Where a page sits in the whole list' },
    hasNextPageFieldOptions: { description: 'More items follow `endCursor`' },
    hasPreviousPageFieldOptions: { description: 'More items precede `startCursor`' },
    startCursorFieldOptions: { description: 'The cursor of the first item of the page (null: empty page)' },
    endCursorFieldOptions: { description: 'The cursor of the last item of the page (null: empty page)' },
    pageInfoFieldOptions: { description: 'Cursors of this page and whether there are more' },
    edgesFieldOptions: { description: 'The items of this page, in order' },
    nodeFieldOptions: { description: 'The item' },
    cursorFieldOptions: { description: 'Opaque position of this item: pass it to `after` or `before`' },
    firstArgOptions: { description: 'Page size counting forward from `after` (1..100)' },
    lastArgOptions: { description: 'Page size counting back from `before` (1..100)' },
    afterArgOptions: { description: 'A cursor from this list: the items after it' },
    beforeArgOptions: { description: 'A cursor from this list: the items before it' },
    mutationInputArgOptions: { description: 'The mutation input' },
  },
  scopeAuth: {
    // Grants are checked when a subscription starts, not only on each event.
    authorizeOnSubscribe: true,
    authScopes,
    unauthorizedError: (_parent, context, _info, result) => unauthorizedError(context.viewer, result.failure),
  },
  validation: {
    // One mapper: every failed input check is BAD_USER_INPUT with the checks' own messages.
    validationError: (failure) => userError('BAD_USER_INPUT', failure.issues.map((issue) => issue.message).join('; ')),
  },
});

builder.addScalarType('DateTime', DateTimeResolver, {
  description: 'An ISO-8601 timestamp in UTC, e.g. 2026-11-27T21:30:00.000Z',
});

builder.queryType({ description: 'Reads: every field needs a LiveKit access token; each says which grant.' });
builder.mutationType({ description: 'Writes: each field says which grant it needs.' });
builder.subscriptionType({ description: 'Live changes, over SSE (graphql-sse) or WebSocket (graphql-ws).' });
