package dev.thaw.agent;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The agent in an application that does not use the libraries it knows: it says one line, loads none of the
 * application's classes, and leaves the application's own Byte Buddy alone.
 */
class AgentStartTest {
  @TempDir
  Path work;

  @Test
  void anApplicationWithoutTheLibrariesRunsUnchangedAndTheAgentSaysOneLine() throws Exception {
    Path classes = work.resolve("classes.log");
    AgentProcess p = AgentProcess.run(work, "", Map.of(), List.of("-Xlog:class+load=info:file=" + classes),
        "dev.thaw.agent.apps.HelloApp");

    assertThat(p.exit()).isZero();
    assertThat(p.out()).isEqualTo("hello from the application\n");
    assertThat(p.err().lines().toList()).singleElement().asString()
        .isEqualTo("thaw-agent: started; sidecar http://127.0.0.1:7070; 0 model locations mapped");
    String loaded = Files.readString(classes);
    assertThat(loaded).as("ONNX Runtime is on the class path, unused: the agent must not load it")
        .doesNotContain("ai.onnxruntime.");
    assertThat(loaded).as("the agent's Byte Buddy stays in its own class loader")
        .doesNotContain(" net.bytebuddy.").doesNotContain("source: jrt:/dev.thaw");
  }

  @Test
  void anApplicationWithItsOwnByteBuddyUsesItAsUsual() throws Exception {
    AgentProcess p = AgentProcess.run(work, "", Map.of(), List.of(), "dev.thaw.agent.apps.OwnByteBuddyApp");

    assertThat(p.exit()).as(p.err()).isZero();
    assertThat(p.out()).startsWith("made by the application's Byte Buddy\nByte Buddy from ")
        .contains("byte-buddy-").doesNotContain("thaw-agent.jar");
  }

  @Test
  void aBadOptionIsTheAgentsFailureAloneSaidInOneLine() throws Exception {
    AgentProcess p = AgentProcess.run(work, "colour=blue", Map.of(), List.of(), "dev.thaw.agent.apps.HelloApp");

    assertThat(p.exit()).isZero();
    assertThat(p.out()).isEqualTo("hello from the application\n");
    assertThat(p.err().strip()).isEqualTo("thaw-agent: not started, the application runs without it: "
        + "java.lang.IllegalArgumentException: unknown agent option 'colour' (sidecar, map)");
  }
}
