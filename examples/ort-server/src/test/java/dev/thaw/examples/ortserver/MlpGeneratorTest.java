package dev.thaw.examples.ortserver;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import com.google.protobuf.TextFormat;
import dev.thaw.examples.onnx.ModelProto;
import dev.thaw.examples.onnx.StringStringEntryProto;
import dev.thaw.examples.onnx.TensorProto;
import dev.thaw.triton.protocol.DataType;
import dev.thaw.triton.protocol.ModelConfig;
import java.io.IOException;
import java.nio.FloatBuffer;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

class MlpGeneratorTest {
  private static final long MIB = 1L << 20;
  private static final long GIB = 1L << 30;

  @TempDir Path repo;

  static Stream<MlpSpec> smallModels() {
    return Stream.of(
        MlpSpec.forSize(4 * MIB, 42),
        MlpSpec.forSize(3_000_001, 7),
        // Odd widths, and shards so small that the tensors spread over several files.
        new MlpSpec(5, 7, 33, 3, 5, 16 << 10));
  }

  @ParameterizedTest
  @MethodSource("smallModels")
  void onnxRuntimeAnswersWhatTheReferenceComputes(MlpSpec spec) throws Exception {
    MlpGenerator.generate(repo, "mlp", spec);
    OrtEnvironment env = OrtEnvironment.getEnvironment();
    // From the path, so that ONNX Runtime resolves the external data files beside model.onnx.
    try (OrtSession.SessionOptions options = new OrtSession.SessionOptions();
        OrtSession session = env.createSession(repo.resolve("mlp/1/model.onnx").toString(), options)) {
      assertThat(session.getMetadata().getCustomMetadata()).containsEntry("thaw.mlp.spec", spec.toJson());
      for (int batch : new int[] {1, 3}) {
        float[] input = spec.sampleInput(batch);
        float[] expected = spec.reference(input, batch);
        float[] actual = run(env, session, input, batch, spec);
        assertThat(actual).hasSameSizeAs(expected).hasSize(batch * spec.outputDim());
        for (int i = 0; i < expected.length; i++) {
          assertThat(actual[i]).as("output %d of batch %d", i, batch)
              .isCloseTo(expected[i], within(1e-4f + 1e-3f * Math.abs(expected[i])));
        }
        // The check means something only if the signal survived every layer.
        assertThat(rms(expected)).isBetween(0.05, 20.0);
      }
    }
  }

  private static float[] run(OrtEnvironment env, OrtSession session, float[] input, int batch, MlpSpec spec)
      throws Exception {
    try (OnnxTensor x = OnnxTensor.createTensor(env, FloatBuffer.wrap(input), new long[] {batch, spec.inputDim()});
        OrtSession.Result result = session.run(Map.of(MlpGenerator.INPUT, x))) {
      OnnxTensor y = (OnnxTensor) result.get(MlpGenerator.OUTPUT).orElseThrow();
      assertThat(y.getInfo().getShape()).containsExactly(batch, spec.outputDim());
      float[] out = new float[batch * spec.outputDim()];
      y.getFloatBuffer().get(out);
      return out;
    }
  }

  private static double rms(float[] v) {
    double s = 0;
    for (float f : v) {
      s += (double) f * f;
    }
    return Math.sqrt(s / v.length);
  }

  @Test
  void theSameSeedWritesByteIdenticalFilesAndAnotherSeedOtherWeights() throws Exception {
    MlpSpec spec = new MlpSpec(42, 16, 64, 3, 4, 40 << 10);
    MlpGenerator.generate(repo.resolve("a"), "mlp", spec);
    MlpGenerator.generate(repo.resolve("b"), "mlp", spec);
    MlpGenerator.generate(repo.resolve("c"), "mlp", new MlpSpec(43, 16, 64, 3, 4, 40 << 10));

    Map<String, byte[]> a = contents(repo.resolve("a/mlp"));
    Map<String, byte[]> b = contents(repo.resolve("b/mlp"));
    Map<String, byte[]> c = contents(repo.resolve("c/mlp"));
    assertThat(a.keySet()).hasSizeGreaterThan(3).isEqualTo(b.keySet()).isEqualTo(c.keySet());
    for (String file : a.keySet()) {
      assertThat(b.get(file)).as(file).isEqualTo(a.get(file));
      if (file.endsWith(".bin")) {
        assertThat(c.get(file)).as(file).hasSameSizeAs(a.get(file)).isNotEqualTo(a.get(file));
      }
    }
    assertThat(spec.sampleInput(2)).isNotEqualTo(new MlpSpec(43, 16, 64, 3, 4, 40 << 10).sampleInput(2));
  }

