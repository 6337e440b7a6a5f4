/** `weft` command-line tool: generate, logits, layout. */
import { WeftError } from '@weft/core';
import { UsageError } from './cli/args.js';
import { generateCommand, layoutCommand, logitsCommand } from './cli/commands.js';
import { LAUNCH_HELP, launchCommand } from './cli/launch.js';

const HELP = `weft — vLLM-style distributed inference on TensorFlow.js

usage:
  weft generate [--model DIR] [--prompt TEXT | --ids 1,2,3] [--tp N] [--pp N] [--dp N] [--enable-expert-parallel]
                [--moe-dispatch allgather|alltoall] [--backend wasm|cpu|webgpu|tensorflow] [--max-tokens N]
                [--temperature T] [--top-p P] [--top-k K] [--seed S] [--stop STR] [--trace FILE] [--timeout MS]
  weft logits --model DIR --ids 1,2,3 [--tp N] [--pp N] [--dp N] [--enable-expert-parallel] [--backend B] --json
  weft layout --world-size N [--tp N] [--pp N] [--dp N] [--json]
${LAUNCH_HELP}

With no --model, generate runs the embedded weft-tiny-code model (models/weft-tiny-code).
Models: Hugging Face directories of Llama (2, 3, 3.x, Mistral-style) and DeepSeek V2 / V2-Lite / V3.
Several --prompt flags are generated together (spread over --dp replicas).
--transport tcp (generate, logits): ranks as processes over TCP; under weft launch / mpirun / srun / torchrun-style env
the same command runs in every rank's process, else this process starts the other ranks itself. See docs/multi-host.md.
Add --verbose for stack traces.`;

const commands: Record<string, (argv: string[]) => Promise<void>> = {
  generate: generateCommand,
  logits: logitsCommand,
  layout: layoutCommand,
  launch: launchCommand,
};

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    process.stdout.write(HELP + '\n');
    return cmd ? 0 : 2;
  }
  const run = commands[cmd];
  if (!run) {
    process.stderr.write(`weft: unknown command '${cmd}' (try: ${Object.keys(commands).join(', ')})\n`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  try {
    await run(rest);
    return 0;
  } catch (e) {
    const err = e as Error;
    if (rest.includes('--verbose')) process.stderr.write(`${err.stack ?? String(err)}\n`);
    else process.stderr.write(`weft: ${err instanceof WeftError ? err.message : `${err.name}: ${err.message}`}\n`);
    return e instanceof UsageError ? 2 : 1;
  }
}

main(process.argv.slice(2)).then((code) => process.exit(code));
