/**
 * stdout for the weft commands. Two promises: nothing written is lost when
 * the process exits (a pipe drains asynchronously; `process.exit` would cut
 * it), and an error message never continues a line of output (the echoed
 * prompt of `generate` has no newline until generation ends).
 */
let lineOpen = false;

/** Write to stdout, remembering whether the last line is unfinished. */
export function out(text: string): void {
  if (!text) return;
  process.stdout.write(text);
  lineOpen = !text.endsWith('\n');
}

/** End an unfinished output line, so what follows (an error on the terminal) starts on its own line. */
export function endOpenLine(): void {
  if (lineOpen) out('\n');
}

/** Resolves once everything written to the stream so far has been handed to the OS (pipes included). */
export function drained(stream: NodeJS.WriteStream): Promise<void> {
  return new Promise((resolve) => {
    if (stream.destroyed || !stream.writable) return resolve();
    // Writes complete in order: this callback runs after every earlier write has been flushed.
    stream.write('', () => resolve());
  });
}

/** Exit with `code` after stdout and stderr have drained. */
export async function exitAfterDrain(code: number): Promise<never> {
  await Promise.all([drained(process.stdout), drained(process.stderr)]);
  process.exit(code);
}