  private static Map<String, byte[]> contents(Path dir) throws IOException {
    try (Stream<Path> files = Files.walk(dir)) {
      return files.filter(Files::isRegularFile).collect(Collectors.toMap(p -> dir.relativize(p).toString(), p -> {
        try {
          return Files.readAllBytes(p);
        } catch (IOException e) {
          throw new IllegalStateException(e);
        }
      }));
    }
  }

  @Test
  void everyTensorIsExternalPageAlignedAndInsideOneShardOfAtMostMaxShardBytes() throws Exception {
    MlpSpec spec = new MlpSpec(5, 7, 33, 3, 5, 16 << 10);
    long written = MlpGenerator.generate(repo, "mlp", spec);
    Path version = repo.resolve("mlp/1");
    ModelProto model = ModelProto.parseFrom(Files.readAllBytes(version.resolve("model.onnx")));

    assertThat(model.getIrVersion()).isEqualTo(8);
    assertThat(model.getProducerName()).isEqualTo("thaw");
    assertThat(model.getOpsetImportList()).singleElement()
        .satisfies(o -> assertThat(o.getDomain()).isEmpty())
        .satisfies(o -> assertThat(o.getVersion()).isEqualTo(17));
    assertThat(model.getGraph().getInitializerCount()).isEqualTo(2 * (spec.hiddenLayers() + 1));
    long tensorBytes = 0;
    for (TensorProto t : model.getGraph().getInitializerList()) {
      Map<String, String> ext = t.getExternalDataList().stream()
          .collect(Collectors.toMap(StringStringEntryProto::getKey, StringStringEntryProto::getValue));
      long elements = t.getDimsList().stream().mapToLong(Long::longValue).reduce(1, (x, y) -> x * y);
      long offset = Long.parseLong(ext.get("offset"));
      long length = Long.parseLong(ext.get("length"));
      Path file = version.resolve(ext.get("location"));
      assertThat(t.getDataLocation()).isEqualTo(TensorProto.DataLocation.EXTERNAL);
      assertThat(t.getDataType()).isEqualTo(TensorProto.DataType.FLOAT_VALUE);
      assertThat(t.hasRawData()).isFalse();
      assertThat(ext.get("location")).matches("weights-\\d{5}-of-\\d{5}\\.bin");
      assertThat(offset % 4096).as(t.getName()).isZero();
      assertThat(length).isEqualTo(4 * elements);
      assertThat(offset + length).isLessThanOrEqualTo(Files.size(file));
      tensorBytes += length;
    }
    assertThat(tensorBytes).isEqualTo(spec.weightBytes());

    List<Path> shards;
    try (Stream<Path> s = Files.list(version)) {
      shards = s.filter(p -> p.getFileName().toString().endsWith(".bin")).sorted().toList();
    }
    assertThat(shards).hasSizeGreaterThan(2);
    assertThat(shards.getLast().getFileName()).hasToString(String.format("weights-%05d-of-%05d.bin", shards.size(), shards.size()));
    long total = Files.size(version.resolve("model.onnx")) + Files.size(repo.resolve("mlp/config.pbtxt"));
    for (Path shard : shards) {
      assertThat(Files.size(shard)).isLessThanOrEqualTo(spec.maxShardBytes());
      total += Files.size(shard);
    }
    assertThat(written).isEqualTo(total);
  }

