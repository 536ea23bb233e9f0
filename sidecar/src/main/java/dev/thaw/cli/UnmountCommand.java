package dev.thaw.cli;

import dev.thaw.fuse.MountTable;
import java.nio.file.Path;
import java.util.Optional;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Parameters;

@Command(name = "unmount", mixinStandardHelpOptions = true,
    description = {
      "Unmount a Thaw mount, also while files are still open.",
      "A lazy unmount: open files keep reading until closed. Waits for the mount's `thaw mount` process to save its "
          + "profile and exit. Clears stale mounts too."
    })
final class UnmountCommand implements Callable<Integer> {
  @Parameters(paramLabel = "MOUNTPOINT")
  Path mountPoint;

  @Override
  public Integer call() throws Exception {
    Path mnt = mountPoint.toAbsolutePath().normalize();
    if (MountTable.find(mnt).isEmpty()) {
      throw new IllegalArgumentException(mnt + " is not mounted");
    }
    MountRegistry registry = new MountRegistry();
    Optional<ProcessHandle> owner = registry.read(mnt)
        .flatMap(p -> ProcessHandle.of(Long.parseLong(p.getProperty("pid"))));
    if (owner.isPresent()) {
      // Its own process unmounts (lazily, open files keep working), saves its profile and exits.
      registry.requestUnmount(mnt);
      try {
        owner.get().onExit().get(30, java.util.concurrent.TimeUnit.SECONDS);
      } catch (java.util.concurrent.TimeoutException e) {
        System.err.println("thaw unmount: warning: thaw mount process " + owner.get().pid() + " is still running after 30 s");
      }
    }
    if (MountTable.find(mnt).isPresent()) {
      MountTable.unmount(mnt, true); // stale, foreign, or its process did not finish
    }
    registry.remove(mnt);
    System.err.println("thaw unmount: unmounted " + mnt);
    return 0;
  }
}
