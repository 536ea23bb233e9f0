package dev.thaw.examples.ortserver;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.SplittableRandom;

/**
 * What an MLP model is: everything needed to regenerate its weights and compute its answers.
 *
 * <p>The network is {@code hiddenLayers} times {@code x -> relu(x W + b)} (the first from {@code inputDim} to
 * {@code hiddenDim}, the rest {@code hiddenDim} square), then {@code x W + b} to {@code outputDim}, in fp32. Every
 * tensor's values follow from {@code seed} and the tensor's index alone, so {@link #reference} computes a model's
 * answers from the spec without reading its files, and two models with the same spec are byte-identical.
 *
 * @param maxShardBytes the most bytes one external data file may hold; at least the largest weight tensor, since a
 *     tensor never straddles files
 */
public record MlpSpec(long seed, int inputDim, int hiddenDim, int hiddenLayers, int outputDim, long maxShardBytes) {
  private static final long MIB = 1L << 20;
  /** Hidden width of large models: a 4096 x 4096 fp32 layer is 64 MiB, the size of a real LLM projection. */
  static final int MAX_HIDDEN = 4096;
  static final int MIN_HIDDEN = 8;
  static final int MAX_INPUT = 256;
  static final int OUTPUT = 16;
  static final long SHARD_BYTES = 256 * MIB;
  /** Biases are small so that, with He-scaled weights, each layer roughly keeps its input's mean square. */
  static final float BIAS_SCALE = 0.05f;

  private static final ObjectMapper JSON = new ObjectMapper();

  public MlpSpec {
    if (inputDim < 1 || hiddenDim < 1 || outputDim < 1 || hiddenLayers < 1) {
      throw new IllegalArgumentException("an MLP needs positive dimensions and at least one hidden layer: input "
          + inputDim + ", hidden " + hiddenDim + " x " + hiddenLayers + ", output " + outputDim);
    }
    long largest = 4L * Math.max(Math.max((long) inputDim, outputDim) * hiddenDim, (long) hiddenDim * hiddenDim);
    if (maxShardBytes < largest) {
      throw new IllegalArgumentException("maxShardBytes " + maxShardBytes + " is smaller than the largest weight tensor ("
          + largest + " bytes), and a tensor never straddles two files");
    }
  }

  /**
   * Dimensions for a model whose weights take about {@code weightBytes} (fp32): hidden 4096 for >= 1 GiB (64 MiB per
   * layer), smaller powers of two for small sizes so there are at least 2 hidden layers; output 16; shards of at most
   * 256 MiB.
   */
  public static MlpSpec forSize(long weightBytes, long seed) {
    if (weightBytes <= 0) {
      throw new IllegalArgumentException("a model size must be positive, not " + weightBytes);
    }
    int hidden = MAX_HIDDEN;
    while (hidden > MIN_HIDDEN && 2L * 4 * hidden * hidden > weightBytes) {
      hidden /= 2;
    }
    // A narrow input keeps requests small (256 floats a row); the hidden layers carry the bytes.
    int input = Math.min(hidden, MAX_INPUT);
    long fixed = (long) input * hidden + hidden + (long) hidden * OUTPUT + OUTPUT; // first and output layer, floats
    long perLayer = (long) hidden * hidden + hidden;
    long more = Math.round((weightBytes / 4.0 - fixed) / perLayer);
    int layers = (int) Math.min(Integer.MAX_VALUE, Math.max(2, 1 + more));
    return new MlpSpec(seed, input, hidden, layers, OUTPUT, SHARD_BYTES);
  }

  /** Exact bytes of all weights and biases, the sum of the tensors' lengths in the external data files. */
  public long weightBytes() {
    long floats = 0;
    for (int t = 0; t < tensorCount(); t++) {
      floats += tensorElements(t);
    }
    return 4 * floats;
  }

  /** A deterministic input for the seed: {@code [batch, inputDim]} row-major, values in [-1, 1]. */
  public float[] sampleInput(int batch) {
    if (batch < 1) {
      throw new IllegalArgumentException("batch must be at least 1, not " + batch);
    }
    // The input has its own stream, distinct from every tensor's (tensor indexes are >= 0).
    SplittableRandom r = new SplittableRandom(streamSeed(seed, -1));
    float[] x = new float[Math.multiplyExact(batch, inputDim)];
    for (int i = 0; i < x.length; i++) {
      x[i] = uniform(r, 1f);
    }
    return x;
  }

