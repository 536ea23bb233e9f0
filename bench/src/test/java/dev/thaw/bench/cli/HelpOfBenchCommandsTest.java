package dev.thaw.bench.cli;

import dev.thaw.cli.HelpTest;

/** The help of every command, as {@link HelpTest} checks it, with this module's commands among them. */
class HelpOfBenchCommandsTest extends HelpTest {}