  @Test
  void theSpecRoundTripsThroughTheModelAndThroughJson() throws Exception {
    MlpSpec spec = new MlpSpec(-3, 9, 32, 2, 3, 1 << 20);
    MlpGenerator.generate(repo, "mlp", spec);

    assertThat(MlpGenerator.readSpec(repo.resolve("mlp"))).isEqualTo(spec);
    assertThat(MlpSpec.fromJson(spec.toJson())).isEqualTo(spec);
    assertThat(spec.toJson()).isEqualTo(
        "{\"seed\":-3,\"input_dim\":9,\"hidden_dim\":32,\"hidden_layers\":2,\"output_dim\":3,\"max_shard_bytes\":1048576}");
    assertThatThrownBy(() -> MlpSpec.fromJson("{\"seed\":1}")).isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("input_dim");
    assertThatThrownBy(() -> MlpGenerator.readSpec(repo)).isInstanceOf(IOException.class)
        .hasMessageContaining("model.onnx");
  }

  @Test
  void oneGibibyteIsSixteenOrSoLayersOf4096Squared() {
    MlpSpec spec = MlpSpec.forSize(GIB, 42);

    assertThat(spec.hiddenDim()).isEqualTo(4096);
    assertThat(spec.outputDim()).isEqualTo(16);
    assertThat(spec.maxShardBytes()).isEqualTo(256 * MIB);
    assertThat((double) spec.weightBytes()).isCloseTo(GIB, within(0.03 * GIB));
    assertThat(MlpSpec.forSize(8 * GIB, 1).hiddenDim()).isEqualTo(4096);
  }

  @ParameterizedTest
  @ValueSource(longs = {1 << 10, 100_000, 1 << 20, 3_000_001, 100_000_000, 1L << 30, 20L << 30})
  void everySizeGetsAtLeastTwoHiddenLayersAndAboutTheAskedBytes(long bytes) {
    MlpSpec spec = MlpSpec.forSize(bytes, 1);

    assertThat(spec.hiddenLayers()).isGreaterThanOrEqualTo(2);
    assertThat(Integer.bitCount(spec.hiddenDim())).isOne();
    if (bytes >= 1 << 20) {
      // A model grows by whole layers, each at most half the size asked for.
      assertThat((double) spec.weightBytes()).isCloseTo(bytes, within(0.3 * bytes));
    }
  }

  @Test
  void sampleInputsAreDeterministicAndWithinPlusMinusOne() {
    MlpSpec spec = MlpSpec.forSize(4 * MIB, 42);
    float[] x = spec.sampleInput(3);

    assertThat(x).hasSize(3 * spec.inputDim()).isEqualTo(spec.sampleInput(3));
    for (float v : x) {
      assertThat(v).isBetween(-1f, 1f);
    }
    // Batch rows are the same stream continued: the first row does not depend on the batch size.
    assertThat(java.util.Arrays.copyOf(x, spec.inputDim())).isEqualTo(spec.sampleInput(1));
  }

  @Test
  void configPbtxtIsATritonModelConfigurationForOnnxRuntime() throws Exception {
    MlpSpec spec = new MlpSpec(1, 12, 32, 2, 6, 1 << 20);
    MlpGenerator.generate(repo, "tiny-mlp", spec);

    ModelConfig.Builder config = ModelConfig.newBuilder();
    TextFormat.getParser().merge(Files.readString(repo.resolve("tiny-mlp/config.pbtxt")), config);
    assertThat(config.getName()).isEqualTo("tiny-mlp");
    assertThat(config.getPlatform()).isEqualTo("onnxruntime_onnx");
    assertThat(config.getMaxBatchSize()).isEqualTo(MlpGenerator.MAX_BATCH_SIZE);
    assertThat(config.getInputList()).singleElement().satisfies(in -> {
      assertThat(in.getName()).isEqualTo(MlpGenerator.INPUT);
      assertThat(in.getDataType()).isEqualTo(DataType.TYPE_FP32);
      assertThat(in.getDimsList()).containsExactly(12L);
    });
    assertThat(config.getOutputList()).singleElement().satisfies(out -> {
      assertThat(out.getName()).isEqualTo(MlpGenerator.OUTPUT);
      assertThat(out.getDataType()).isEqualTo(DataType.TYPE_FP32);
      assertThat(out.getDimsList()).containsExactly(6L);
    });
  }

