/**
 * Statements the webhook path runs on every request, sent to Postgres as named prepared statements: parsed,
 * analysed and planned once per connection instead of once per webhook. Registered by their text (a constant
 * in the repository), so the name can never point at other SQL. PGlite runs them as ordinary statements.
 */
const names = new Map<string, string>();

export function prepared(name: string, text: string): string {
  const existing = names.get(text);
  if (existing !== undefined && existing !== name) throw new Error(`statement registered twice: ${existing} and ${name}`);
  names.set(text, name);
  return text;
}

export function preparedName(text: string): string | undefined {
  return names.get(text);
}
