// POSIX shell quoting for commands run on nodes. Pure code: workflows build commands with it too.

/** Single-quote a word for the remote shell unless it is plainly safe. */
export function shq(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}
