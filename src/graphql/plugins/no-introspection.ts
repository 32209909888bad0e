import { NoSchemaIntrospectionCustomRule } from 'graphql';
import type { Plugin } from 'graphql-yoga';

/** INTROSPECTION=off: `__schema` and `__type` are validation errors. */
export const noIntrospection = (): Plugin => ({ onValidate: ({ addValidationRule }) => addValidationRule(NoSchemaIntrospectionCustomRule) });
