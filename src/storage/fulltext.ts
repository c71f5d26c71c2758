// Full-text matching as the store contract defines it (TimelineQuery.fulltext): every word of the query
// must begin a word of the text, ignoring case. A word is a run of letters and digits, so punctuation,
// addresses and URLs split into words the same way in every driver (PostgreSQL indexes the same words,
// see schemas/sql/postgres/0002_archive.sql).

const WORD = /[\p{L}\p{N}]+/gu;

/** The query's words, lower-cased, without repeats. */
export function fulltextTerms(query: string): string[] {
  const terms = new Set<string>();
  for (const match of query.toLowerCase().matchAll(WORD)) terms.add(match[0]);
  return [...terms];
}

let lastQuery = "";
let lastTerms: string[] = [];

/** Whether `text` matches `query` (a query without words matches everything). */
export function matchesFulltext(text: string, query: string): boolean {
  if (query !== lastQuery) {
    lastTerms = fulltextTerms(query);
    lastQuery = query;
  }
  if (lastTerms.length === 0) return true;
  const words = text.toLowerCase().match(WORD);
  if (words === null) return false;
  return lastTerms.every((term) => words.some((word) => word.startsWith(term)));
}
