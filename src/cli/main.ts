import { Command } from 'commander';
import { registerAskCommand } from './ask-command.js';
import { registerBenchCommand } from './bench-command.js';
import { reportError } from './cli-output.js';
import { registerConvertCommand } from './convert-command.js';
import { registerDoctorCommand } from './doctor-command.js';
import { registerEvalCommand } from './eval-command.js';
import { registerServeCommand } from './serve-command.js';
import { registerSynthCommand } from './synth-command.js';
import { registerTuneCommand } from './tune-command.js';
import { registerWatchCommand } from './watch-command.js';

export function buildProgram(): Command {
  const program = new Command()
    .name('sieve')
    .description(
      'Video question answering with vision-language models on edge devices, pruning redundant visual tokens',
    )
    .version('0.1.0')
    // `sieve --version` only before a command: `sieve synth --version 2` is synth's own option.
    .enablePositionalOptions()
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  registerAskCommand(program);
  registerConvertCommand(program);
  registerSynthCommand(program);
  registerBenchCommand(program);
  registerDoctorCommand(program);
  registerEvalCommand(program);
  registerTuneCommand(program);
  registerServeCommand(program);
  registerWatchCommand(program);
  for (const cmd of program.commands) cmd.exitOverride().showHelpAfterError('(run with --help for usage)');
  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    // A command whose output is JSON (`ask --json`) also gets its error as JSON on stdout, for scripts.
    const command = program.commands.find((c) => c.name() === argv[2]);
    process.exitCode = reportError(err, { json: command?.opts().json === true });
  }
}
