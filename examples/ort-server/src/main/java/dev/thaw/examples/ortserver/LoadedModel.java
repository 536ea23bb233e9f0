package dev.thaw.examples.ortserver;

import ai.onnxruntime.NodeInfo;
import ai.onnxruntime.OnnxJavaType;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxValue;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtLoggingLevel;
import ai.onnxruntime.OrtSession;
import ai.onnxruntime.TensorInfo;
import com.google.protobuf.TextFormat;
import dev.thaw.triton.protocol.DataType;
import dev.thaw.triton.protocol.ModelConfig;
import dev.thaw.triton.protocol.ModelInput;
import dev.thaw.triton.protocol.ModelInstanceGroup;
import dev.thaw.triton.protocol.ModelOutput;
import dev.thaw.triton.protocol.ModelVersionPolicy;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.atomic.LongAdder;

/**
 * One version of one model, loaded: its normalized configuration and the ONNX Runtime session that runs it.
 *
 * <p>Loading reads {@code config.pbtxt} (Triton's text format), picks the version the version policy selects (the
 * newest by default), creates the session from the {@code model.onnx} path, so ONNX Runtime finds external data files
 * relative to it, and checks the configured inputs and outputs against the session's names, types and shapes;
 * inputs and outputs the configuration leaves out are filled in from the session, as Triton's auto-complete does.
 *
 * <p>{@link #infer} validates a request in Triton's order and with Triton's messages, then runs the session; many
 * threads may infer at once (ONNX Runtime sessions are thread-safe). {@link #close} waits for inferences in flight
 * before it frees the session, and inferences after it are refused.
 */
final class LoadedModel implements AutoCloseable {
  static final String PLATFORM = "onnxruntime_onnx";
  static final String BACKEND = "onnxruntime";
  static final String CONFIG_FILE = "config.pbtxt";
  static final String DEFAULT_MODEL_FILE = "model.onnx";

  private static OrtEnvironment environment;

  /** An input or output as the configuration declares it: dims without the batch dimension. */
  record TensorSpec(String name, TensorType type, long[] dims) {
    /** The shape with the batch dimension (-1) first when the model batches, as metadata and errors show it. */
    long[] fullShape(int maxBatchSize) {
      if (maxBatchSize <= 0) {
        return dims.clone();
      }
      long[] full = new long[dims.length + 1];
      full[0] = -1;
      System.arraycopy(dims, 0, full, 1, dims.length);
      return full;
    }
  }

  /** Why a model could not be loaded: a one-line reason that names the file or tensor at fault. */
  static final class LoadFailure extends Exception {
    private static final long serialVersionUID = 1L;

    LoadFailure(String message) {
      super(message, null, false, false);
    }
  }

  private final String name;
  private final long version;
  private final ModelConfig config;
  private final OrtEnvironment env;
  private final OrtSession session;
  private final List<TensorSpec> inputs;
  private final List<TensorSpec> outputs;
  private final Map<String, TensorSpec> inputsByName = new LinkedHashMap<>();
  private final Map<String, TensorSpec> outputsByName = new LinkedHashMap<>();

  private final Object inFlightLock = new Object();
  private final LongAdder successes = new LongAdder();
  private final LongAdder failures = new LongAdder();
  private final LongAdder inferences = new LongAdder();
  private int inFlight;
  private boolean closing;
  private boolean closed;

  private LoadedModel(String name, long version, ModelConfig config, OrtEnvironment env, OrtSession session,
      List<TensorSpec> inputs, List<TensorSpec> outputs) {
    this.name = name;
    this.version = version;
    this.config = config;
    this.env = env;
    this.session = session;
    this.inputs = List.copyOf(inputs);
    this.outputs = List.copyOf(outputs);
    inputs.forEach(t -> inputsByName.put(t.name(), t));
    outputs.forEach(t -> outputsByName.put(t.name(), t));
  }

