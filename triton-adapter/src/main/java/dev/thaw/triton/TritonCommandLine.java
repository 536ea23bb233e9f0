package dev.thaw.triton;

import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A {@code tritonserver} command line as Thaw's wrapper reads it, and the one it starts Triton with.
 *
 * <p>Read: {@code --model-repository} (repeatable; {@code --model-store} is Triton's older name),
 * {@code --model-control-mode}, {@code --load-model}, the {@code --http-*}, {@code --grpc-*} and {@code --metrics-*}
 * ports, addresses and {@code --allow-*} switches, and {@code --strict-readiness}. Each takes its value as
 * {@code --flag=value} or {@code --flag value}, as Triton's own parser does. Every other argument is passed on as
 * given.
 *
 * <p>Repositories: a local path is served as it is; {@code s3://bucket/path} and Triton's form for another S3 store,
 * {@code s3://[http://|https://]host:port/bucket/path} (plain HTTP unless {@code https://} is written, as in Triton),
 * become Thaw direct-mode sources over the same objects, with Triton's {@code AWS_*} variables; {@code thaw://NAME[:TAG]}
 * names a model pushed to Thaw's origin. Google Cloud Storage and Azure repositories are refused.
 */
public final class TritonCommandLine {
  /** Triton's default ports. */
  public static final int HTTP_PORT = 8000, GRPC_PORT = 8001, METRICS_PORT = 8002;

  private static final Pattern S3_AT_HOST =
      Pattern.compile("s3://(https?://)?([0-9A-Za-z.-]+):([0-9]+)/([0-9a-z.-]+)(/.*)?");
  private static final Pattern S3 = Pattern.compile("s3://([0-9a-z.-]+)(/.*)?");

  /** How Triton is told to control its models. */
  public enum ControlMode { NONE, POLL, EXPLICIT }

  /**
   * One {@code --model-repository}: as written, and what Thaw mounts for it ({@code source}, null for a local
   * directory Triton reads as it is).
   */
  public record Repository(String given, String source) {
    /** Whether Thaw mounts this repository (false: a local directory passed on unchanged). */
    public boolean mounted() {
      return source != null;
    }

    /**
     * A repository as Triton's {@code --model-repository} takes it, with Triton's AWS variables from {@code env}.
     *
     * @throws IllegalArgumentException for a form Thaw cannot serve (gs://, as://, an unknown scheme), saying which
     *     forms it can
     */
    public static Repository parse(String given, Map<String, String> env) {
      return repository("--model-repository", given, env);
    }
  }

  /** A public endpoint: whether Triton serves it, on which address and port. */
  public record Endpoint(boolean allowed, String address, int port) {}

  private final String executable;
  private final List<String> passedOn = new ArrayList<>(); // arguments Thaw leaves as they are, in order
  private final List<Repository> repositories = new ArrayList<>();
  private final List<String> loadModels = new ArrayList<>();
  private ControlMode controlMode = ControlMode.NONE;
  private boolean strictReadiness = true;
  /** The endpoints by name (http, grpc, metrics), Triton's defaults until a flag says otherwise. */
  private final Map<String, Endpoint> endpoints = new HashMap<>(Map.of(
      "http", new Endpoint(true, "0.0.0.0", HTTP_PORT),
      "grpc", new Endpoint(true, "0.0.0.0", GRPC_PORT),
      "metrics", new Endpoint(true, "0.0.0.0", METRICS_PORT)));

  private TritonCommandLine(String executable) {
    this.executable = executable;
  }

  /**
   * Reads {@code command}: the Triton executable, then its arguments; {@code env} supplies Triton's AWS variables.
   *
   * @throws IllegalArgumentException for a missing or unusable value, a repository Thaw cannot mount, or no
   *     repository at all (the message names the flag and says what is accepted)
   */
  public static TritonCommandLine parse(List<String> command, Map<String, String> env) {
    if (command.isEmpty() || command.getFirst().isBlank()) {
      throw new IllegalArgumentException("no Triton command: give it after --, e.g. thaw triton -- tritonserver "
          + "--model-repository=s3://bucket/models");
    }
    TritonCommandLine c = new TritonCommandLine(command.getFirst());
    for (int i = 1; i < command.size(); i++) {
      String arg = command.get(i);
      int eq = arg.indexOf('=');
      String flag = arg.startsWith("--") ? (eq > 0 ? arg.substring(0, eq) : arg) : "";
      if (!READ.contains(flag)) {
        c.passedOn.add(arg);
        continue;
      }
      String value;
      if (eq > 0) {
        value = arg.substring(eq + 1);
      } else if (i + 1 < command.size()) {
        value = command.get(++i);
      } else {
        throw new IllegalArgumentException(flag + " needs a value");
      }
      c.read(flag, value, env);
    }
    if (c.repositories.isEmpty()) {
      throw new IllegalArgumentException("no --model-repository in the Triton command");
    }
    return c;
  }

  private static final List<String> READ = List.of("--model-repository", "--model-store", "--model-control-mode",
      "--load-model", "--strict-readiness", "--http-port", "--grpc-port", "--metrics-port", "--http-address",
      "--grpc-address", "--metrics-address", "--allow-http", "--allow-grpc", "--allow-metrics");

  private void read(String flag, String value, Map<String, String> env) {
    switch (flag) {
      case "--model-repository", "--model-store" -> repositories.add(repository(flag, value, env));
      case "--model-control-mode" -> controlMode = switch (value.toLowerCase(Locale.ROOT)) {
        case "none" -> ControlMode.NONE;
        case "poll" -> ControlMode.POLL;
        case "explicit" -> ControlMode.EXPLICIT;
        default -> throw new IllegalArgumentException(
            "--model-control-mode must be none, poll or explicit, not '" + value + "'");
      };
      case "--load-model" -> loadModels.add(value);
      case "--strict-readiness" -> strictReadiness = bool(flag, value);
      case "--http-port", "--grpc-port", "--metrics-port" -> endpoints.compute(endpointOf(flag),
          (name, e) -> new Endpoint(e.allowed(), e.address(), port(flag, value)));
      case "--allow-http", "--allow-grpc", "--allow-metrics" -> endpoints.compute(endpointOf(flag),
          (name, e) -> new Endpoint(bool(flag, value), e.address(), e.port()));
      default -> endpoints.compute(endpointOf(flag), (name, e) -> new Endpoint(e.allowed(), value, e.port()));
    }
  }

  /** The Triton executable, as given. */
  public String executable() {
    return executable;
  }

  /** The repositories in the order given (Triton's order, which decides between models of the same name). */
  public List<Repository> repositories() {
    return List.copyOf(repositories);
  }

  public ControlMode controlMode() {
    return controlMode;
  }

  /** The {@code --load-model} names, in order ({@code *} is every model). */
  public List<String> loadModels() {
    return List.copyOf(loadModels);
  }

  public boolean strictReadiness() {
    return strictReadiness;
  }

  /** The HTTP/REST endpoint the user asked for (Triton's defaults: allowed, all addresses, port 8000). */
  public Endpoint http() {
    return endpoints.get("http");
  }

  /** The gRPC endpoint the user asked for (allowed, all addresses, port 8001). */
  public Endpoint grpc() {
    return endpoints.get("grpc");
  }

  /** The metrics endpoint the user asked for (allowed, all addresses, port 8002). */
  public Endpoint metrics() {
    return endpoints.get("metrics");
  }

  /** {@code --allow-grpc}, {@code --grpc-port}, {@code --grpc-address}: grpc. */
  private static String endpointOf(String flag) {
    String f = flag.substring(2);
    return f.startsWith("allow-") ? f.substring("allow-".length()) : f.substring(0, f.indexOf('-'));
  }

  /**
   * The command Triton is started with behind Thaw: each repository Thaw mounts replaced by its mount (in order;
   * {@code mounts} holds one path per repository, local ones included as they are), explicit model control whatever
   * the mode asked for (the {@code --load-model} models load at start, {@code *} for all; every other model loads
   * on its first request, through Thaw's proxies), and each allowed endpoint on the loopback address at the internal
   * port given, which Thaw's proxies forward to.
   */
  public List<String> tritonCommand(List<Path> mounts, int httpPort, int grpcPort, int metricsPort) {
    if (mounts.size() != repositories.size()) {
      throw new IllegalArgumentException(mounts.size() + " paths for " + repositories.size() + " repositories");
    }
    List<String> out = new ArrayList<>();
    out.add(executable);
    for (Path mount : mounts) {
      out.add("--model-repository=" + Objects.requireNonNull(mount));
    }
    out.add("--model-control-mode=explicit"); // every other model loads on its first request, through Thaw
    for (String model : loadModels) {
      out.add("--load-model=" + model);
    }
    out.add("--strict-readiness=" + strictReadiness);
    addEndpoint(out, "http", http(), httpPort);
    addEndpoint(out, "grpc", new Endpoint(true, "", 0), grpcPort); // always on: Thaw loads models through it
    addEndpoint(out, "metrics", metrics(), metricsPort);
    out.addAll(passedOn);
    return out;
  }

  private static void addEndpoint(List<String> out, String name, Endpoint asked, int internalPort) {
    if (!asked.allowed()) {
      out.add("--allow-" + name + "=false");
      return;
    }
    out.add("--" + name + "-address=127.0.0.1");
    out.add("--" + name + "-port=" + internalPort);
  }

  private static Repository repository(String flag, String value, Map<String, String> env) {
    String v = value.strip();
    if (v.isEmpty()) {
      throw new IllegalArgumentException(flag + " needs a non-empty value");
    }
    if (v.startsWith("gs://") || v.startsWith("as://")) {
      throw new IllegalArgumentException(flag + "=" + v + ": Thaw mounts s3://, thaw:// and local repositories, not "
          + v.substring(0, 5) + " (run tritonserver without thaw for Google Cloud Storage and Azure)");
    }
    if (v.startsWith("thaw://")) {
      String name = v.substring("thaw://".length());
      if (name.isEmpty() || name.contains("/")) {
        throw new IllegalArgumentException(flag + "=" + v + ": expected thaw://NAME[:TAG]");
      }
      return new Repository(v, name);
    }
    if (v.startsWith("s3://")) {
      return new Repository(v, s3Source(flag, v, env));
    }
    if (v.contains("://")) {
      throw new IllegalArgumentException(flag + "=" + v + ": not a repository Thaw knows (a local path, "
          + "s3://bucket/path, s3://host:port/bucket/path or thaw://NAME[:TAG])");
    }
    return new Repository(v, null);
  }

  /** Triton's S3 path as Thaw's direct-mode source over the same objects, addressed as Triton addresses them. */
  private static String s3Source(String flag, String path, Map<String, String> env) {
    StringBuilder query = new StringBuilder("path-style=true"); // Triton addresses buckets by path
    String bucket;
    String prefix;
    Matcher atHost = S3_AT_HOST.matcher(path);
    Matcher plain = S3.matcher(path);
    if (atHost.matches()) {
      String scheme = "https://".equals(atHost.group(1)) ? "https://" : "http://";
      query.append("&endpoint=").append(encode(scheme + atHost.group(2) + ":" + atHost.group(3)));
      bucket = atHost.group(4);
      prefix = atHost.group(5);
    } else if (plain.matches()) {
      bucket = plain.group(1);
      prefix = plain.group(2);
    } else {
      throw new IllegalArgumentException(flag + "=" + path + ": not an S3 path Triton accepts (s3://bucket/path or "
          + "s3://[http://|https://]host:port/bucket/path)");
    }
    // Triton's region variable; the AWS SDK Thaw uses reads AWS_REGION, which wins when both are set
    String region = env.get("AWS_DEFAULT_REGION");
    if (region != null && !region.isBlank() && env.get("AWS_REGION") == null) {
      query.append("&region=").append(encode(region));
    }
    String p = prefix == null ? "" : prefix.replaceAll("/+", "/").replaceAll("^/|/$", "");
    return "s3://" + bucket + "/" + (p.isEmpty() ? "" : p + "/") + "?" + query;
  }

  private static String encode(String s) {
    return URLEncoder.encode(s, StandardCharsets.UTF_8);
  }

  private static int port(String flag, String value) {
    try {
      int port = Integer.parseInt(value.strip());
      if (port >= 0 && port <= 65535) {
        return port;
      }
    } catch (NumberFormatException e) {
      // reported below
    }
    throw new IllegalArgumentException(flag + " must be a port number (0-65535), not '" + value + "'");
  }

  /** Triton's booleans: true/false, 1/0, and their kin. */
  private static boolean bool(String flag, String value) {
    return switch (value.strip().toLowerCase(Locale.ROOT)) {
      case "true", "1", "yes", "on" -> true;
      case "false", "0", "no", "off" -> false;
      default -> throw new IllegalArgumentException(flag + " must be true or false, not '" + value + "'");
    };
  }
}
