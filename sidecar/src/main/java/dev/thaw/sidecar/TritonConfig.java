package dev.thaw.sidecar;

import io.micronaut.context.annotation.ConfigurationProperties;
import io.micronaut.core.convert.ConversionService;
import java.time.Duration;
import java.util.List;

/**
 * The sidecar in front of a Triton container ({@code thaw.triton.*}; docs/api.md): the repositories Thaw mounts for
 * it, the ports Thaw serves as Triton's, and where Triton itself listens. Off unless {@code thaw.triton.enabled}.
 */
@ConfigurationProperties("thaw.triton")
public final class TritonConfig {
  private boolean enabled;
  private List<String> repositories = List.of();
  private String mountPath = "triton";
  private String address = "127.0.0.1";
  private int httpPort = 8000;
  private int grpcPort = 8001;
  private String upstreamHttp = "127.0.0.1:18000";
  private String upstreamGrpc = "127.0.0.1:18001";
  private Duration idleUnload = Duration.ZERO;
  private List<String> modelIdleUnload = List.of();
  private int maxHeldPerModel = 1_000;
  private Duration loadTimeout = Duration.ofMinutes(10);

  /** Whether the sidecar serves Triton's ports and mounts its repositories. */
  public boolean isEnabled() {
    return enabled;
  }

  public void setEnabled(boolean enabled) {
    this.enabled = enabled;
  }

  /**
   * Triton's model repositories, as its {@code --model-repository} takes them ({@code s3://bucket/path},
   * {@code s3://host:port/bucket/path}) or {@code thaw://NAME[:TAG]}; each is mounted at
   * {@code <mount-root>/<mount-path>/repository-N}, which Triton's container is given.
   */
  public List<String> getRepositories() {
    return repositories;
  }

  public void setRepositories(List<String> repositories) {
    this.repositories = List.copyOf(repositories);
  }

  /** Under the mount root, where the repositories are mounted. */
  public String getMountPath() {
    return mountPath;
  }

  public void setMountPath(String mountPath) {
    this.mountPath = mountPath;
  }

  /** The address Triton's public ports are served on: loopback unless configured (a pod's: 0.0.0.0). */
  public String getAddress() {
    return address;
  }

  public void setAddress(String address) {
    this.address = address;
  }

  /** Triton's public HTTP port, served by Thaw; 0 picks one, -1 serves none. */
  public int getHttpPort() {
    return httpPort;
  }

  public void setHttpPort(int httpPort) {
    this.httpPort = httpPort;
  }

  /** Triton's public gRPC port, served by Thaw; 0 picks one, -1 serves none. */
  public int getGrpcPort() {
    return grpcPort;
  }

  public void setGrpcPort(int grpcPort) {
    this.grpcPort = grpcPort;
  }

  /** Where Triton's own HTTP endpoint listens ({@code host:port}): its {@code --http-port}. */
  public String getUpstreamHttp() {
    return upstreamHttp;
  }

  public void setUpstreamHttp(String upstreamHttp) {
    this.upstreamHttp = upstreamHttp;
  }

  /** Where Triton's own gRPC endpoint listens ({@code host:port}): its {@code --grpc-port}; models load through it. */
  public String getUpstreamGrpc() {
    return upstreamGrpc;
  }

  public void setUpstreamGrpc(String upstreamGrpc) {
    this.upstreamGrpc = upstreamGrpc;
  }

  /** After how long without a request a loaded model is unloaded; 0s (the default): never. */
  public Duration getIdleUnload() {
    return idleUnload;
  }

  public void setIdleUnload(Duration idleUnload) {
    this.idleUnload = idleUnload;
  }

  /** Models' own idle times, each {@code MODEL=DURATION} (e.g. {@code resnet=30m}); they win over idle-unload. */
  public List<String> getModelIdleUnload() {
    return modelIdleUnload;
  }

  public void setModelIdleUnload(List<String> modelIdleUnload) {
    this.modelIdleUnload = List.copyOf(modelIdleUnload);
  }

  /** How many requests may wait for one model's load. */
  public int getMaxHeldPerModel() {
    return maxHeldPerModel;
  }

  public void setMaxHeldPerModel(int maxHeldPerModel) {
    this.maxHeldPerModel = maxHeldPerModel;
  }

  /** How long one load may take. */
  public Duration getLoadTimeout() {
    return loadTimeout;
  }

  public void setLoadTimeout(Duration loadTimeout) {
    this.loadTimeout = loadTimeout;
  }

  /** {@link #getModelIdleUnload()} entry {@code MODEL=DURATION} as its model and time. */
  static java.util.Map.Entry<String, Duration> modelIdleUnload(String entry) {
    int eq = entry.indexOf('=');
    if (eq <= 0) {
      throw new IllegalArgumentException("thaw.triton.model-idle-unload: expected MODEL=DURATION (e.g. resnet=30m), "
          + "not '" + entry + "'");
    }
    String time = entry.substring(eq + 1).strip();
    Duration idle = ConversionService.SHARED.convert(time, Duration.class).orElseThrow(() ->
        new IllegalArgumentException("thaw.triton.model-idle-unload: '" + time + "' is not a duration (30s, 10m, 2h)"));
    return java.util.Map.entry(entry.substring(0, eq).strip(), idle);
  }
}