  /** The version directory {@link #load} would serve, or a failure naming why there is none. */
  static long selectVersion(String name, Path modelDir, ModelConfig config) throws LoadFailure {
    TreeSet<Long> present = new TreeSet<>();
    try (DirectoryStream<Path> dirs = Files.newDirectoryStream(modelDir, Files::isDirectory)) {
      for (Path dir : dirs) {
        String v = dir.getFileName().toString();
        // Like Triton: version directories are integers; leading zeros and other names are ignored.
        if (v.matches("0|[1-9][0-9]{0,17}")) {
          present.add(Long.parseLong(v));
        }
      }
    } catch (IOException e) {
      throw new LoadFailure("cannot list " + modelDir + ": " + e);
    }
    List<Long> selected = new ArrayList<>();
    ModelVersionPolicy policy = config.getVersionPolicy();
    switch (policy.getPolicyChoiceCase()) {
      case ALL -> selected.addAll(present.descendingSet());
      case SPECIFIC -> {
        for (long v : new TreeSet<>(policy.getSpecific().getVersionsList()).descendingSet()) {
          if (present.contains(v)) {
            selected.add(v);
          }
        }
      }
      default -> {
        int n = Math.max(1, policy.getLatest().getNumVersions());
        present.descendingSet().stream().limit(n).forEach(selected::add);
      }
    }
    if (selected.isEmpty()) {
      throw new LoadFailure("at least one version must be available under the version policy of model '" + name
          + "' (no version directory such as " + modelDir.resolve("1") + " holds it)");
    }
    if (selected.size() > 1) {
      throw new LoadFailure("the version_policy in " + modelDir.resolve(CONFIG_FILE) + " selects versions " + selected
          + ", but ort-server serves one version per model");
    }
    return selected.get(0);
  }

  /** What {@link #plan} decided from the configuration: the version to serve and its model file. */
  record Plan(String name, Path modelDir, ModelConfig config, long version, Path modelFile) {}

  /**
   * Reads and checks the configuration of the model in {@code modelDir} (a directory of a Triton model repository
   * named {@code name}) and picks the version to serve; cheap, so the caller can report the version before the slow
   * part.
   */
  static Plan plan(String name, Path modelDir) throws LoadFailure {
    Path configFile = modelDir.resolve(CONFIG_FILE);
    ModelConfig config = normalize(name, configFile, readConfig(configFile));
    long version = selectVersion(name, modelDir, config);
    Path modelFile = modelDir.resolve(Long.toString(version)).resolve(config.getDefaultModelFilename());
    return new Plan(name, modelDir, config, version, modelFile);
  }

  /**
   * Creates the session of a {@link #plan} and checks it against the configuration.
   *
   * @param nativeDir where ONNX Runtime's natives are extracted on first use (null: the default directory)
   * @param sessionConfig ONNX Runtime session configuration entries (e.g. {@code session.disable_prepacking})
   */
  static LoadedModel open(Plan plan, Path nativeDir, Map<String, String> sessionConfig) throws LoadFailure {
    if (ByteOrder.nativeOrder() != ByteOrder.LITTLE_ENDIAN) {
      // The protocols' tensor bytes are little-endian and are handed to ONNX Runtime as they are.
      throw new LoadFailure("ort-server needs a little-endian machine");
    }
    Path modelFile = plan.modelFile();
    if (!Files.isRegularFile(modelFile)) {
      throw new LoadFailure("model file " + modelFile + " does not exist");
    }
    OrtEnvironment env = environment(nativeDir);
    OrtSession session;
    try (OrtSession.SessionOptions options = new OrtSession.SessionOptions()) {
      // One session per model, as wide as the machine: requests run one after another on all cores.
      options.setIntraOpNumThreads(Runtime.getRuntime().availableProcessors());
      options.setSessionLogLevel(OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR);
      for (Map.Entry<String, String> e : sessionConfig.entrySet()) {
        options.addConfigEntry(e.getKey(), e.getValue());
      }
      session = env.createSession(modelFile.toString(), options);
    } catch (OrtException e) {
      throw new LoadFailure("ONNX Runtime cannot load " + modelFile + ": " + oneLine(e.getMessage()));
    }
    try {
      return bind(plan.name(), plan.version(), plan.config(), env, session, plan.modelDir().resolve(CONFIG_FILE));
    } catch (LoadFailure | RuntimeException e) {
      closeQuietly(session);
      throw e;
    }
  }

