package dev.thaw.examples.ortserver;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The server's settings, parsed from flags named like Triton's ({@code tritonserver --model-repository=DIR ...}).
 * Every flag takes {@code --flag=value} and {@code --flag value}; {@code --warmup} also stands alone.
 */
public final class ServerOptions {
  /** Which models the server loads, as Triton's {@code --model-control-mode}; Triton's "poll" is not offered. */
  public enum ModelControlMode {
    /** Every model in the repository is loaded at start; load and unload requests are refused. */
    NONE,
    /** Only {@code --load-model} models are loaded at start; load and unload requests manage the rest. */
    EXPLICIT
  }

  static final String USAGE = """
      Usage: ort-server --model-repository=DIR [options]

      A small inference server on ONNX Runtime (CPU) that reads a Triton model repository and speaks Triton's
      gRPC (inference.GRPCInferenceService) and HTTP/REST v2 protocols.

        --model-repository=DIR         the model repository (required): DIR/<model>/config.pbtxt and
                                       DIR/<model>/<version>/model.onnx
        --model-control-mode=MODE      none (default): load every model at start, refuse load/unload requests;
                                       explicit: load only --load-model models at start, then on request
        --load-model=NAME              with explicit mode, a model to load at start; repeatable; * loads all
        --grpc-port=PORT               gRPC port (default 8001; 0 picks a free port)
        --http-port=PORT               HTTP port (default 8000; 0 picks a free port)
        --grpc-address=ADDR            gRPC listen address (default 127.0.0.1; 0.0.0.0 for all interfaces)
        --http-address=ADDR            HTTP listen address (default 127.0.0.1; 0.0.0.0 for all interfaces)
        --metrics-port=PORT            Prometheus metrics port, GET /metrics (default 8002; 0 picks a free port)
        --metrics-address=ADDR         metrics listen address (default 127.0.0.1)
        --allow-metrics=true|false     serve metrics (default true)
        --strict-readiness=true|false  true (default): ready once every model loaded at start is ready;
                                       false: ready once live
        --warmup[=true|false]          run one inference of zeros (batch 1) per model before it reports ready
        --ort-session-config=KEY=VALUE an ONNX Runtime session configuration entry for every model; repeatable
                                       (e.g. session.disable_prepacking=1: weights stay memory-mapped from
                                       the external data files instead of being copied at load)
        --ort-native-dir=DIR           where ONNX Runtime's native libraries are extracted once and loaded from
                                       (default $XDG_CACHE_HOME or ~/.cache, then thaw/onnxruntime-<version>;
                                       -Donnxruntime.native.path=DIR uses DIR as it is)
        --help                         this text
      """;

  private Path modelRepository;
  private ModelControlMode modelControlMode = ModelControlMode.NONE;
  private final List<String> loadModels = new ArrayList<>();
  private int grpcPort = 8001;
  private int httpPort = 8000;
  private String grpcAddress = "127.0.0.1";
  private String httpAddress = "127.0.0.1";
  private int metricsPort = 8002;
  private String metricsAddress = "127.0.0.1";
  private boolean allowMetrics = true;
  private boolean strictReadiness = true;
  private boolean warmup;
  private Path ortNativeDir;
  private final Map<String, String> ortSessionConfig = new LinkedHashMap<>();
  private boolean help;

  private ServerOptions() {}

