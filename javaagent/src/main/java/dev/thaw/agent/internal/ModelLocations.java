package dev.thaw.agent.internal;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Maps a model location a library is asked to open to the path of Thaw's mount that serves it: a path under a
 * configured prefix, or {@code thaw://NAME:TAG[/path]}. Each source is mounted once (the sidecar keeps the mount);
 * a location Thaw does not serve is passed on unchanged, and so is one whose mount fails, said in one line.
 */
final class ModelLocations implements java.util.function.UnaryOperator<String> {
  private static final String SCHEME = "thaw://";
  private final AgentConfig config;
  private final SidecarClient sidecar;
  /** After a failed mount the source is not asked for again this long: one line per failure, no wait per load. */
  static final long RETRY_AFTER_NANOS = java.util.concurrent.TimeUnit.SECONDS.toNanos(30);
  private final Map<String, String> mounted = new ConcurrentHashMap<>();
  private final Map<String, Long> failedAt = new ConcurrentHashMap<>();
  private final Map<String, String> skippedBecause = new ConcurrentHashMap<>(); // location -> why Thaw did not serve it

  ModelLocations(AgentConfig config, SidecarClient sidecar) {
    this.config = config;
    this.sidecar = sidecar;
  }

  /** Whether {@code path} lies in one of the mounts the agent asked the sidecar for. */
  boolean isMounted(String path) {
    return mounted.values().stream().anyMatch(at -> path.equals(at) || path.startsWith(at + "/"));
  }

  @Override
  public String apply(String location) {
    return resolve(location);
  }

  /** Why Thaw did not serve a location, which it should have; null when it did, or was not asked to. */
  java.util.function.Function<String, String> whySkipped() {
    return new java.util.function.Function<>() { // a class, not a lambda: nothing on the start path costs indy
      @Override
      public String apply(String location) {
        return skippedBecause.get(location);
      }
    };
  }

  String resolve(String location) {
    for (AgentConfig.Mapping m : config.mappings()) {
      if (location.equals(m.prefix()) || location.startsWith(m.prefix() + "/")) {
        return mountedPath(m.source(), location.substring(m.prefix().length()), location);
      }
    }
    if (location.startsWith(SCHEME)) {
      String rest = location.substring(SCHEME.length());
      int tag = rest.indexOf(':');
      int slash = tag < 0 ? -1 : rest.indexOf('/', tag);
      String source = slash < 0 ? rest : rest.substring(0, slash);
      return mountedPath(source, slash < 0 ? "" : rest.substring(slash), location);
    }
    return location;
  }

  private String mountedPath(String source, String rest, String location) {
    Long failed = failedAt.get(source);
    if (failed != null && System.nanoTime() - failed < RETRY_AFTER_NANOS) {
      return location; // said when it failed
    }
    try {
      String at = mounted.get(source);
      if (at == null) {
        long start = System.nanoTime();
        at = sidecar.mount(source);
        mounted.put(source, at);
        System.err.printf("thaw-agent: %s is mounted at %s (%d ms)%n", source, at, (System.nanoTime() - start)
            / 1_000_000);
      }
      return at + rest;
    } catch (Exception e) {
      if (e instanceof InterruptedException) {
        Thread.currentThread().interrupt();
      }
      failedAt.put(source, System.nanoTime());
      skippedBecause.put(location, e.getMessage());
      System.err.println("thaw-agent: " + location + " is opened as it is, not through Thaw: " + e.getMessage());
      return location;
    }
  }
}