  String name() {
    return name;
  }

  long version() {
    return version;
  }

  /** The configuration as served: config.pbtxt with the fields Triton fills in. */
  ModelConfig config() {
    return config;
  }

  int maxBatchSize() {
    return config.getMaxBatchSize();
  }

  List<TensorSpec> inputs() {
    return inputs;
  }

  List<TensorSpec> outputs() {
    return outputs;
  }

  /**
   * Runs one inference.
   *
   * @throws InferenceError INVALID_ARG for a request the model cannot take (Triton's wording), NOT_FOUND when the
   *     model is being unloaded, INTERNAL when ONNX Runtime fails
   */
  InferResult infer(InferRequest request) {
    InferResult result;
    try {
      validate(request);
      if (!enter()) {
        throw InferenceError.notFound("Request for unknown model: '" + name + "' has no available versions");
      }
      try {
        result = run(request);
      } finally {
        exit();
      }
    } catch (RuntimeException e) {
      failures.increment();
      throw e;
    }
    successes.increment();
    inferences.add(maxBatchSize() > 0 && !request.inputs().isEmpty() ? request.inputs().getFirst().shape()[0] : 1);
    return result;
  }

  /** Triton's per-model counters since the load: successful and failed requests, and inferences (batch rows). */
  record Counts(long successes, long failures, long inferences) {}

  Counts counts() {
    return new Counts(successes.sum(), failures.sum(), inferences.sum());
  }

  /** Runs one inference of zeros, batch 1 (when the model batches), variable dimensions 1. */
  void warmup() {
    List<Tensor> zeros = new ArrayList<>();
    for (TensorSpec spec : inputs) {
      long[] shape = spec.fullShape(maxBatchSize());
      for (int i = 0; i < shape.length; i++) {
        shape[i] = Math.max(1, shape[i]);
      }
      int bytes = Math.toIntExact(Tensor.elementCount(shape) * spec.type().byteSize);
      zeros.add(new Tensor(spec.name(), spec.type().protocolName, shape,
          ByteBuffer.allocateDirect(bytes).order(ByteOrder.LITTLE_ENDIAN)));
    }
    infer(new InferRequest("", zeros, List.of()));
  }

  /** Refuses new inferences, waits for those in flight, then frees the session. Idempotent. */
  @Override
  public void close() {
    boolean interrupted = false;
    try {
      synchronized (inFlightLock) {
        closing = true;
        while (inFlight > 0) {
          try {
            inFlightLock.wait();
          } catch (InterruptedException e) {
            interrupted = true; // finish closing: a session freed under a running inference would crash the JVM
          }
        }
        if (closed) {
          return;
        }
        closed = true;
      }
      closeQuietly(session);
    } finally {
      if (interrupted) {
        Thread.currentThread().interrupt();
      }
    }
  }

  private boolean enter() {
    synchronized (inFlightLock) {
      if (closing) {
        return false;
      }
      inFlight++;
      return true;
    }
  }

  private void exit() {
    synchronized (inFlightLock) {
      if (--inFlight == 0 && closing) {
        inFlightLock.notifyAll();
      }
    }
  }

