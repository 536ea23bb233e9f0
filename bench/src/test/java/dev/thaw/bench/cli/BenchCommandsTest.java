package dev.thaw.bench.cli;

import static org.assertj.core.api.Assertions.assertThat;

import dev.thaw.cli.ThawRun;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The bench module's commands in the thaw command line, found there through the command plugin. */
class BenchCommandsTest {
  private final ThawRun thaw = new ThawRun();

  @ParameterizedTest
  @ValueSource(strings = {"model", "demo", "bench", "placement bench", "placement simulate"})
  void everyCommandExplainsItsOptions(String command) {
    assertThat(thaw.run((command + " --help").split(" "))).as(thaw.err()).isZero();
    assertThat(thaw.out()).contains("Usage: thaw " + command);
  }

  @ParameterizedTest
  @ValueSource(strings = {"model", "demo", "bench", "placement"})
  void theCommandListOfThawsHelpNamesThem(String command) {
    assertThat(thaw.run("--help")).isZero();
    assertThat(thaw.out()).containsPattern("(?m)^  " + command + " {2,}\\S");
  }

  @ParameterizedTest
  @ValueSource(strings = {"solve", "bench", "simulate"})
  void placementsHelpListsTheProductsSolveAndTheBenchsOwnCommands(String command) {
    assertThat(thaw.run("placement", "--help")).isZero();
    assertThat(thaw.out()).containsPattern("(?m)^  " + command + " {2,}\\S");
  }
}
