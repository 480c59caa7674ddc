import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Replaces the text between `<!-- bench:NAME:start -->` and `<!-- bench:NAME:end -->` in bench/README.md. */
export function updateReadmeSection(name: string, body: string): void {
  // Compiled to dist/bench/; the README lives in bench/.
  const readme = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'README.md');
  const start = `<!-- bench:${name}:start -->`;
  const end = `<!-- bench:${name}:end -->`;
  const text = readFileSync(readme, 'utf8');
  const from = text.indexOf(start);
  const to = text.indexOf(end);
  if (from < 0 || to < from) throw new Error(`${readme} lacks the ${start} … ${end} markers`);
  writeFileSync(readme, `${text.slice(0, from + start.length)}\n${body}\n${text.slice(to)}`);
}