  /**
   * Parses command-line flags.
   *
   * @throws IllegalArgumentException with a one-line message naming the flag, for an unknown flag, a missing or bad
   *     value, or a missing {@code --model-repository} (unless {@code --help} was given)
   */
  public static ServerOptions parse(String... args) {
    ServerOptions o = new ServerOptions();
    for (int i = 0; i < args.length; i++) {
      String arg = args[i];
      if (!arg.equals("-h") && (!arg.startsWith("--") || arg.length() == 2)) {
        throw new IllegalArgumentException("unexpected argument '" + arg + "'");
      }
      int eq = arg.indexOf('=');
      String flag = eq < 0 ? arg : arg.substring(0, eq);
      String inline = eq < 0 ? null : arg.substring(eq + 1);
      switch (flag) {
        case "--help", "-h" -> o.help = true;
        case "--warmup" -> o.warmup = inline == null || bool(flag, inline);
        case "--model-repository", "--model-store" -> {
          if (o.modelRepository != null) {
            throw new IllegalArgumentException("ort-server serves one model repository, but " + flag
                + " was given twice");
          }
          o.modelRepository = Path.of(nonEmpty(flag, value(args, i, inline)));
        }
        case "--model-control-mode" -> o.modelControlMode = mode(value(args, i, inline));
        case "--load-model" -> o.loadModels.add(nonEmpty(flag, value(args, i, inline)));
        case "--grpc-port" -> o.grpcPort = port(flag, value(args, i, inline));
        case "--http-port" -> o.httpPort = port(flag, value(args, i, inline));
        case "--grpc-address" -> o.grpcAddress = nonEmpty(flag, value(args, i, inline));
        case "--http-address" -> o.httpAddress = nonEmpty(flag, value(args, i, inline));
        case "--metrics-port" -> o.metricsPort = port(flag, value(args, i, inline));
        case "--metrics-address" -> o.metricsAddress = nonEmpty(flag, value(args, i, inline));
        case "--allow-metrics" -> o.allowMetrics = bool(flag, value(args, i, inline));
        case "--strict-readiness" -> o.strictReadiness = bool(flag, value(args, i, inline));
        case "--ort-native-dir" -> o.ortNativeDir = Path.of(nonEmpty(flag, value(args, i, inline)));
        case "--ort-session-config" -> {
          String entry = value(args, i, inline);
          int split = entry.indexOf('=');
          if (split <= 0) {
            throw new IllegalArgumentException(flag + " must be KEY=VALUE, not '" + entry + "'");
          }
          o.ortSessionConfig.put(entry.substring(0, split), entry.substring(split + 1));
        }
        default -> throw new IllegalArgumentException("unknown flag " + flag);
      }
      if (inline == null && takesValue(flag)) {
        i++;
      }
    }
    if (o.help) {
      return o;
    }
    if (o.modelRepository == null) {
      throw new IllegalArgumentException("--model-repository is required");
    }
    if (!o.loadModels.isEmpty() && o.modelControlMode != ModelControlMode.EXPLICIT) {
      throw new IllegalArgumentException("--load-model needs --model-control-mode=explicit (in none mode every model"
          + " is loaded)");
    }
    return o;
  }

  public Path modelRepository() {
    return modelRepository;
  }

  public ModelControlMode modelControlMode() {
    return modelControlMode;
  }

  /** The {@code --load-model} names in order; {@code *} stands for every model in the repository. */
  public List<String> loadModels() {
    return List.copyOf(loadModels);
  }

  public int grpcPort() {
    return grpcPort;
  }

  public int httpPort() {
    return httpPort;
  }

  public String grpcAddress() {
    return grpcAddress;
  }

  public String httpAddress() {
    return httpAddress;
  }

  public int metricsPort() {
    return metricsPort;
  }

  public String metricsAddress() {
    return metricsAddress;
  }

  /** Whether the metrics endpoint is served ({@code --allow-metrics}). */
  public boolean allowMetrics() {
    return allowMetrics;
  }

  /** {@code --strict-readiness}: whether readiness waits for the models loaded at start. */
  public boolean strictReadiness() {
    return strictReadiness;
  }

  public boolean warmup() {
    return warmup;
  }

  /** The {@code --ort-native-dir} directory, or null for the default. */
  public Path ortNativeDir() {
    return ortNativeDir;
  }

  /** The {@code --ort-session-config} entries, applied to every model's ONNX Runtime session. */
  public Map<String, String> ortSessionConfig() {
    return Collections.unmodifiableMap(ortSessionConfig);
  }

  /** Whether {@code --help} was given: the caller prints {@link #usage()} and starts nothing. */
  public boolean help() {
    return help;
  }

  public static String usage() {
    return USAGE;
  }

  private static boolean takesValue(String flag) {
    return !flag.equals("--help") && !flag.equals("-h") && !flag.equals("--warmup");
  }

  private static String value(String[] args, int i, String inline) {
    if (inline != null) {
      return inline;
    }
    if (i + 1 >= args.length || args[i + 1].startsWith("--")) {
      throw new IllegalArgumentException(args[i] + " needs a value");
    }
    return args[i + 1];
  }

  private static String nonEmpty(String flag, String value) {
    if (value.isBlank()) {
      throw new IllegalArgumentException(flag + " needs a non-empty value");
    }
    return value;
  }

  private static int port(String flag, String value) {
    try {
      int port = Integer.parseInt(value);
      if (port >= 0 && port <= 65535) {
        return port;
      }
    } catch (NumberFormatException e) {
      // reported below
    }
    throw new IllegalArgumentException(flag + " must be a port number (0-65535; 0 picks a free port), not '" + value
        + "'");
  }

  private static boolean bool(String flag, String value) {
    return switch (value.toLowerCase(Locale.ROOT)) {
      case "true", "1", "yes", "on" -> true;
      case "false", "0", "no", "off" -> false;
      default -> throw new IllegalArgumentException(flag + " must be true or false, not '" + value + "'");
    };
  }

  private static ModelControlMode mode(String value) {
    return switch (value.toLowerCase(Locale.ROOT)) {
      case "none" -> ModelControlMode.NONE;
      case "explicit" -> ModelControlMode.EXPLICIT;
      case "poll" -> throw new IllegalArgumentException("--model-control-mode=poll is not supported by ort-server"
          + " (none or explicit)");
      default -> throw new IllegalArgumentException("--model-control-mode must be none or explicit, not '" + value
          + "'");
    };
  }
}
