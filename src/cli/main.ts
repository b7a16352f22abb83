import { Command } from 'commander';
import { registerAskCommand } from './ask-command.js';
import { registerBenchCommand } from './bench-command.js';
import { reportError } from './cli-output.js';
import { registerConvertCommand } from './convert-command.js';
import { registerDoctorCommand } from './doctor-command.js';
import { registerEvalCommand } from './eval-command.js';
import { registerSynthCommand } from './synth-command.js';

export function buildProgram(): Command {
  const program = new Command()
    .name('sieve')
    .description(
      'Video question answering with vision-language models on edge devices, pruning redundant visual tokens',
    )
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  registerAskCommand(program);
  registerConvertCommand(program);
  registerSynthCommand(program);
  registerBenchCommand(program);
  registerDoctorCommand(program);
  registerEvalCommand(program);
  for (const cmd of program.commands) cmd.exitOverride().showHelpAfterError('(run with --help for usage)');
  return program;
}

export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (err) {
    process.exitCode = reportError(err);
  }
}
