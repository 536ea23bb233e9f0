package dev.thaw.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayOutputStream;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** scripts/lib.sh, which ./thaw, scripts/test and scripts/install-criu.sh install packages with. */
class SetupScriptsTest {
  private static final Path LIB = Path.of("..", "scripts", "lib.sh").toAbsolutePath().normalize();

  @Test
  void anAptGetWaitsWhileAnotherHoldsThePackageManagersLockAndSaysWhoHoldsIt() throws Exception {
    // As unattended-upgrades does on a freshly booted machine. dpkg and apt lock with fcntl(2), as FileChannel.lock
    // does, so this JVM holds the very lock they take.
    try (FileChannel channel = FileChannel.open(Path.of("/var/lib/dpkg/lock-frontend"), StandardOpenOption.WRITE)) {
      FileLock lock = channel.lock();
      // Installs nothing (bash is there; --no-upgrade), but takes the lock like any install.
      Process apt = new ProcessBuilder("bash", "-c", ". \"$0\" && thaw_apt_get install -y -qq --no-upgrade bash",
          LIB.toString()).redirectErrorStream(true).start();
      ByteArrayOutputStream output = new ByteArrayOutputStream();
      Thread reader = Thread.ofVirtual().start(() -> {
        try {
          apt.getInputStream().transferTo(output);
        } catch (java.io.IOException e) {
          // the process ended
        }
      });
      try {
        assertThat(apt.waitFor(3, TimeUnit.SECONDS)).as("still waiting for the lock: " + output).isFalse();
      } finally {
        lock.release();
      }
      assertThat(apt.waitFor(120, TimeUnit.SECONDS)).isTrue();
      reader.join();
      String said = output.toString(StandardCharsets.UTF_8);
      assertThat(apt.exitValue()).as(said).isZero();
      assertThat(said).contains("thaw: waiting for process " + ProcessHandle.current().pid()
          + " (java) to release the package manager's lock (up to 10 minutes)")
          .contains("thaw: the package manager's lock is free; going on");
    }
  }
}
