package dev.thaw.examples.ortserver;

import dev.thaw.examples.onnx.GraphProto;
import dev.thaw.examples.onnx.ModelProto;
import dev.thaw.examples.onnx.NodeProto;
import dev.thaw.examples.onnx.OperatorSetIdProto;
import dev.thaw.examples.onnx.StringStringEntryProto;
import dev.thaw.examples.onnx.TensorProto;
import dev.thaw.examples.onnx.TensorShapeProto;
import dev.thaw.examples.onnx.TypeProto;
import dev.thaw.examples.onnx.ValueInfoProto;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * Writes an {@link MlpSpec} as an ONNX model in a Triton model repository:
 *
 * <pre>
 * REPOSITORY/NAME/config.pbtxt                        Triton's model configuration (onnxruntime_onnx, batch up to 8)
 * REPOSITORY/NAME/1/model.onnx                        the graph, a few KiB; every weight is external data
 * REPOSITORY/NAME/1/weights-00001-of-0000N.bin        little-endian fp32 tensors, each at a 4096-byte aligned offset
 * </pre>
 *
 * <p>Weights are shaped like a real checkpoint's (64 MiB 4096 x 4096 layers in shards of at most 256 MiB) and are
 * incompressible, unique random values, so a model exercises storage the way real weights do, while its answers stay
 * checkable: {@link MlpSpec#reference} computes them from the spec that {@link #readSpec} reads back.
 *
 * <p>Offsets are page-aligned because ONNX Runtime can then map a tensor straight from its file instead of reading it.
 */
public final class MlpGenerator {
  public static final String INPUT = "input", OUTPUT = "output";
  public static final int MAX_BATCH_SIZE = 8;

  static final String SPEC_KEY = "thaw.mlp.spec";
  static final String CONFIG_FILE = "config.pbtxt";
  static final String VERSION_DIR = "1";
  static final String MODEL_FILE = "model.onnx";
  static final int ALIGNMENT = 4096;
  static final long IR_VERSION = 8;
  static final long OPSET = 17;

  /** Names usable both as a directory and, unquoted, as Triton's model name; no path tricks, no hidden files. */
  private static final Pattern MODEL_NAME = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._-]*");
  private static final int BUFFER_BYTES = 4 << 20;
  private static final byte[] ZEROS = new byte[ALIGNMENT];

  private MlpGenerator() {}

  /**
   * Writes {@code <repository>/<modelName>/config.pbtxt}, {@code <repository>/<modelName>/1/model.onnx} and the
   * external data files beside model.onnx; returns the bytes written. Writes to a temp dir beside the target and
   * renames into place, so a killed run never leaves a half model; refuses to overwrite an existing model dir
   * (IOException naming it).
   */
  public static long generate(Path repository, String modelName, MlpSpec spec) throws IOException {
    if (!MODEL_NAME.matcher(modelName).matches()) {
      throw new IllegalArgumentException("not a model name: '" + modelName
          + "' (letters, digits, '.', '_' and '-', not starting with '.', '_' or '-')");
    }
    Path target = repository.resolve(modelName);
    refuseExisting(target);
    Files.createDirectories(repository);
    // The temp dir is hidden and on the same file system, so the final rename is atomic; a killed run leaves only
    // this hidden directory, never a model that looks complete. Not Files.createTempDirectory: its 0700 mode would
    // stay with the model and lock out a server running as another user.
    Path partial = Files.createDirectory(
        repository.resolve("." + modelName + ".partial-" + ProcessHandle.current().pid() + "-" + System.nanoTime()));
    boolean moved = false;
    try {
      long bytes = writeModel(partial, modelName, spec);
      // rename(2) would silently replace an empty directory made meanwhile; look once more just before.
      refuseExisting(target);
      Files.move(partial, target, StandardCopyOption.ATOMIC_MOVE);
      moved = true;
      return bytes;
    } finally {
      if (!moved) {
        deleteTree(partial);
      }
    }
  }

  /**
   * Reads the spec back from a model directory written by generate (from model.onnx's metadata_props key
   * "thaw.mlp.spec"), e.g. for checking answers.
   */
  public static MlpSpec readSpec(Path modelDir) throws IOException {
    Path onnx = modelDir.resolve(VERSION_DIR).resolve(MODEL_FILE);
    ModelProto model;
    try (InputStream in = Files.newInputStream(onnx)) {
      model = ModelProto.parseFrom(in);
    } catch (NoSuchFileException e) {
      throw new NoSuchFileException(onnx.toString(), null, "no model.onnx; is " + modelDir + " a generated model directory?");
    }
    for (StringStringEntryProto p : model.getMetadataPropsList()) {
      if (p.getKey().equals(SPEC_KEY)) {
        try {
          return MlpSpec.fromJson(p.getValue());
        } catch (IllegalArgumentException e) {
          throw new IOException(onnx + ": metadata " + SPEC_KEY + " is not an MLP spec: " + e.getMessage(), e);
        }
      }
    }
    throw new IOException(onnx + " has no metadata " + SPEC_KEY + "; it was not written by MlpGenerator");
  }

  private static void refuseExisting(Path target) throws FileAlreadyExistsException {
    if (Files.exists(target, LinkOption.NOFOLLOW_LINKS)) {
      throw new FileAlreadyExistsException(target.toString(), null,
          "a model directory is already there; choose another name or delete it first");
    }
  }

  private static long writeModel(Path dir, String modelName, MlpSpec spec) throws IOException {
    Path version = Files.createDirectory(dir.resolve(VERSION_DIR));
    Layout layout = Layout.of(spec);
    long bytes = 0;
    ByteBuffer buf = ByteBuffer.allocateDirect(BUFFER_BYTES).order(ByteOrder.LITTLE_ENDIAN);
    for (int file = 0; file < layout.files(); file++) {
      bytes += writeShard(version.resolve(layout.fileName(file)), spec, layout, file, buf);
    }
    byte[] onnx = modelProto(spec, layout).toByteArray();
    Files.write(version.resolve(MODEL_FILE), onnx, StandardOpenOption.CREATE_NEW);
    byte[] config = config(modelName, spec).getBytes(java.nio.charset.StandardCharsets.UTF_8);
    Files.write(dir.resolve(CONFIG_FILE), config, StandardOpenOption.CREATE_NEW);
    return bytes + onnx.length + config.length;
  }

  /** Streams one shard's tensors through {@code buf}: the whole model is never in memory, one buffer at most. */
  private static long writeShard(Path path, MlpSpec spec, Layout layout, int file, ByteBuffer buf) throws IOException {
    buf.clear();
    long written = 0;
    try (FileChannel ch = FileChannel.open(path, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
      long pos = 0;
      for (int t = 0; t < spec.tensorCount(); t++) {
        if (layout.file(t) != file) {
          continue;
        }
        for (long pad = layout.offset(t) - pos; pad > 0; ) {
          if (!buf.hasRemaining()) {
            written += flush(ch, buf);
          }
          int n = (int) Math.min(pad, Math.min(ZEROS.length, buf.remaining()));
          buf.put(ZEROS, 0, n);
          pad -= n;
        }
        SplittableRandom r = spec.tensorRandom(t);
        float scale = spec.tensorScale(t);
        for (long left = spec.tensorElements(t); left > 0; ) {
          if (buf.remaining() < Float.BYTES) {
            written += flush(ch, buf);
          }
          int n = (int) Math.min(left, buf.remaining() / Float.BYTES);
          for (int i = 0; i < n; i++) {
            buf.putFloat(MlpSpec.uniform(r, scale));
          }
          left -= n;
        }
        pos = layout.offset(t) + layout.length(t);
      }
      written += flush(ch, buf);
    }
    return written;
  }

  private static long flush(FileChannel ch, ByteBuffer buf) throws IOException {
    buf.flip();
    long n = buf.remaining();
    while (buf.hasRemaining()) {
      ch.write(buf);
    }
    buf.clear();
    return n;
  }

  static ModelProto modelProto(MlpSpec spec, Layout layout) {
    GraphProto.Builder g = GraphProto.newBuilder().setName("thaw_mlp")
        .addInput(valueInfo(INPUT, spec.inputDim()))
        .addOutput(valueInfo(OUTPUT, spec.outputDim()));
    String x = INPUT;
    for (int layer = 0; layer <= spec.hiddenLayers(); layer++) {
      boolean last = layer == spec.hiddenLayers();
      String prefix = last ? "head" : "hidden." + layer;
      String weight = prefix + ".weight";
      String bias = prefix + ".bias";
      g.addInitializer(externalTensor(weight, layout, 2 * layer, spec.layerInputs(layer), spec.layerOutputs(layer)));
      g.addInitializer(externalTensor(bias, layout, 2 * layer + 1, spec.layerOutputs(layer)));
      String product = prefix + ".matmul";
      String sum = last ? OUTPUT : prefix + ".add";
      g.addNode(node("MatMul", prefix + "/MatMul", product, x, weight));
      g.addNode(node("Add", prefix + "/Add", sum, product, bias));
      if (!last) {
        x = prefix + ".relu";
        g.addNode(node("Relu", prefix + "/Relu", x, sum));
      }
    }
    return ModelProto.newBuilder()
        .setIrVersion(IR_VERSION)
        .setProducerName("thaw")
        .setDocString("A multilayer perceptron with seeded random weights, generated by Thaw's MlpGenerator.")
        .addOpsetImport(OperatorSetIdProto.newBuilder().setDomain("").setVersion(OPSET))
        .setGraph(g)
        .addMetadataProps(StringStringEntryProto.newBuilder().setKey(SPEC_KEY).setValue(spec.toJson()))
        .build();
  }

  private static ValueInfoProto valueInfo(String name, int width) {
    TensorShapeProto shape = TensorShapeProto.newBuilder()
        .addDim(TensorShapeProto.Dimension.newBuilder().setDimParam("batch"))
        .addDim(TensorShapeProto.Dimension.newBuilder().setDimValue(width))
        .build();
    return ValueInfoProto.newBuilder().setName(name)
        .setType(TypeProto.newBuilder().setTensorType(
            TypeProto.Tensor.newBuilder().setElemType(TensorProto.DataType.FLOAT_VALUE).setShape(shape)))
        .build();
  }

  private static TensorProto externalTensor(String name, Layout layout, int tensor, long... dims) {
    TensorProto.Builder t = TensorProto.newBuilder().setName(name).setDataType(TensorProto.DataType.FLOAT_VALUE)
        .setDataLocation(TensorProto.DataLocation.EXTERNAL)
        .addExternalData(entry("location", layout.fileName(layout.file(tensor))))
        .addExternalData(entry("offset", Long.toString(layout.offset(tensor))))
        .addExternalData(entry("length", Long.toString(layout.length(tensor))));
    for (long d : dims) {
      t.addDims(d);
    }
    return t.build();
  }

  private static StringStringEntryProto entry(String key, String value) {
    return StringStringEntryProto.newBuilder().setKey(key).setValue(value).build();
  }

  private static NodeProto node(String op, String name, String output, String... inputs) {
    NodeProto.Builder n = NodeProto.newBuilder().setOpType(op).setName(name).addOutput(output);
    for (String in : inputs) {
      n.addInput(in);
    }
    return n.build();
  }

  static String config(String modelName, MlpSpec spec) {
    // With max_batch_size > 0 Triton's dims leave out the batch dimension, which is the model's first ("batch").
    return String.format(Locale.ROOT, """
        name: "%s"
        platform: "onnxruntime_onnx"
        max_batch_size: %d
        input [
          {
            name: "%s"
            data_type: TYPE_FP32
            dims: [ %d ]
          }
        ]
        output [
          {
            name: "%s"
            data_type: TYPE_FP32
            dims: [ %d ]
          }
        ]
        """, modelName, MAX_BATCH_SIZE, INPUT, spec.inputDim(), OUTPUT, spec.outputDim());
  }

  /**
   * Where each tensor lies: tensors in order, each at the next 4096-aligned offset of the current file, and in a new
   * file when it would take that file past {@code maxShardBytes}.
   */
  static final class Layout {
    private final int[] fileOf;
    private final long[] offsets;
    private final long[] lengths;
    private final int files;

    private Layout(int[] fileOf, long[] offsets, long[] lengths, int files) {
      this.fileOf = fileOf;
      this.offsets = offsets;
      this.lengths = lengths;
      this.files = files;
    }

    static Layout of(MlpSpec spec) {
      int n = spec.tensorCount();
      int[] fileOf = new int[n];
      long[] offsets = new long[n];
      long[] lengths = new long[n];
      int file = 0;
      long pos = 0;
      for (int t = 0; t < n; t++) {
        long length = Float.BYTES * spec.tensorElements(t);
        long start = (pos + ALIGNMENT - 1) / ALIGNMENT * ALIGNMENT;
        if (pos > 0 && start + length > spec.maxShardBytes()) {
          file++;
          start = 0;
        }
        fileOf[t] = file;
        offsets[t] = start;
        lengths[t] = length;
        pos = start + length;
      }
      return new Layout(fileOf, offsets, lengths, file + 1);
    }

    int files() {
      return files;
    }

    int file(int tensor) {
      return fileOf[tensor];
    }

    long offset(int tensor) {
      return offsets[tensor];
    }

    long length(int tensor) {
      return lengths[tensor];
    }

    String fileName(int file) {
      return String.format(Locale.ROOT, "weights-%05d-of-%05d.bin", file + 1, files);
    }
  }

  private static void deleteTree(Path dir) {
    try (Stream<Path> s = Files.walk(dir)) {
      List<Path> all = new ArrayList<>(s.toList());
      all.sort(Comparator.reverseOrder());
      for (Path p : all) {
        Files.deleteIfExists(p);
      }
    } catch (IOException | RuntimeException e) {
      // Best effort: the original failure is what the caller needs to see; a leftover is hidden and named .partial.
    }
  }
}
