package dev.thaw.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** The {@code thaw} command line. */
@Command(
    name = "thaw",
    mixinStandardHelpOptions = true,
    versionProvider = ThawCommand.Version.class,
    description = {
      "Thaw makes model servers start fast: weights stream on demand from content-addressed chunks, warmed processes "
          + "are restored instead of booted, and replicas go where the bytes already are.",
      "",
      "Models are named NAME[:TAG] at an origin (--origin or $THAW_ORIGIN), URI#NAME[:TAG], or an s3:// or file:// "
          + "URI of ordinary files read in direct mode."
    },
    subcommands = CommandLine.HelpCommand.class)
public final class ThawCommand implements Runnable {
  /**
   * The commands, in help order. {@link Main} registers only the one being run (all of them for help): picocli
   * reflects over every registered command at start, and a mount must be ready in milliseconds.
   */
  static final java.util.Map<String, Class<?>> COMMANDS = orderedCommands();

  private static java.util.Map<String, Class<?>> orderedCommands() {
    java.util.Map<String, Class<?>> m = new java.util.LinkedHashMap<>();
    m.put("push", PushCommand.class);
    m.put("ls", LsCommand.class);
    m.put("cat", CatCommand.class);
    m.put("mount", MountCommand.class);
    m.put("unmount", UnmountCommand.class);
    m.put("profile", ProfileCommand.class);
    m.put("gc", GcCommand.class);
    m.put("triton", TritonCommand.class);
    m.put("attach", AttachCommand.class);
    m.put("run", RunCommand.class);
    m.put("checkpoint", CheckpointCommand.class);
    m.put("restore", RestoreCommand.class);
    m.put("placement", PlacementCommand.class);
    m.put("sidecar", SidecarCommand.class);
    return java.util.Collections.unmodifiableMap(m);
  }

  /** The product's commands that {@link CommandPlugin}s add subcommands to. */
  static final java.util.Set<String> OPEN = java.util.Set.of("placement");

  /**
   * The plugins' commands that a user may know from the README, and where they are: asked for where no plugin
   * brings them, each is one error line that says so, rather than picocli's "Unmatched argument".
   */
  static final java.util.Map<String, String> ELSEWHERE = elsewhere();

  private static java.util.Map<String, String> elsewhere() {
    String bench = "it comes with Thaw's benchmarks (the bench module), which the installed thaw leaves out; run it "
        + "from a checkout of Thaw's repository as ./thaw ";
    java.util.Map<String, String> m = new java.util.HashMap<>();
    for (String c : new String[] {"model", "demo", "bench", "placement bench", "placement simulate"}) {
      m.put(c, bench + c);
    }
    return java.util.Collections.unmodifiableMap(m);
  }

  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Override
  public void run() {
    throw new CommandLine.ParameterException(spec.commandLine(), "a command is required (see thaw --help)");
  }

  /** Thaw's version, from the jar's manifest (the build's version when run from classes). */
  static String version() {
    return dev.thaw.sidecar.Sidecar.version(); // one jar: the CLI's and the service's are the same
  }

  static final class Version implements CommandLine.IVersionProvider {
    @Override
    public String[] getVersion() {
      return new String[] {"thaw " + version(), "Java " + Runtime.version()};
    }
  }
}
