package dev.thaw.bench.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import dev.thaw.cli.JsonOut;
import dev.thaw.cli.ThawRun;
import dev.thaw.examples.ortserver.MlpGenerator;
import dev.thaw.examples.ortserver.MlpSpec;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ModelCommandTest {
  @TempDir Path tmp;
  private final ThawRun thaw = new ThawRun();

  private String stdout() {
    return thaw.out().trim();
  }

  private String stderr() {
    return thaw.err().trim();
  }

  @Test
  void generateWithJsonWritesATritonModelDirectoryAndPrintsExactlyOneObject() throws Exception {
    Path repository = tmp.resolve("models");

    assertThat(thaw.run("model", "generate", "--size", "2MiB", "--out", repository.toString(), "--name", "tiny",
        "--seed", "7", "--json")).isZero();

    assertThat(stdout()).startsWith("{").endsWith("}").doesNotContain("\n");
    JsonNode n = JsonOut.MAPPER.readTree(stdout());
    assertThat(n.get("repository").asText()).isEqualTo(repository.toString());
    assertThat(n.get("model").asText()).isEqualTo("tiny");
    assertThat(n.get("files").asInt()).isGreaterThanOrEqualTo(3);
    assertThat(n.get("seconds").asDouble()).isPositive();
    MlpSpec spec = MlpSpec.fromJson(n.get("spec").toString());
    assertThat(spec).isEqualTo(MlpSpec.forSize(2 << 20, 7));
    assertThat(n.get("bytes").asLong()).isGreaterThan(spec.weightBytes());
    assertThat(repository.resolve("tiny/config.pbtxt")).isRegularFile();
    assertThat(repository.resolve("tiny/1/model.onnx")).isRegularFile();
    assertThat(MlpGenerator.readSpec(repository.resolve("tiny"))).isEqualTo(spec);
    assertThat(stderr()).contains("model: generating").contains("generated model tiny");
  }

  @Test
  void generateWithoutJsonPrintsOneSummaryLine() {
    assertThat(thaw.run("model", "generate", "--size", "1m", "--out", tmp.toString())).isZero();

    assertThat(stdout()).startsWith("generated model mlp in " + tmp.resolve("mlp")).contains("MB/s").doesNotContain("\n");
    assertThat(tmp.resolve("mlp/1/model.onnx")).isRegularFile();
  }

  @Test
  void aBadSizeIsOneErrorLineAndAFailureStatus() {
    assertThat(thaw.run("model", "generate", "--size", "lots", "--out", tmp.toString())).isNotZero();

    assertThat(stderr()).startsWith("thaw model generate: error:").contains("not a size: 'lots'").doesNotContain("\n")
        .doesNotContain("Exception");
    assertThat(stdout()).isEmpty();
    assertThat(tmp).isEmptyDirectory();
  }

  @Test
  void anExistingModelIsOneErrorLineNamingIt() throws Exception {
    Files.createDirectories(tmp.resolve("mlp"));

    assertThat(thaw.run("model", "generate", "--size", "1m", "--out", tmp.toString())).isEqualTo(1);

    assertThat(stderr()).startsWith("thaw model generate: error:").contains(tmp.resolve("mlp").toString())
        .contains("already exists").doesNotContain("\n");
    assertThat(tmp.resolve("mlp")).isEmptyDirectory();
  }

  @Test
  void helpListsGenerate() {
    assertThat(thaw.run("model", "--help")).isZero();

    assertThat(stdout()).contains("Usage: thaw model").containsPattern("generate +Write an ONNX multilayer perceptron");
  }
}
