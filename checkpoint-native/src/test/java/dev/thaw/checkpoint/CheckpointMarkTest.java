package dev.thaw.checkpoint;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.time.Instant;
import org.junit.jupiter.api.Test;

/** The word a checkpoint leaves for `thaw run` that its server was dumped, not crashed. */
class CheckpointMarkTest {
  // a PID no process has here (above the kernel's pid_max ceiling): only a name for the mark
  static final long PID = 4_999_999_999L;

  @Test
  void aMarkLeftForTheProcessIsTakenOnce() {
    Instant started = Instant.now().minusSeconds(1);
    Snapshots.markCheckpointed(PID, "mlp-server");

    assertThat(Snapshots.checkpointedAs(PID, started)).hasValue("mlp-server");
    assertThat(Snapshots.checkpointedAs(PID, started)).isEmpty();
  }

  @Test
  void aMarkOlderThanTheProcessIsAnotherProcessWithTheSamePidAndIsDropped() throws Exception {
    Snapshots.markCheckpointed(PID, "long-gone");
    Path mark = Path.of(System.getenv().getOrDefault("TMPDIR", "/tmp"), "thaw-checkpointed", Long.toString(PID));
    Files.setLastModifiedTime(mark, FileTime.from(Instant.now().minusSeconds(3600)));

    assertThat(Snapshots.checkpointedAs(PID, Instant.now().minusSeconds(1))).isEmpty();
    assertThat(mark).doesNotExist();
  }
}
