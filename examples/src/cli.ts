/** `weft` command-line tool: generate, logits, serve, layout, launch. */
import { watchParent } from '@weft/comm';
import { WeftError } from '@weft/core';
import { UsageError } from './cli/args.js';
import { parentGoneHandled } from './cli/orphaned.js';
import { generateCommand, layoutCommand, logitsCommand } from './cli/commands.js';
import { COMMAND_HELP, OVERVIEW } from './cli/help.js';
import { launchCommand } from './cli/launch.js';
import { endOpenLine, exitAfterDrain } from './cli/output.js';
import { serveCommand } from './cli/serve.js';

/** A command returns its exit code, or nothing for 0. */
const commands: Record<string, (argv: string[]) => Promise<number | void>> = {
  generate: generateCommand,
  logits: logitsCommand,
  serve: serveCommand,
  layout: layoutCommand,
  launch: launchCommand,
};

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    const topic = cmd === 'help' ? rest[0] : undefined;
    process.stdout.write(`${(topic && COMMAND_HELP[topic]) || OVERVIEW}\n`);
    return cmd ? 0 : 2;
  }
  const run = commands[cmd];
  if (!run) {
    process.stderr.write(`weft: unknown command '${cmd}' (try: ${Object.keys(commands).join(', ')})\n`);
    return 2;
  }
  // launch's own --help only: what follows -- belongs to the launched command.
  const own = cmd === 'launch' && rest.includes('--') ? rest.slice(0, rest.indexOf('--')) : rest;
  if (own.includes('--help') || own.includes('-h')) {
    process.stdout.write(`${COMMAND_HELP[cmd]}\n`);
    return 0;
  }
  // The command is work in progress until it settles: hold the event loop open for it, whatever the engine
  // does with its ranks' handles while it looks idle to itself.
  const keepAlive = setInterval(() => {}, 2 ** 30);
  try {
    return (await run(rest)) ?? 0;
  } catch (e) {
    const err = e as Error;
    // An unfinished output line (the echoed prompt) ends first: the error starts a line of its own.
    endOpenLine();
    if (rest.includes('--verbose')) process.stderr.write(`${err.stack ?? String(err)}\n`);
    else process.stderr.write(`weft: ${err instanceof WeftError ? err.message : `${err.name}: ${err.message}`}\n`);
    return e instanceof UsageError ? 2 : 1;
  } finally {
    clearInterval(keepAlive);
  }
}

// A reader that goes away (`weft ... | head`) is not an error of ours.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(0);
  throw e;
});

// The event loop ran dry while the command still waited (a promise nothing will settle, e.g. on unref'd ranks):
// say so and fail, rather than exit 0 having printed nothing.
let settled = false;
// Killed parent (a shell, npx): end with it rather than run on alone with busy rank threads. Rank processes
// of `weft launch` have an IPC channel and their supervisor for that.
if (!process.channel) {
  watchParent(() => {
    if (parentGoneHandled()) return;
    endOpenLine();
    process.stderr.write('weft: the parent process is gone; stopping\n');
    process.exit(129);
  });
}

process.once('beforeExit', () => {
  if (settled) return;
  endOpenLine();
  process.stderr.write('weft: internal error: the command stopped with its work unfinished (nothing left to wait on); please report it\n');
  process.exitCode = 70;
});

// Exit only after stdout has drained: a pipe takes its time, and process.exit would cut the output.
main(process.argv.slice(2)).then((code) => {
  settled = true;
  return exitAfterDrain(code);
});