  /** Triton's request checks (core's InferenceRequest::Normalize), in its order and with its messages. */
  private void validate(InferRequest request) {
    Set<String> requested = new HashSet<>();
    for (String output : request.outputs()) {
      if (!outputsByName.containsKey(output)) {
        throw InferenceError.invalidArg("unexpected inference output '" + output + "' for model '" + name + "'");
      }
      if (!requested.add(output)) {
        throw InferenceError.invalidArg("output '" + output + "' is requested more than once for model '" + name
            + "'");
      }
    }
    Set<String> seen = new HashSet<>();
    for (Tensor input : request.inputs()) {
      if (!seen.add(input.name())) {
        throw InferenceError.invalidArg("input '" + input.name() + "' already exists in request");
      }
    }
    if (request.inputs().size() != inputs.size()) {
      throw InferenceError.invalidArg("expected " + inputs.size() + " inputs but got " + request.inputs().size()
          + " inputs for model '" + name + "'");
    }
    for (Tensor input : request.inputs()) {
      if (!inputsByName.containsKey(input.name())) {
        throw InferenceError.invalidArg("unexpected inference input '" + input.name() + "' for model '" + name
            + "'");
      }
    }
    int maxBatch = maxBatchSize();
    if (maxBatch > 0) {
      long batch = -1;
      for (Tensor input : request.inputs()) {
        if (input.shape().length == 0) {
          throw InferenceError.invalidArg("input '" + input.name()
              + "' has no shape but model requires batch dimension for '" + name + "'");
        }
        if (batch == -1) {
          batch = input.shape()[0];
        } else if (input.shape()[0] != batch) {
          throw InferenceError.invalidArg("input '" + input.name() + "' batch size does not match other inputs for '"
              + name + "'");
        }
      }
      if (batch > maxBatch) {
        throw InferenceError.invalidArg("inference request batch-size must be <= " + maxBatch + " for '" + name
            + "'");
      }
    }
    for (Tensor input : request.inputs()) {
      TensorSpec spec = inputsByName.get(input.name());
      if (!spec.type().protocolName.equals(input.datatype())) {
        throw InferenceError.invalidArg("inference input data-type is '" + input.datatype() + "', model expects '"
            + spec.type().protocolName + "' for '" + name + "'");
      }
      long[] shape = input.shape();
      long[] dims = maxBatch > 0 ? Arrays.copyOfRange(shape, 1, shape.length) : shape;
      boolean matches = dims.length == spec.dims().length;
      for (int i = 0; matches && i < dims.length; i++) {
        if (dims[i] == -1) {
          throw InferenceError.invalidArg("All input dimensions should be specified for input '" + input.name()
              + "' for model '" + name + "', got " + Tensor.shapeString(shape));
        }
        matches = dims[i] >= 0 && (spec.dims()[i] == -1 || spec.dims()[i] == dims[i]);
      }
      if (!matches || (maxBatch > 0 && shape[0] < 0)) {
        throw InferenceError.invalidArg("unexpected shape for input '" + input.name() + "' for model '" + name
            + "'. Expected " + Tensor.shapeString(spec.fullShape(maxBatch)) + ", got " + Tensor.shapeString(shape));
      }
      long elements = Tensor.elementCount(shape);
      long expected = elements < 0 || elements > Long.MAX_VALUE / 8 ? -1 : elements * spec.type().byteSize;
      if (expected != input.data().remaining()) {
        throw InferenceError.invalidArg("input byte size mismatch for input '" + input.name() + "' for model '"
            + name + "'. Expected " + expected + ", got " + input.data().remaining());
      }
    }
  }

  private InferResult run(InferRequest request) {
    Map<String, OnnxTensor> feeds = new LinkedHashMap<>();
    try {
      for (Tensor input : request.inputs()) {
        TensorSpec spec = inputsByName.get(input.name());
        ByteBuffer data = direct(input.data());
        feeds.put(input.name(), OnnxTensor.createTensor(env, data, input.shape(), javaType(spec.type())));
      }
      Set<String> wanted = new LinkedHashSet<>(request.outputs().isEmpty()
          ? outputsByName.keySet()
          : request.outputs());
      List<Tensor> results = new ArrayList<>(wanted.size());
      try (OrtSession.Result result = session.run(feeds, wanted)) {
        for (String output : wanted) {
          OnnxValue value = result.get(output).orElseThrow(
              () -> InferenceError.internal("onnxruntime produced no output '" + output + "' for '" + name + "'"));
          if (!(value instanceof OnnxTensor tensor)) {
            throw InferenceError.internal("output '" + output + "' of '" + name + "' is not a tensor");
          }
          ByteBuffer bytes = tensor.getByteBuffer().order(ByteOrder.LITTLE_ENDIAN);
          results.add(new Tensor(output, outputsByName.get(output).type().protocolName, tensor.getInfo().getShape(),
              bytes));
        }
      }
      return new InferResult(name, version, request.id(), results);
    } catch (OrtException e) {
      throw InferenceError.internal("onnx runtime error: " + oneLine(e.getMessage()));
    } finally {
      feeds.values().forEach(OnnxTensor::close);
    }
  }

