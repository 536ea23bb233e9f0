package dev.thaw.placement.sim;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import dev.thaw.placement.Model;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Traces from the generic CSV format, from Azure's LLM traces, and made up. */
class TracesTest {
  @TempDir Path tmp;

  @Test
  void theGenericFormatTakesEpochSecondsOrDatesInAnyColumnOrderAndIgnoresOtherColumns() throws Exception {
    Path f = Files.writeString(tmp.resolve("t.csv"), """
        region,Model,timestamp,service_s
        eu,llama,1700000010.5,2.5
        eu,mistral,1700000000,
        us,llama,1700000004.25,1
        """);
    Trace t = Traces.readCsv(f);
    assertThat(t.modelIdsFromTrace()).isTrue();
    assertThat(t.requests()).extracting(Trace.Request::time).containsExactly(0.0, 4.25, 10.5);
    assertThat(t.requests()).extracting(Trace.Request::model).containsExactly("mistral", "llama", "llama");
    assertThat(t.requests().get(0).serviceSeconds()).isNaN();
    assertThat(t.requests().get(2).serviceSeconds()).isEqualTo(2.5);
    assertThat(t.models()).containsExactly("llama", "mistral");

    Path dates = Files.writeString(tmp.resolve("d.csv"), """
        timestamp,model
        2023-11-16 18:17:03.9799600,a
        2023-11-16 18:17:05,b
        """);
    assertThat(Traces.readCsv(dates).requests().get(1).time()).isCloseTo(1.02004, within(1e-12));
  }

  @Test
  void aBadLineIsAnErrorNamingTheFileTheLineAndTheValue() throws Exception {
    Path f = Files.writeString(tmp.resolve("bad.csv"), "timestamp,model\n1700000000,a\nyesterday,b\n");
    assertThatThrownBy(() -> Traces.readCsv(f)).hasMessageContaining("bad.csv line 3")
        .hasMessageContaining("'yesterday'");
    Path noModel = Files.writeString(tmp.resolve("nomodel.csv"), "timestamp,tokens\n1,2\n");
    assertThatThrownBy(() -> Traces.readCsv(noModel)).hasMessageContaining("must name the columns timestamp and model");
  }

  @Test
  void azureArrivalsGetModelsByZipfPopularityTheSameForTheSameSeed() throws Exception {
    StringBuilder csv = new StringBuilder("TIMESTAMP,ContextTokens,GeneratedTokens\n");
    for (int i = 0; i < 4000; i++) {
      csv.append(String.format("2023-11-16 18:%02d:%02d.%07d,%d,%d%n", i / 3600 % 60 + 17, i / 60 % 60, i % 60, 100, 10));
    }
    Path f = Files.writeString(tmp.resolve("azure.csv"), csv.toString());
    Trace a = Traces.read(f, 10, 1.0, 7);
    Trace b = Traces.read(f, 10, 1.0, 7);
    assertThat(a.modelIdsFromTrace()).isFalse();
    assertThat(a.requests()).isEqualTo(b.requests());
    Map<String, Long> counts = a.requests().stream().collect(Collectors.groupingBy(Trace.Request::model,
        Collectors.counting()));
    // Zipf with exponent 1 over 10 models: model-0 gets 1/H(10) = 34 %, model-9 3.4 %
    assertThat(counts.get("model-0") / 4000.0).isCloseTo(0.341, within(0.03));
    assertThat(counts.get("model-9") / 4000.0).isCloseTo(0.034, within(0.015));
    assertThat(a.requests().getFirst().serviceSeconds()).as("0.2 s + 100 x 1 ms + 10 x 20 ms")
        .isCloseTo(0.5, within(1e-9));
  }

  @Test
  void aSyntheticTraceHasItsCountDurationAndBurstsAndIsReproducible() {
    Trace t = Traces.synthetic(30_000, 21 * 86_400, 50, 1.2, 0.05, 3);
    assertThat(t.requests()).hasSize(30_000);
    assertThat(t.duration()).isCloseTo(21 * 86_400, within(0.2 * 21 * 86_400));
    assertThat(t.requests()).isEqualTo(Traces.synthetic(30_000, 21 * 86_400, 50, 1.2, 0.05, 3).requests());
    Map<String, Long> counts = t.requests().stream().collect(Collectors.groupingBy(Trace.Request::model,
        Collectors.counting()));
    assertThat(counts.get("model-0")).isGreaterThan(counts.get("model-10"));
    // bursts: some minute holds far more than the mean of ~1 request per minute
    Map<Long, Long> perMinute = t.requests().stream().collect(Collectors.groupingBy(r -> (long) (r.time() / 60),
        Collectors.counting()));
    assertThat(perMinute.values().stream().mapToLong(Long::longValue).max().orElseThrow()).isGreaterThanOrEqualTo(5);
    assertThat(Traces.synthetic(100, 3600, 3, 1.0, 0, 1).requests()).extracting(Trace.Request::model)
        .allMatch(m -> m.matches("model-[0-2]"));
  }

  @Test
  void aSideFileGivesModelsTheirSizesAndDefaultsWhatItLeavesOut() throws Exception {
    Path f = Files.writeString(tmp.resolve("sizes.csv"), """
        weights_gb,model,boot_s,gpus,owner
        14,llama-7b,45,1,x
        140,llama-70b,,4,y
        """);
    Map<String, Model> given = ModelSizes.read(f);
    assertThat(given.keySet()).containsExactly("llama-7b", "llama-70b");
    Model small = given.get("llama-7b");
    assertThat(small.weightBytes()).isEqualTo(14_000_000_000L);
    assertThat(small.bootSeconds()).isEqualTo(45);
    assertThat(small.gpusPerReplica()).isEqualTo(1);
    assertThat(small.snapshotBytes()).containsEntry("H100", 15_400_000_000L);
    Model big = given.get("llama-70b");
    assertThat(big.bootSeconds()).as("20 s + 0.5 s per GB").isEqualTo(90);
    assertThat(big.gpusPerReplica()).isEqualTo(4);

    Trace t = new Trace(java.util.List.of(new Trace.Request(0, "llama-7b", Double.NaN),
        new Trace.Request(1, "other", Double.NaN)), true);
    assertThat(Simulation.modelsFor(t, 7, given)).containsExactly(small, SyntheticCluster.model("other", 7));
  }

  @Test
  void aBadSideFileIsAnErrorNamingTheLine() throws Exception {
    Path noHeader = Files.writeString(tmp.resolve("a.csv"), "model,size\nx,1\n");
    assertThatThrownBy(() -> ModelSizes.read(noHeader)).hasMessageContaining("model and weights_gb");
    Path bad = Files.writeString(tmp.resolve("b.csv"), "model,weights_gb\nx,1\ny,lots\n");
    assertThatThrownBy(() -> ModelSizes.read(bad)).hasMessageContaining("line 3").hasMessageContaining("lots");
    Path twice = Files.writeString(tmp.resolve("c.csv"), "model,weights_gb\nx,1\nx,2\n");
    assertThatThrownBy(() -> ModelSizes.read(twice)).hasMessageContaining("line 3").hasMessageContaining("twice");
  }
}
