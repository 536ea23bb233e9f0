package dev.thaw.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** The {@code thaw} command line. */
@Command(
    name = "thaw",
    mixinStandardHelpOptions = true,
    versionProvider = ThawCommand.Version.class,
    description = {
      "Thaw makes model servers start fast: weights stream on demand from content-addressed chunks,",
      "warmed processes are restored instead of booted, and replicas go where the bytes already are.",
      "",
      "Models are named NAME[:TAG] at an origin (--origin or $THAW_ORIGIN), URI#NAME[:TAG], or an",
      "s3:// or file:// URI of ordinary files read in direct mode."
    },
    subcommands = {
      PushCommand.class,
      LsCommand.class,
      CatCommand.class,
      GcCommand.class,
      MountCommand.class,
      UnmountCommand.class,
      ProfileCommand.class,
      DemoCommand.class,
      BenchCommand.class,
      CommandLine.HelpCommand.class
    })
public final class ThawCommand implements Runnable {
  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Override
  public void run() {
    throw new CommandLine.ParameterException(spec.commandLine(), "a command is required (see thaw --help)");
  }

  static final class Version implements CommandLine.IVersionProvider {
    @Override
    public String[] getVersion() {
      String v = ThawCommand.class.getPackage().getImplementationVersion();
      return new String[] {"thaw " + (v == null ? "0.1.0-SNAPSHOT" : v), "Java " + Runtime.version()};
    }
  }
}