  /**
   * The bytes in a direct buffer from position 0, which ONNX Runtime reads in place. A heap buffer is copied here:
   * ONNX Runtime's Java API takes a heap buffer only as the typed buffer of its element type (a heap ByteBuffer of
   * FLOAT elements fails with a ClassCastException).
   */
  private static ByteBuffer direct(ByteBuffer data) {
    if (data.isDirect()) {
      return data.slice().order(ByteOrder.LITTLE_ENDIAN);
    }
    ByteBuffer copy = ByteBuffer.allocateDirect(data.remaining()).order(ByteOrder.LITTLE_ENDIAN);
    copy.put(data.duplicate());
    return copy.flip();
  }

  private static synchronized OrtEnvironment environment(Path nativeDir) throws LoadFailure {
    if (environment == null) {
      try {
        OrtNatives.prepare(nativeDir);
        environment = OrtEnvironment.getEnvironment(OrtLoggingLevel.ORT_LOGGING_LEVEL_WARNING, "ort-server");
      } catch (RuntimeException | LinkageError e) {
        throw new LoadFailure("cannot start ONNX Runtime: " + oneLine(String.valueOf(e.getMessage())));
      }
    }
    return environment;
  }

  private static ModelConfig.Builder readConfig(Path configFile) throws LoadFailure {
    String text;
    try {
      text = Files.readString(configFile, StandardCharsets.UTF_8);
    } catch (NoSuchFileException e) {
      throw new LoadFailure("model configuration " + configFile + " does not exist");
    } catch (IOException e) {
      throw new LoadFailure("cannot read model configuration " + configFile + ": " + e);
    }
    ModelConfig.Builder config = ModelConfig.newBuilder();
    try {
      // Strict, as Triton's parser: the schema is upstream's whole, so an unknown field is a typo or a setting from a
      // newer Triton, and skipping it would serve the model without it.
      TextFormat.merge(text, config);
    } catch (TextFormat.ParseException e) {
      throw new LoadFailure("invalid model configuration " + configFile + ": " + oneLine(e.getMessage()));
    }
    return config;
  }

  /** Checks what Triton checks before loading and fills in what it fills in for the ONNX Runtime backend. */
  private static ModelConfig normalize(String name, Path configFile, ModelConfig.Builder config)
      throws LoadFailure {
    if (config.getName().isEmpty()) {
      config.setName(name);
    } else if (!config.getName().equals(name)) {
      throw new LoadFailure("unexpected directory name '" + name + "' for model '" + config.getName()
          + "', directory name must equal model name (" + configFile + ")");
    }
    String platform = config.getPlatform();
    String backend = config.getBackend();
    if (platform.isEmpty() && backend.isEmpty()) {
      throw new LoadFailure(configFile + " names neither a platform nor a backend; ort-server serves platform '"
          + PLATFORM + "' (backend '" + BACKEND + "')");
    }
    if (!platform.isEmpty() && !platform.equals(PLATFORM)) {
      throw new LoadFailure(configFile + " asks for platform '" + platform + "', but ort-server serves only '"
          + PLATFORM + "'");
    }
    if (!backend.isEmpty() && !backend.equals(BACKEND)) {
      throw new LoadFailure(configFile + " asks for backend '" + backend + "', but ort-server serves only '"
          + BACKEND + "'");
    }
    // Before anything is filled in: what the file itself asks for.
    UnsupportedSettings.check(config.build(), configFile);
    config.setPlatform(PLATFORM).setBackend(BACKEND);
    if (config.getMaxBatchSize() < 0) {
      throw new LoadFailure(configFile + ": max_batch_size must be >= 0, not " + config.getMaxBatchSize());
    }
    if (!config.hasVersionPolicy()) {
      config.setVersionPolicy(ModelVersionPolicy.newBuilder()
          .setLatest(ModelVersionPolicy.Latest.newBuilder().setNumVersions(1)));
    }
    if (config.getDefaultModelFilename().isEmpty()) {
      config.setDefaultModelFilename(DEFAULT_MODEL_FILE);
    }
    if (config.getInstanceGroupCount() == 0) {
      config.addInstanceGroup(ModelInstanceGroup.newBuilder().setName(name).setCount(1)
          .setKind(ModelInstanceGroup.Kind.KIND_CPU));
    }
    return config.build();
  }

