package dev.thaw.cli;

import java.util.logging.Level;
import java.util.logging.LogManager;
import java.util.logging.Logger;
import picocli.CommandLine;

/** Entry point of the {@code thaw} command line. Errors are one line on stderr; the exit status is 1. */
public final class Main {
  private Main() {}

  public static void main(String[] args) {
    System.exit(run(args));
  }

  static int run(String... args) {
    configureLogging();
    CommandLine cli = new CommandLine(new ThawCommand());
    Class<?> only = args.length > 0 ? ThawCommand.COMMANDS.get(args[0]) : null;
    for (var c : ThawCommand.COMMANDS.entrySet()) {
      if (only == null || c.getValue() == only) {
        cli.addSubcommand(c.getKey(), c.getValue());
      }
    }
    HelpFormat.applyTo(cli);
    cli.setExecutionExceptionHandler((ex, cmd, parsed) -> {
      String message = ex.getMessage() == null ? ex.toString() : ex.getMessage();
      cmd.getErr().println(cmd.getCommandSpec().qualifiedName() + ": error: " + message);
      if (System.getenv("THAW_DEBUG") != null) {
        ex.printStackTrace(cmd.getErr());
      }
      return 1;
    });
    // A bad option value or a missing argument is one line too, with where to look, not the whole usage text.
    cli.setParameterExceptionHandler((ex, argv) -> {
      CommandLine cmd = ex.getCommandLine();
      cmd.getErr().println(cmd.getCommandSpec().qualifiedName() + ": error: " + ex.getMessage()
          + " (see " + cmd.getCommandSpec().qualifiedName() + " --help)");
      return 2;
    });
    return cli.execute(args);
  }

  private static void configureLogging() {
    // Store events are one line each on stderr; warnings and above unless THAW_LOG asks for more.
    LogManager.getLogManager().reset();
    Logger root = Logger.getLogger("");
    java.util.logging.ConsoleHandler h = new java.util.logging.ConsoleHandler();
    h.setFormatter(new java.util.logging.SimpleFormatter() {
      @Override
      public String format(java.util.logging.LogRecord r) {
        return "thaw: " + r.getLevel().getName().toLowerCase(java.util.Locale.ROOT) + ": " + formatMessage(r) + System.lineSeparator();
      }
    });
    Level level = Level.parse(System.getenv().getOrDefault("THAW_LOG", "WARNING").toUpperCase(java.util.Locale.ROOT));
    h.setLevel(level);
    root.setLevel(level);
    root.addHandler(h);
    System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", "warn");
    System.setProperty("org.slf4j.simpleLogger.logFile", "System.err");
  }
}
