package dev.thaw.cli;

import static org.assertj.core.api.Assertions.assertThat;

import dev.thaw.sidecar.Sidecar;
import dev.thaw.sidecar.SidecarConfig;
import io.micronaut.context.ApplicationContext;
import io.micronaut.runtime.server.EmbeddedServer;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/** {@code thaw sidecar}'s flags become the settings the service runs with, over its defaults. */
class SidecarCommandTest {
  @TempDir Path tmp;

  @Test
  void flagsOverrideTheDefaultsAndWhatIsNotGivenKeepsThem() {
    SidecarCommand c = new SidecarCommand();
    new CommandLine(c).parseArgs("--api-port", "0", "--mount-root", tmp.resolve("m").toString(), "--cache",
        tmp.resolve("c").toString(), "--cache-size", "2g", "--origin", "file:///models");
    try (ApplicationContext sidecar = Sidecar.start(c.properties())) {
      SidecarConfig config = sidecar.getBean(SidecarConfig.class);
      assertThat(config.getMountRoot()).isEqualTo(tmp.resolve("m").toAbsolutePath());
      assertThat(config.getCacheDir()).isEqualTo(tmp.resolve("c").toAbsolutePath());
      assertThat(config.getCacheMaxBytes()).isEqualTo(2L << 30);
      assertThat(config.getOrigin()).isEqualTo("file:///models");
      assertThat(config.getParallelism()).as("a default").isEqualTo(16);
      EmbeddedServer server = sidecar.getBean(EmbeddedServer.class);
      assertThat(server.getHost()).as("loopback unless --api-host").isIn("127.0.0.1", "localhost");
      assertThat(server.getPort()).as("--api-port 0: any free port").isNotEqualTo(7070).isPositive();
    }
  }

  @Test
  void aPortOutOfRangeIsRefused() {
    SidecarCommand c = new SidecarCommand();
    new CommandLine(c).parseArgs("--api-port", "70000");
    org.assertj.core.api.Assertions.assertThatThrownBy(c::properties)
        .hasMessageContaining("--api-port must be 0 to 65535");
  }

  @Test
  void settingsThatCannotWorkStopTheStartWithOneLineSayingWhy() {
    var noToken = java.util.Map.<String, Object>of("thaw.api.port", -1, "thaw.mount-root", tmp.resolve("m").toString(),
        "thaw.cache-dir", tmp.resolve("c").toString(), "thaw.cluster.etcd", "http://127.0.0.1:1");
    org.assertj.core.api.Assertions.assertThatThrownBy(() -> Sidecar.start(noToken))
        .isInstanceOf(IllegalStateException.class)
        .hasMessageStartingWith("cluster mode needs the cluster token: set thaw.cluster.token-file");
    var settings = java.util.Map.<String, Object>of("thaw.api.port", -1, "thaw.mount-root", tmp.resolve("m").toString(),
        "thaw.cache-dir", tmp.resolve("c").toString());
    try (ApplicationContext first = Sidecar.start(settings)) {
      org.assertj.core.api.Assertions.assertThatThrownBy(() -> Sidecar.start(settings))
          .as("a second sidecar on the same cache").hasMessageContaining("is in use by pid");
      assertThat(first.isRunning()).isTrue();
    }
  }
}