  /** Matches the configuration's tensors with the session's, filling in those the configuration leaves out. */
  private static LoadedModel bind(String name, long version, ModelConfig config, OrtEnvironment env,
      OrtSession session, Path configFile) throws LoadFailure {
    Map<String, TensorInfo> modelInputs;
    Map<String, TensorInfo> modelOutputs;
    try {
      modelInputs = tensorInfos(session.getInputInfo(), "input", name);
      modelOutputs = tensorInfos(session.getOutputInfo(), "output", name);
    } catch (OrtException e) {
      throw new LoadFailure("cannot read the inputs and outputs of model '" + name + "': " + oneLine(e.getMessage()));
    }
    int maxBatch = config.getMaxBatchSize();
    ModelConfig.Builder filled = config.toBuilder();
    List<TensorSpec> inputs = new ArrayList<>();
    if (config.getInputCount() == 0) {
      for (Map.Entry<String, TensorInfo> e : modelInputs.entrySet()) {
        TensorSpec spec = fromModel(name, "input", e.getKey(), e.getValue(), maxBatch);
        inputs.add(spec);
        filled.addInput(ModelInput.newBuilder().setName(spec.name()).setDataType(spec.type().configType)
            .addAllDims(boxed(spec.dims())));
      }
    } else {
      for (ModelInput input : config.getInputList()) {
        inputs.add(check(name, "input", input.getName(), input.getDataType(), input.getDimsList(), modelInputs,
            maxBatch, configFile));
      }
      if (modelInputs.size() != inputs.size()) {
        throw new LoadFailure("model '" + name + "' has " + modelInputs.size() + " inputs " + modelInputs.keySet()
            + " but " + configFile + " configures " + inputs.size());
      }
    }
    List<TensorSpec> outputs = new ArrayList<>();
    if (config.getOutputCount() == 0) {
      for (Map.Entry<String, TensorInfo> e : modelOutputs.entrySet()) {
        TensorSpec spec = fromModel(name, "output", e.getKey(), e.getValue(), maxBatch);
        outputs.add(spec);
        filled.addOutput(ModelOutput.newBuilder().setName(spec.name()).setDataType(spec.type().configType)
            .addAllDims(boxed(spec.dims())));
      }
    } else {
      // Like Triton, a configuration may list a subset of the model's outputs.
      for (ModelOutput output : config.getOutputList()) {
        outputs.add(check(name, "output", output.getName(), output.getDataType(), output.getDimsList(),
            modelOutputs, maxBatch, configFile));
      }
    }
    return new LoadedModel(name, version, filled.build(), env, session, inputs, outputs);
  }

