package dev.thaw.sidecar;

import io.micronaut.context.annotation.ConfigurationProperties;
import java.nio.file.Path;
import java.util.List;

/**
 * The sidecar's settings ({@code thaw.*}): from {@code application.yml}'s defaults, then {@code THAW_*} environment
 * variables, then {@code thaw sidecar}'s flags. docs/api.md lists them with their defaults.
 */
@ConfigurationProperties("thaw")
public final class SidecarConfig {
  private String origin = Path.of(System.getProperty("user.home"), ".thaw", "origin").toUri().toString();
  private Path cacheDir = Path.of(System.getProperty("user.home"), ".cache", "thaw");
  private Long cacheMaxBytes;
  private Path mountRoot = Path.of(System.getProperty("user.home"), ".thaw", "mounts");
  private Path snapshots = Path.of(System.getProperty("user.home"), ".local", "share", "thaw", "snapshots");
  private Path snapshotKeyFile;
  private int parallelism = 16;
  private boolean passthrough;
  private int coldStartsKept = 200;
  private List<String> origins = List.of();
  private List<String> directRoots = List.of();
  private List<String> fallbackCommand = List.of();

  /** Where NAME[:TAG] and digest sources are read from unless a request names another origin. */
  public String getOrigin() {
    return origin;
  }

  public void setOrigin(String origin) {
    this.origin = expandHome(origin);
  }

  /** Origins a mount request may name besides {@link #getOrigin()}; none by default. */
  public List<String> getOrigins() {
    return origins;
  }

  public void setOrigins(List<String> origins) {
    this.origins = origins.stream().map(SidecarConfig::expandHome).toList();
  }

  /**
   * Where direct-mode sources may be: URI prefixes such as {@code s3://models/} or {@code file:///srv/models/}. None by
   * default: a request cannot mount a bucket or a host directory the sidecar was not told it may serve.
   */
  public List<String> getDirectRoots() {
    return directRoots;
  }

  public void setDirectRoots(List<String> directRoots) {
    this.directRoots = directRoots.stream().map(SidecarConfig::expandHome).toList();
  }

  /**
   * What a failed restore boots instead (the server's command line); none: the command of a snapshot whose record
   * authenticates with the snapshot key, else nothing. No request can name one.
   */
  public List<String> getFallbackCommand() {
    return fallbackCommand;
  }

  public void setFallbackCommand(List<String> fallbackCommand) {
    this.fallbackCommand = List.copyOf(fallbackCommand);
  }

  private static String expandHome(String uri) {
    return uri.startsWith("~/") ? Path.of(System.getProperty("user.home"), uri.substring(2)).toUri().toString() : uri;
  }

  public Path getCacheDir() {
    return cacheDir;
  }

  public void setCacheDir(Path cacheDir) {
    this.cacheDir = cacheDir;
  }

  /** The most bytes the chunk cache may hold; null: 80 % of its file system's free space. */
  public Long getCacheMaxBytes() {
    return cacheMaxBytes;
  }

  public void setCacheMaxBytes(Long cacheMaxBytes) {
    this.cacheMaxBytes = cacheMaxBytes;
  }

  /** Every mount goes under this directory; nothing the API is given can mount elsewhere. */
  public Path getMountRoot() {
    return mountRoot;
  }

  public void setMountRoot(Path mountRoot) {
    this.mountRoot = mountRoot;
  }

  /** Where this node keeps snapshots (as thaw checkpoint and thaw restore do: {@code THAW_SNAPSHOTS}). */
  public Path getSnapshots() {
    return snapshots;
  }

  public void setSnapshots(Path snapshots) {
    this.snapshots = snapshots;
  }

  /** The key sealing snapshots pushed to the store; null: as thaw checkpoint finds it ($THAW_SNAPSHOT_KEY, ...). */
  public Path getSnapshotKeyFile() {
    return snapshotKeyFile;
  }

  public void setSnapshotKeyFile(Path snapshotKeyFile) {
    this.snapshotKeyFile = snapshotKeyFile;
  }

  /** Whether mounts use FUSE passthrough for files read whole ({@code MountOptions#passthrough}); off by default. */
  public boolean isPassthrough() {
    return passthrough;
  }

  public void setPassthrough(boolean passthrough) {
    this.passthrough = passthrough;
  }

  public int getParallelism() {
    return parallelism;
  }

  public void setParallelism(int parallelism) {
    if (parallelism < 1) {
      throw new IllegalArgumentException("thaw.parallelism must be at least 1, not " + parallelism);
    }
    this.parallelism = parallelism;
  }

  /** How many recent cold starts the API keeps. */
  public int getColdStartsKept() {
    return coldStartsKept;
  }

  public void setColdStartsKept(int coldStartsKept) {
    this.coldStartsKept = Math.max(1, coldStartsKept);
  }
}
