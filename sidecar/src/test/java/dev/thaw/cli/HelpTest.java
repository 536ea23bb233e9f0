package dev.thaw.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import picocli.CommandLine;

/**
 * Every command's {@code --help} as a reader sees it, subcommands included: every command on the class path, so the
 * bench module runs it too (a subclass there) over the commands it adds.
 */
public class HelpTest {
  /** Every command line that has a help of its own: "", "push", ..., "bench store", "placement solve", ... */
  static Stream<String> everyCommand() {
    List<String> paths = new ArrayList<>();
    collect(tree(), "", paths);
    return paths.stream();
  }

  private static CommandLine tree() {
    return Main.commands(null);
  }

  private static void collect(CommandLine command, String path, List<String> paths) {
    paths.add(path);
    command.getSubcommands().forEach((name, sub) -> {
      if (!name.equals("help")) {
        collect(sub, (path + " " + name).trim(), paths);
      }
    });
  }

  private static String help(String command) {
    ThawRun thaw = new ThawRun();
    List<String> args = new ArrayList<>(Arrays.asList(command.isEmpty() ? new String[0] : command.split(" ")));
    args.add("--help");
    assertThat(thaw.run(args.toArray(String[]::new))).as(thaw.err()).isZero();
    return thaw.out();
  }

  /** The same help laid out by picocli alone on a line so wide that nothing is broken. */
  private static String unbroken(String command) {
    CommandLine cli = tree();
    cli.setUsageHelpWidth(10_000);
    for (String name : command.isEmpty() ? new String[0] : command.split(" ")) {
      cli = cli.getSubcommands().get(name);
    }
    return cli.getUsageMessage();
  }

  private static int indent(String line) {
    return line.length() - line.stripLeading().length();
  }

  @ParameterizedTest
  @MethodSource("everyCommand")
  void helpFitsItsWidthAndBreaksLinesOnlyBetweenWords(String command) {
    String help = help(command);
    assertThat(help.lines()).as("thaw %s --help", command)
        .allSatisfy(line -> assertThat(line.length()).as(line).isLessThanOrEqualTo(HelpFormat.WIDTH));
    // Broken only where there was a space: no word (s3://bucket, ~/.local/share, --no-encrypt) is cut in two.
    assertThat(help.split("\\s+")).as("thaw %s --help", command).containsExactly(unbroken(command).split("\\s+"));
  }

  @ParameterizedTest
  @MethodSource("everyCommand")
  void noLineOfHelpEndsMidSentenceWhileItsNextWordWouldFit(String command) {
    List<String> lines = help(command).lines().toList();
    for (int i = 0; i + 1 < lines.size(); i++) {
      String a = lines.get(i);
      String b = lines.get(i + 1);
      boolean namesOnly = indent(a) <= 6 && !a.strip().contains("  "); // its description starts on the next line
      if (a.isBlank() || b.isBlank() || namesOnly || a.startsWith("Usage:") || a.strip().matches(".*[.:!?]")) {
        continue;
      }
      // b goes on with a's text: further in than a row's names (a description's continuation), or, at the left
      // edge, the next line of the command's description.
      boolean continues = indent(b) > Math.max(indent(a), 6) || indent(a) == indent(b) && (indent(a) > 6 || indent(a) == 0);
      if (continues) {
        String next = b.strip().split(" ")[0];
        assertThat(a.length() + 1 + next.length()).as("thaw %s --help breaks early:%n%s%n%s", command, a, b)
            .isGreaterThan(HelpFormat.WIDTH);
      }
    }
  }

  @ParameterizedTest
  @MethodSource("everyCommand")
  void everyCommandIsSummedUpInOneWholeSentenceForItsParentsCommandList(String command) {
    CommandLine cli = tree();
    for (String name : command.isEmpty() ? new String[0] : command.split(" ")) {
      cli = cli.getSubcommands().get(name);
    }
    String[] description = cli.getCommandSpec().usageMessage().description();
    assertThat(description).as("thaw %s", command).isNotEmpty();
    assertThat(description[0]).as("thaw %s: its first description line, shown in its parent's command list", command)
        .endsWith(".");
  }
}
