package dev.thaw.cli;

import java.nio.file.Path;
import java.util.Properties;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Parameters;

@Command(name = "profile", mixinStandardHelpOptions = true,
    description = "Access profiles of mounted models.",
    subcommands = ProfileCommand.Save.class)
final class ProfileCommand implements Runnable {
  @picocli.CommandLine.Spec picocli.CommandLine.Model.CommandSpec spec;

  @Override
  public void run() {
    throw new picocli.CommandLine.ParameterException(spec.commandLine(), "a subcommand is required: save");
  }

  @Command(name = "save", mixinStandardHelpOptions = true,
      description = "Save now the access profile a `thaw mount --record-profile` has recorded so far.")
  static final class Save implements Callable<Integer> {
    @Parameters(paramLabel = "MOUNTPOINT")
    Path mountPoint;

    @Override
    public Integer call() throws Exception {
      Path mnt = mountPoint.toAbsolutePath().normalize();
      MountRegistry registry = new MountRegistry();
      Properties before = registry.read(mnt).orElseThrow(() ->
          new IllegalArgumentException("no running thaw mount at " + mnt));
      if (ProcessHandle.of(Long.parseLong(before.getProperty("pid"))).isEmpty()) {
        throw new IllegalArgumentException("the thaw mount process at " + mnt + " is gone (pid " + before.getProperty("pid") + ")");
      }
      String saves = before.getProperty("profileSaves", "0");
      registry.requestProfileSave(mnt);
      long deadline = System.nanoTime() + 30_000_000_000L;
      while (System.nanoTime() < deadline) {
        Properties now = registry.read(mnt).orElseThrow(() -> new IllegalStateException("the mount at " + mnt + " ended"));
        if (!now.getProperty("profileSaves", "0").equals(saves)) {
          if (now.getProperty("profileError") != null) {
            throw new IllegalStateException("the mount at " + mnt + " has no profile to save: " + now.getProperty("profileError"));
          }
          System.out.println(now.getProperty("profile"));
          return 0;
        }
        Thread.sleep(100);
      }
      throw new IllegalStateException("the thaw mount at " + mnt + " did not save its profile within 30 s");
    }
  }
}
