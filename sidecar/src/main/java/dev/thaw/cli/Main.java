package dev.thaw.cli;

import java.util.ServiceLoader;
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
    CommandLine cli = commandLine(args.length > 0 ? args[0] : null);
    String elsewhere = elsewhere(cli, args);
    if (elsewhere != null) { // before picocli parses: a --help after the command would otherwise print thaw's help
      System.err.println(elsewhere);
      return 2;
    }
    return cli.execute(args);
  }

  /**
   * The one line that says where {@code thaw ARGS} is, when it asks for a plugin's command that no plugin here adds
   * ({@link ThawCommand#ELSEWHERE}); else null.
   */
  private static String elsewhere(CommandLine cli, String... args) {
    if (args.length == 0) {
      return null;
    }
    CommandLine parent = cli;
    String path = args[0];
    if (args.length > 1 && ThawCommand.OPEN.contains(args[0]) && cli.getSubcommands().containsKey(args[0])) {
      parent = cli.getSubcommands().get(args[0]);
      path = args[0] + " " + args[1];
    }
    String name = path.substring(path.lastIndexOf(' ') + 1);
    String where = ThawCommand.ELSEWHERE.get(path);
    return where == null || parent.getSubcommands().containsKey(name) ? null
        : "thaw " + path + ": error: not in this installation: " + where;
  }

  /** The command line that runs {@code thaw FIRST ...}, laid out and with its errors one line each. */
  static CommandLine commandLine(String first) {
    return withLayoutAndErrors(commands(first));
  }

  /**
   * The commands {@code thaw FIRST ...} may run: only FIRST when it is one of the product's (every one for help, FIRST
   * null), as picocli reflects over every registered command at start and a mount must be ready in milliseconds.
   * The {@link CommandPlugin}s are looked for only where they may add the command asked for, for the same reason: a
   * look-up opens every jar on the class path.
   */
  static CommandLine commands(String first) {
    CommandLine cli = new CommandLine(new ThawCommand());
    Class<?> only = first == null ? null : ThawCommand.COMMANDS.get(first);
    for (var c : ThawCommand.COMMANDS.entrySet()) {
      if (only == null || c.getValue() == only) {
        cli.addSubcommand(c.getKey(), c.getValue());
      }
    }
    if (only == null || ThawCommand.OPEN.contains(first)) {
      String under = only == null ? "" : first + " "; // an open command: its own subcommands only
      for (CommandPlugin plugin : ServiceLoader.load(CommandPlugin.class)) {
        plugin.commands().forEach((path, command) -> {
          if (path.startsWith(under)) {
            add(cli, path, command);
          }
        });
      }
    }
    return cli;
  }

  /** {@code cli} with {@link HelpFormat}'s layout, and every error in one line on stderr. */
  private static CommandLine withLayoutAndErrors(CommandLine cli) {
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
    return cli;
  }

  /** Adds a plugin's command at {@code path} ("demo", "placement simulate"). */
  private static void add(CommandLine cli, String path, Class<?> command) {
    String[] names = path.split(" ");
    CommandLine parent = cli;
    for (int i = 0; i < names.length - 1; i++) {
      parent = parent.getSubcommands().get(names[i]);
      if (parent == null) {
        throw new IllegalStateException("the command plugin " + command.getName() + " adds " + path + ", but thaw "
            + "has no command " + String.join(" ", java.util.Arrays.copyOf(names, i + 1)));
      }
    }
    parent.addSubcommand(names[names.length - 1], command);
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