  private static TensorSpec check(String model, String kind, String tensor, DataType configType,
      List<Long> configDims, Map<String, TensorInfo> modelTensors, int maxBatch, Path configFile)
      throws LoadFailure {
    TensorInfo info = modelTensors.get(tensor);
    if (info == null) {
      throw new LoadFailure("unexpected inference " + kind + " '" + tensor + "', allowed " + kind + "s are: "
          + String.join(", ", modelTensors.keySet()) + " (" + configFile + ")");
    }
    TensorType type = TensorType.fromConfig(configType);
    if (type == null) {
      throw new LoadFailure(configFile + ": " + kind + " '" + tensor + "' has data type " + configType
          + ", which ort-server does not support (supported: " + Arrays.toString(TensorType.values()) + ")");
    }
    TensorType modelType = typeOf(info);
    if (modelType != type) {
      throw new LoadFailure("unexpected datatype " + configType + " for " + kind + " '" + tensor + "' of model '"
          + model + "', the model has " + (modelType == null ? info.onnxType : modelType.configType) + " ("
          + configFile + ")");
    }
    long[] dims = configDims.stream().mapToLong(Long::longValue).toArray();
    TensorSpec spec = new TensorSpec(tensor, type, dims);
    long[] configured = spec.fullShape(maxBatch);
    long[] actual = info.getShape();
    boolean matches = configured.length == actual.length;
    for (int i = 0; matches && i < actual.length; i++) {
      matches = actual[i] < 0 || actual[i] == configured[i];
    }
    if (!matches) {
      throw new LoadFailure("model '" + model + "', tensor '" + tensor + "': the model has shape "
          + Tensor.shapeString(actual) + ", but " + configFile + " configures " + Tensor.shapeString(configured)
          + (maxBatch > 0 ? " (max_batch_size > 0 puts the batch dimension first)" : ""));
    }
    return spec;
  }

  private static TensorSpec fromModel(String model, String kind, String tensor, TensorInfo info, int maxBatch)
      throws LoadFailure {
    TensorType type = typeOf(info);
    if (type == null) {
      throw new LoadFailure("model '" + model + "' " + kind + " '" + tensor + "' has type " + info.onnxType
          + ", which ort-server does not support");
    }
    long[] shape = info.getShape();
    if (maxBatch > 0) {
      if (shape.length == 0 || shape[0] >= 0) {
        throw new LoadFailure("model '" + model + "' " + kind + " '" + tensor + "' has shape "
            + Tensor.shapeString(shape) + " without a variable first dimension, but max_batch_size is " + maxBatch);
      }
      shape = Arrays.copyOfRange(shape, 1, shape.length);
    }
    return new TensorSpec(tensor, type, shape);
  }

  private static Map<String, TensorInfo> tensorInfos(Map<String, NodeInfo> nodes, String kind, String model)
      throws LoadFailure {
    Map<String, TensorInfo> tensors = new LinkedHashMap<>();
    for (Map.Entry<String, NodeInfo> e : nodes.entrySet()) {
      if (!(e.getValue().getInfo() instanceof TensorInfo info)) {
        throw new LoadFailure("model '" + model + "' " + kind + " '" + e.getKey() + "' is not a tensor");
      }
      tensors.put(e.getKey(), info);
    }
    return tensors;
  }

  private static TensorType typeOf(TensorInfo info) {
    return switch (info.onnxType) {
      case ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL -> TensorType.BOOL;
      case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8 -> TensorType.UINT8;
      case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8 -> TensorType.INT8;
      case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT16 -> TensorType.INT16;
      case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32 -> TensorType.INT32;
      case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64 -> TensorType.INT64;
      case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT -> TensorType.FP32;
      case ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE -> TensorType.FP64;
      default -> null;
    };
  }

  private static OnnxJavaType javaType(TensorType type) {
    return switch (type) {
      case BOOL -> OnnxJavaType.BOOL;
      case UINT8 -> OnnxJavaType.UINT8;
      case INT8 -> OnnxJavaType.INT8;
      case INT16 -> OnnxJavaType.INT16;
      case INT32 -> OnnxJavaType.INT32;
      case INT64 -> OnnxJavaType.INT64;
      case FP32 -> OnnxJavaType.FLOAT;
      case FP64 -> OnnxJavaType.DOUBLE;
    };
  }

  private static List<Long> boxed(long[] dims) {
    return Arrays.stream(dims).boxed().toList();
  }

  private static void closeQuietly(OrtSession session) {
    try {
      session.close();
    } catch (OrtException e) {
      // nothing left to do with a session that cannot be freed
    }
  }

  /** ONNX Runtime messages may span lines; logs and error answers are one line each. */
  static String oneLine(String message) {
    return message == null ? "" : message.strip().replaceAll("\\s*\\R\\s*", " ");
  }
}
