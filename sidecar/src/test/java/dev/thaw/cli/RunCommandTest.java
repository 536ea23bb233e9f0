package dev.thaw.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code thaw run}: a command as PID 1 of its own PID namespace, its output on files, its exit status passed on. */
class RunCommandTest {
  @TempDir Path tmp;
  private final ThawRun thaw = new ThawRun();

  @Test
  void theCommandIsPid1OfItsNamespaceWithItsOutputOnFilesAndItsExitStatusPassedOn() throws Exception {
    Path o = tmp.resolve("server.out");
    Path e = tmp.resolve("server.err");
    int status = thaw.run("run", "--stdout", o.toString(), "--stderr", e.toString(), "--json", "--",
        "sh", "-c", "echo pid=$$; ls /proc | grep -c '^[0-9]'; echo oops >&2; exit 3");
    assertThat(status).as(thaw.err()).isEqualTo(3);
    assertThat(Files.readAllLines(o)).as("PID 1, and /proc shows only its own namespace (sh and ls, grep)")
        .first().isEqualTo("pid=1");
    assertThat(Integer.parseInt(Files.readAllLines(o).get(1).strip())).isLessThanOrEqualTo(4);
    assertThat(Files.readString(e)).contains("oops");
    JsonNode j = new ObjectMapper().readTree(thaw.out());
    assertThat(j.get("pid").asLong()).isPositive();
    assertThat(j.get("stdout").asText()).isEqualTo(o.toAbsolutePath().toString());
    assertThat(thaw.err()).contains("PID 1 in its namespace").contains("exited with status 3");
  }

  @Test
  void withoutFilesNamedItsOutputGoesUnderTheStateDirectoryAndItSaysWhere() throws Exception {
    String home = System.getProperty("user.home");
    System.setProperty("user.home", tmp.toString());
    try {
      assertThat(thaw.run("run", "--json", "--", "sh", "-c", "echo hello")).as(thaw.err()).isZero();
    } finally {
      System.setProperty("user.home", home);
    }
    String state = System.getenv("XDG_STATE_HOME");
    Path dir = (state != null && !state.isBlank() ? Path.of(state) : tmp.resolve(".local/state")).resolve("thaw/run");
    Path out = Path.of(new ObjectMapper().readTree(thaw.out()).get("stdout").asText());
    assertThat(out.getParent()).isEqualTo(dir);
    assertThat(out.getFileName().toString()).startsWith("sh-").endsWith(".out");
    assertThat(Files.readString(out)).isEqualTo("hello\n");
    assertThat(thaw.err()).contains(out.toString());
  }

  @Test
  void withoutACommandItIsABadCommandLine() {
    assertThat(thaw.run("run", "--stdout", tmp.resolve("x").toString())).isEqualTo(2);
    assertThat(thaw.err()).startsWith("thaw run: error:").contains("CMD");
  }
}
