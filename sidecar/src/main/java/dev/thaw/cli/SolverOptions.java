package dev.thaw.cli;

import dev.thaw.placement.CostModel;
import dev.thaw.placement.MipPlacement;
import java.time.Duration;
import java.util.Locale;
import picocli.CommandLine;
import picocli.CommandLine.Option;

/** The solver options that {@code thaw placement solve}, {@code bench} and {@code simulate} share (a picocli mixin). */
public final class SolverOptions {
  @Option(names = "--solver", paramLabel = "NAME", defaultValue = "auto",
      description = "auto, cp_sat, scip or lp_rounding. Default: ${DEFAULT-VALUE}.")
  String solver;

  @Option(names = "--time-limit", paramLabel = "DURATION", defaultValue = "2s", converter = Units.DurationConverter.class,
      description = "The solver's limit; past it the best plan found so far, or the greedy plan. Default: ${DEFAULT-VALUE}.")
  Duration timeLimit;

  @Option(names = "--move-penalty", paramLabel = "SECONDS", defaultValue = "30",
      description = "What moving a running replica costs besides its new start. Default: ${DEFAULT-VALUE}.")
  double movePenalty;

  public MipPlacement.Solver solverKind() {
    try {
      return MipPlacement.Solver.valueOf(solver.toUpperCase(Locale.ROOT));
    } catch (IllegalArgumentException e) {
      throw new CommandLine.TypeConversionException("--solver must be auto, cp_sat, scip or lp_rounding, not " + solver);
    }
  }

  public MipPlacement.Options options() {
    return new MipPlacement.Options(timeLimit, 2, 42, costs(), solverKind());
  }

  public CostModel costs() {
    return new CostModel(movePenalty, CostModel.DEFAULT.unplacedSeconds());
  }
}