  /**
   * The model's answers computed in plain Java: {@code [batch, outputDim]} row-major. Weights are regenerated from the
   * seed row by row (one row in memory at a time, no disk reads) and sums accumulate in double, so this is the exact
   * answer of the fp32 weights up to double rounding; an fp32 engine differs from it by its own rounding only.
   */
  public float[] reference(float[] input, int batch) {
    if (batch < 1 || input.length != (long) batch * inputDim) {
      throw new IllegalArgumentException("input has " + input.length + " floats; batch " + batch + " x inputDim "
          + inputDim + " needs " + (long) batch * inputDim);
    }
    double[] x = new double[input.length];
    for (int i = 0; i < x.length; i++) {
      x[i] = input[i];
    }
    for (int layer = 0; layer <= hiddenLayers; layer++) {
      int in = layerInputs(layer);
      int out = layerOutputs(layer);
      double[] y = new double[batch * out];
      float[] row = new float[out];
      SplittableRandom w = tensorRandom(2 * layer);
      float wScale = tensorScale(2 * layer);
      for (int i = 0; i < in; i++) {
        for (int j = 0; j < out; j++) {
          row[j] = uniform(w, wScale);
        }
        for (int b = 0; b < batch; b++) {
          double xi = x[b * in + i];
          if (xi == 0) {
            continue; // a ReLU zero: common, and skipping it saves half the work
          }
          int base = b * out;
          for (int j = 0; j < out; j++) {
            y[base + j] += xi * row[j];
          }
        }
      }
      SplittableRandom bias = tensorRandom(2 * layer + 1);
      float bScale = tensorScale(2 * layer + 1);
      for (int j = 0; j < out; j++) {
        row[j] = uniform(bias, bScale);
      }
      boolean relu = layer < hiddenLayers;
      for (int b = 0; b < batch; b++) {
        for (int j = 0; j < out; j++) {
          double v = y[b * out + j] + row[j];
          y[b * out + j] = relu && v < 0 ? 0 : v;
        }
      }
      x = y;
    }
    float[] result = new float[x.length];
    for (int i = 0; i < x.length; i++) {
      result[i] = (float) x[i];
    }
    return result;
  }

  /** The spec as one JSON object, e.g. {@code {"seed":42,"input_dim":256,...}}. */
  public String toJson() {
    ObjectNode n = JSON.createObjectNode();
    n.put("seed", seed).put("input_dim", inputDim).put("hidden_dim", hiddenDim).put("hidden_layers", hiddenLayers)
        .put("output_dim", outputDim).put("max_shard_bytes", maxShardBytes);
    try {
      return JSON.writeValueAsString(n);
    } catch (JsonProcessingException e) {
      throw new IllegalStateException(e);
    }
  }

  /** Parses {@link #toJson()}'s output; a missing field or a malformed document is an IllegalArgumentException. */
  public static MlpSpec fromJson(String json) {
    JsonNode n;
    try {
      n = JSON.readTree(json);
    } catch (JsonProcessingException e) {
      throw new IllegalArgumentException("not an MLP spec (malformed JSON): " + e.getOriginalMessage(), e);
    }
    return new MlpSpec(field(n, "seed").asLong(), (int) field(n, "input_dim").asLong(),
        (int) field(n, "hidden_dim").asLong(), (int) field(n, "hidden_layers").asLong(),
        (int) field(n, "output_dim").asLong(), field(n, "max_shard_bytes").asLong());
  }

  private static JsonNode field(JsonNode n, String name) {
    JsonNode v = n == null ? null : n.get(name);
    if (v == null || !v.isIntegralNumber()) {
      throw new IllegalArgumentException("not an MLP spec: '" + name + "' is missing or not an integer in " + n);
    }
    return v;
  }

  // The tensors, in file order: tensor 2k is layer k's weight [in, out], tensor 2k+1 its bias [out]; layer
  // hiddenLayers is the output layer.

  int tensorCount() {
    return 2 * (hiddenLayers + 1);
  }

  int layerInputs(int layer) {
    return layer == 0 ? inputDim : hiddenDim;
  }

  int layerOutputs(int layer) {
    return layer == hiddenLayers ? outputDim : hiddenDim;
  }

  long tensorElements(int tensor) {
    int layer = tensor / 2;
    return tensor % 2 == 0 ? (long) layerInputs(layer) * layerOutputs(layer) : layerOutputs(layer);
  }

  /**
   * Weights are uniform in +-sqrt(6 / fanIn) (He): the variance 2 / fanIn makes {@code relu(x W)} keep the mean square
   * of {@code x}, so activations neither explode nor vanish however many layers there are.
   */
  float tensorScale(int tensor) {
    return tensor % 2 == 0 ? (float) Math.sqrt(6.0 / layerInputs(tensor / 2)) : BIAS_SCALE;
  }

  SplittableRandom tensorRandom(int tensor) {
    return new SplittableRandom(streamSeed(seed, tensor));
  }

  /** The next value of a tensor's stream: uniform in [-scale, scale), identical wherever it is computed. */
  static float uniform(SplittableRandom r, float scale) {
    return (r.nextInt() >> 8) * 0x1p-23f * scale; // 24 random bits, exact in a float
  }

  /**
   * A seed for one stream. SplittableRandom's own seed is its raw state, so seeds that differ by its increment give
   * the same stream shifted by one; a strong mix (SplitMix64's finalizer) makes every (seed, stream) pair unrelated.
   */
  static long streamSeed(long seed, long stream) {
    long z = seed + 0x9E3779B97F4A7C15L * (stream + 2);
    z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
    z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
    return z ^ (z >>> 31);
  }
}