  @Test
  void theModelDirectoryHasTheSamePermissionsAsAnyNewDirectoryThere() throws Exception {
    MlpGenerator.generate(repo, "mlp", new MlpSpec(1, 8, 16, 2, 2, 1 << 20));
    Path plain = Files.createDirectory(repo.resolve("plain"));

    assertThat(Files.getPosixFilePermissions(repo.resolve("mlp"))).isEqualTo(Files.getPosixFilePermissions(plain));
  }

  @Test
  void anExistingModelDirectoryIsRefusedAndLeftAlone() throws Exception {
    MlpSpec spec = new MlpSpec(1, 8, 16, 2, 2, 1 << 20);
    MlpGenerator.generate(repo, "mlp", spec);
    Map<String, byte[]> before = contents(repo.resolve("mlp"));

    assertThatThrownBy(() -> MlpGenerator.generate(repo, "mlp", new MlpSpec(2, 8, 16, 2, 2, 1 << 20)))
        .isInstanceOf(FileAlreadyExistsException.class)
        .hasMessageContaining(repo.resolve("mlp").toString());
    assertThat(contents(repo.resolve("mlp"))).containsOnlyKeys(before.keySet())
        .allSatisfy((file, bytes) -> assertThat(bytes).isEqualTo(before.get(file)));
    assertThat(entries(repo)).containsExactly("mlp");
  }

  @Test
  void aWriteThatFailsHalfwayLeavesNothingBehind() throws Exception {
    MlpSpec spec = MlpSpec.forSize(2 * MIB, 1);
    // An interrupt makes the first write to a weight file fail, after the model's directories exist.
    Thread.currentThread().interrupt();
    try {
      assertThatThrownBy(() -> MlpGenerator.generate(repo, "mlp", spec)).isInstanceOf(IOException.class);
    } finally {
      Thread.interrupted();
    }
    assertThat(entries(repo)).isEmpty();

    // The same name works once the failure is gone.
    MlpGenerator.generate(repo, "mlp", spec);
    assertThat(MlpGenerator.readSpec(repo.resolve("mlp"))).isEqualTo(spec);
  }

  @Test
  void aFileInTheWayFailsWithoutTouchingIt() throws Exception {
    MlpSpec spec = new MlpSpec(1, 8, 16, 2, 2, 1 << 20);
    Path notADirectory = Files.writeString(repo.resolve("models"), "keep me");
    Files.writeString(repo.resolve("mlp"), "me too");

    assertThatThrownBy(() -> MlpGenerator.generate(notADirectory, "mlp", spec)).isInstanceOf(IOException.class);
    assertThatThrownBy(() -> MlpGenerator.generate(repo, "mlp", spec)).isInstanceOf(FileAlreadyExistsException.class);
    assertThat(entries(repo)).containsExactlyInAnyOrder("models", "mlp");
    assertThat(notADirectory).hasContent("keep me");
    assertThat(repo.resolve("mlp")).hasContent("me too");
  }

  @ParameterizedTest
  @ValueSource(strings = {"", "..", ".hidden", "a/b", "name with spaces", "q\"uote"})
  void modelNamesAreSafeAsDirectoriesAndInConfigPbtxt(String name) {
    assertThatThrownBy(() -> MlpGenerator.generate(repo, name, new MlpSpec(1, 8, 16, 2, 2, 1 << 20)))
        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("not a model name");
  }

  @Test
  void aShardLimitBelowTheLargestTensorIsRefused() {
    assertThatThrownBy(() -> new MlpSpec(1, 8, 1024, 2, 2, 1 << 20))
        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("largest weight tensor");
  }

  private static List<String> entries(Path dir) throws IOException {
    try (Stream<Path> s = Files.list(dir)) {
      return s.map(p -> p.getFileName().toString()).toList();
    }
  }
}
