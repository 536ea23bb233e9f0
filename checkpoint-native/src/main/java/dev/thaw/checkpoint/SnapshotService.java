package dev.thaw.checkpoint;

import dev.thaw.store.ModelName;
import dev.thaw.store.ModelStore;
import dev.thaw.store.Origin;
import dev.thaw.store.Origins;
import dev.thaw.store.PushProgress;
import dev.thaw.store.Pusher;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.stream.Stream;

/**
 * Snapshots of warm servers, and the one way in to them: {@link #take}, {@link #restore}, {@link #fetchAhead} and
 * {@link #list}, for {@code thaw checkpoint}, {@code thaw restore}, the sidecar's API and a cluster member alike.
 *
 * <p>Built once from settings ({@link #builder}): where this node keeps snapshots, the origin they are pushed to and
 * fetched from, the snapshot key, how many range requests a fetch keeps in flight, Thaw's version (part of every
 * key), and what a restore needs besides: what boots when it fails ({@link Fallback}) and who mounts a model its server
 * read through a Thaw mount ({@link MountProvider}). It owns what the operations share: CRIU and the CUDA checkpointer
 * (located on first use, so a node without CRIU still lists its snapshots), the snapshot key (read when an operation
 * needs it, so a missing key fails only what needs one) and the store (the origin is opened for each operation and
 * closed after it, as a long-lived sidecar should).
 *
 * <p>Inside the package, for its tests: {@link Snapshots} dumps one images directory and restores and verifies it;
 * {@link SnapshotStore} keeps snapshots by name on this node, seals and pushes them, and authenticates and fetches
 * them from the origin; {@link SnapshotCipher} is the seal.
 */
public final class SnapshotService {
  private static final String TRITON_READY = "http://127.0.0.1:8000/v2/health/ready";
  private static final int PUSH_CONCURRENCY = 16;

  private final Path root;
  private final String origin;
  private final String version;
  private final Keys keys;
  private final int parallelism;
  private final boolean allowUnsealed;
  private final Fallback fallback;
  private final MountProvider mounts;
  private Criu criu;
  private Optional<CudaCheckpoint> cuda;

  private SnapshotService(Builder b) {
    this.root = b.root;
    this.origin = b.origin;
    this.version = b.version;
    this.keys = b.keys != null ? b.keys : create -> SnapshotCipher.configured(b.keyFile, create, System.err);
    this.parallelism = b.parallelism;
    this.allowUnsealed = b.allowUnsealed;
    this.fallback = b.fallback;
    this.mounts = b.mounts;
    this.criu = b.criu;
    this.cuda = b.cuda;
  }

  /**
   * Settings for a service that keeps snapshots under {@code snapshots} (created owner-only on first use), pushes
   * them to and fetches them from {@code origin} ({@code file://}, {@code http(s)://} or {@code s3://}), and records
   * {@code version} as Thaw's in every key.
   */
  public static Builder builder(Path snapshots, String origin, String version) {
    return new Builder(snapshots, origin, version);
  }

  /** The settings of a {@link SnapshotService}; each has a default but the three {@link #builder} takes. */
  public static final class Builder {
    private final Path root;
    private final String origin;
    private final String version;
    private Path keyFile;
    private Keys keys;
    private int parallelism = 16;
    private boolean allowUnsealed;
    private Fallback fallback = Fallback.RECORDED;
    private MountProvider mounts = MountProvider.NONE;
    private Criu criu;
    private Optional<CudaCheckpoint> cuda;

    private Builder(Path root, String origin, String version) {
      this.root = Objects.requireNonNull(root, "snapshots: the directory where this node keeps snapshots");
      this.origin = Objects.requireNonNull(origin, "origin: where snapshots are pushed and fetched");
      this.version = Objects.requireNonNull(version, "version: Thaw's version, part of every snapshot key");
    }

    /**
     * The snapshot key: a file of 32 bytes or their base64, owner-only. Default (null): {@code $THAW_SNAPSHOT_KEY}
     * (base64), else the file {@code $THAW_SNAPSHOT_KEY_FILE}, else {@code ~/.config/thaw/snapshot.key}, which taking
     * a sealed snapshot creates (owner-only) when none is configured.
     */
    public Builder keyFile(Path file) {
      this.keyFile = file;
      this.keys = null;
      return this;
    }

    /** The key itself (empty: none configured), in place of reading it; for tests. */
    Builder key(Optional<SnapshotCipher> key) {
      this.keys = create -> key.orElseThrow(() -> new IOException("no snapshot key: none was configured"));
      return this;
    }

    /** Range requests in flight at once when fetching images. Default: 16. */
    public Builder parallelism(int n) {
      if (n < 1) {
        throw new IllegalArgumentException("parallelism: range requests in flight must be at least 1, not " + n);
      }
      this.parallelism = n;
      return this;
    }

    /**
     * Also restore snapshots the origin holds unsealed (pushed with encryption off): nothing proves who wrote their
     * images and command, so only from an origin the caller trusts. Default: refused.
     */
    public Builder allowUnsealed(boolean allow) {
      this.allowUnsealed = allow;
      return this;
    }

    /**
     * What boots when a restore fails: a command given on this node, or (the default, {@link Fallback#RECORDED}) the
     * command of a snapshot this node trusts. A restore asked for with {@link Restore#noFallback} boots nothing.
     */
    public Builder fallback(Fallback fallback) {
      this.fallback = Objects.requireNonNull(fallback, "fallback: Fallback.NONE when nothing may boot");
      return this;
    }

    /**
     * Who mounts the model a snapshot's server read through a Thaw mount this node lacks. Default: nobody, and such a
     * restore fails saying what to mount.
     */
    public Builder mounts(MountProvider mounts) {
      this.mounts = mounts == null ? MountProvider.NONE : mounts;
      return this;
    }

    /** This CRIU rather than the one found on the PATH; for tests. */
    Builder criu(Criu criu) {
      this.criu = criu;
      return this;
    }

    /** This CUDA checkpointer (empty: none) rather than the one found on this node; for tests. */
    Builder cuda(Optional<CudaCheckpoint> cuda) {
      this.cuda = cuda;
      return this;
    }

    public SnapshotService build() {
      return new SnapshotService(this);
    }
  }

  /** Reads the snapshot key when an operation needs it; {@code create}: make the default key when none is configured. */
  @FunctionalInterface
  interface Keys {
    SnapshotCipher load(boolean create) throws IOException;
  }

  // --- take ---

  /**
   * What to snapshot, and how.
   *
   * @param name what the snapshot is restored by
   * @param pid the root of the warm server's process tree
   * @param readyUrl polled until it answers 200 before anything else; null: {@code /v2/health/ready} beside the
   *     probe, else Triton's on port 8000
   * @param probe an inference request asked once ready, whose answer is kept with the snapshot; null: none
   * @param expectedAnswer what the probe must answer (compared as JSON when both are); null: whatever it answers
   * @param leaveRunning keep the server running after the dump (else CRIU stops it)
   * @param warmTimeout how long the server may take to become ready
   * @param lockTimeout how long CUDA work may take to settle once its processes are locked
   * @param model the model the server serves (NAME[:TAG] at the origin, or a sha256: digest), part of the key; null:
   *     none
   * @param push push the images to the origin
   * @param encrypt seal them with the snapshot key when they are pushed
   */
  public record Take(String name, long pid, String readyUrl, Probe probe, String expectedAnswer, boolean leaveRunning,
      Duration warmTimeout, Duration lockTimeout, String model, boolean push, boolean encrypt) {
    public Take {
      Objects.requireNonNull(name, "name: what the snapshot is restored by");
      Objects.requireNonNull(warmTimeout, "warmTimeout");
      Objects.requireNonNull(lockTimeout, "lockTimeout");
      readyUrl = readyUrl != null ? readyUrl : probe != null ? probe.readinessBeside() : TRITON_READY;
    }
  }

  /**
   * A snapshot taken: where its images are kept, their size, how long the dump took, what it recorded, and what the
   * push did (null when not pushed).
   */
  public record Taken(String name, Path images, long imageBytes, double dumpSeconds, SnapshotMetadata metadata,
      Pushed pushed) {}

  /** What a push did, and to which origin. */
  public record Pushed(ModelName tag, Pusher.Result result, boolean encrypted, String origin) {}

  /**
   * Snapshots the warm server {@code t} names: waits until it is ready and answers its probe, dumps it into a fresh
   * owner-only directory (nothing is kept when that fails), keeps it under its name and key, and pushes it when asked,
   * sealed unless asked not to.
   *
   * @param progress told of the push's hashing
   * @throws IOException saying why no snapshot was taken (the server runs on as it was)
   */
  public Taken take(Take t, PushProgress progress) throws IOException {
    Optional<SnapshotCipher> cipher = t.push() && t.encrypt() ? Optional.of(keys.load(true)) : Optional.empty();
    Criu c = criu();
    try (Origin o = Origins.open(origin)) {
      ModelStore models = new ModelStore(o);
      String modelDigest = t.model() == null ? "" : digestOf(models, t.model());
      SnapshotStore store = new SnapshotStore(root, models, cipher, parallelism, allowUnsealed);
      Path dir = store.newDumpDirectory(t.name());
      long t0 = System.nanoTime();
      SnapshotMetadata m;
      try {
        m = Snapshots.take(c, t.pid(), dir, new Snapshots.TakeRequest(t.readyUrl(), t.probe(), t.expectedAnswer(),
            t.leaveRunning(), t.warmTimeout(), modelDigest, version, cuda(), t.lockTimeout()));
      } catch (IOException | RuntimeException e) {
        try {
          store.discard(dir);
        } catch (IOException cleanup) {
          e.addSuppressed(cleanup);
        }
        throw e;
      }
      double dumpS = (System.nanoTime() - t0) / 1e9;
      Path kept = store.keep(t.name(), dir);
      Pushed pushed = t.push() ? store.push(t.name(), kept, Pusher.DEFAULT_CHUNK_SIZE, PUSH_CONCURRENCY, progress)
          : null;
      return new Taken(t.name(), kept, sizeOf(kept), dumpS, m, pushed);
    }
  }

  /**
   * When process {@code pid}, started at {@code started} or later, ended because it was checkpointed: the snapshot's
   * name; the word is taken, once. Marks left by earlier processes with the same PID are not believed.
   */
  public static Optional<String> checkpointedAs(long pid, java.time.Instant started) {
    return Snapshots.checkpointedAs(pid, started);
  }

  // --- restore ---

  /**
   * What to restore, and how.
   *
   * @param name the snapshot's name
   * @param model restore only a snapshot of this model (NAME[:TAG] at the origin, or a sha256: digest); null: any
   * @param fromOrigin fetch the images from the origin even when this node has them
   * @param noFallback boot nothing when the restore fails: that is an error then, and nothing is started
   * @param readyTimeout how long the restored server may take to answer
   * @param logDir where a booted server's output goes; null: {@code SNAPSHOTS/.logs/NAME}
   */
  public record Restore(String name, String model, boolean fromOrigin, boolean noFallback, Duration readyTimeout,
      Path logDir) {
    public Restore {
      Objects.requireNonNull(name, "name: the snapshot to restore");
      Objects.requireNonNull(readyTimeout, "readyTimeout");
    }
  }

  /**
   * What a restore came to: the process (restored, or booted instead and why), where the images came from (null when
   * none was found), the readiness URL a booted server answers on (when known), where its output goes, and the
   * origin.
   */
  public record Restoring(Restored restored, Found found, String readyUrl, Path logs, String origin) {}

  /**
   * The result of a restore: the server's host PID, why it was booted instead of restored (null if it was not), and
   * how long each step took (ms: key, mounts, criu_restore, cuda, ready, probe).
   */
  public record Restored(long pid, String fallbackReason, PidNamespaceProcess booted, Map<String, Double> stepsMs) {
    public boolean fromSnapshot() {
      return fallbackReason == null;
    }
  }

  /** A snapshot of a name that matches this node, in a local directory ready for CRIU. */
  public record Found(Path images, SnapshotMetadata metadata, String source, long bytesFetched, Duration fetchTime) {
    public boolean fetched() {
      return bytesFetched > 0 || !fetchTime.isZero();
    }
  }

  /** No snapshot of that name could be restored here, and nothing was booted instead. */
  public static final class NoSnapshot extends IOException {
    private final boolean nothingToBoot;

    NoSnapshot(String message, boolean nothingToBoot, Throwable cause) {
      super(message, cause);
      this.nothingToBoot = nothingToBoot;
    }

    /** True when a fallback was allowed but there was no command to boot. */
    public boolean nothingToBoot() {
      return nothingToBoot;
    }
  }

  /**
   * Restores the snapshot {@code r} names whose key matches this node: this node's copies first (unless {@code
   * fromOrigin}), then the origin's, which are authenticated and fetched here; then CRIU and CUDA restore it and it
   * must answer as when it was taken. When there is none, or it fails, the settings' {@link Fallback} boots instead,
   * saying why; with {@link Restore#noFallback} (or {@link Fallback#NONE}) nothing is started and that is an error.
   *
   * @param progress told of the images fetched from the origin as they are written here
   * @throws NoSnapshot when no snapshot could be restored and nothing was booted instead
   * @throws IOException when the origin or the model cannot be read, or the restore failed and nothing may boot
   */
  public Restoring restore(Restore r, FetchProgress progress) throws IOException {
    Path logs = r.logDir() != null ? r.logDir() : root.resolve(".logs").resolve(r.name());
    Criu c = criu();
    Optional<CudaCheckpoint> gpus = cuda();
    Optional<SnapshotCipher> cipher;
    String keyProblem = null;
    try {
      cipher = Optional.of(keys.load(false));
    } catch (IOException e) {
      cipher = Optional.empty(); // enough for snapshots pushed unsealed
      keyProblem = e.getMessage();
    }
    try (Origin o = Origins.open(origin)) {
      ModelStore models = new ModelStore(o);
      String modelDigest = r.model() == null ? null : digestOf(models, r.model());
      SnapshotStore store = new SnapshotStore(root, models, cipher, parallelism, allowUnsealed);
      SnapshotKey here = SnapshotKey.ofThisNode(c, "", List.of(), version);
      Fallback boots = r.noFallback() ? Fallback.NONE : fallback;
      Found found;
      try {
        found = store.find(r.name(), here, modelDigest, r.fromOrigin(), progress);
      } catch (IOException e) {
        String reason = e.getMessage()
            + (keyProblem != null && e.getMessage().contains("no snapshot key") ? "; " + keyProblem : "");
        // only a record the store authenticated: never a command an origin wrote in clear
        SnapshotMetadata refused = e instanceof SnapshotStore.UnavailableException u ? u.metadata() : null;
        if (boots.none()) {
          throw new NoSnapshot(reason, false, e);
        }
        List<String> command = boots.commandFor(refused);
        if (command == null) {
          throw new NoSnapshot(reason + "; and there is no command to boot instead", true, e);
        }
        return new Restoring(Snapshots.coldBoot(command, logs, reason), null,
            refused != null ? refused.readyUrl() : null, logs, o.uri());
      }
      Restored restored = Snapshots.restore(c, found.images(), new Snapshots.RestoreRequest(logs, version, gpus,
          r.readyTimeout(), modelDigest, boots, mounts));
      return new Restoring(restored, found, found.metadata().readyUrl(), logs, o.uri());
    }
  }

  /**
   * What boots when a snapshot cannot be restored: nothing ({@link #NONE}), a command given on this node (the CLI's
   * {@code -- CMD}, the sidecar's configuration), or the command the snapshot recorded ({@link #RECORDED}), which is
   * used only from a record this node trusts: its own images, or one the store authenticated. A command read in clear
   * from an origin is never booted.
   */
  public record Fallback(List<String> command, boolean recorded) {
    /** Nothing boots: a restore that fails is an error. */
    public static final Fallback NONE = new Fallback(List.of(), false);
    /** The snapshot's own (authenticated) command line. */
    public static final Fallback RECORDED = new Fallback(List.of(), true);

    public Fallback {
      command = List.copyOf(command);
    }

    /** {@code given} when there is one, else {@link #RECORDED}. */
    public static Fallback givenOrRecorded(List<String> given) {
      return given == null || given.isEmpty() ? RECORDED : new Fallback(given, false);
    }

    /** True when nothing may boot. */
    public boolean none() {
      return command.isEmpty() && !recorded;
    }

    /** The command to boot for a snapshot whose trusted record is {@code m} (null: none read); null: nothing. */
    List<String> commandFor(SnapshotMetadata m) {
      if (!command.isEmpty()) {
        return command;
      }
      return recorded && m != null && m.command() != null && !m.command().isEmpty() ? m.command() : null;
    }
  }

  /**
   * Mounts the model a snapshot's server read through a Thaw mount, at the same path, when this node does not have it
   * mounted there: the CLI starts {@code thaw mount}, the sidecar mounts it itself. A restore asks before CRIU runs.
   */
  @FunctionalInterface
  public interface MountProvider {
    /** Nothing is mounted for a restore: it fails, saying what to mount. */
    MountProvider NONE = m -> {
      throw new IOException(ExternalMounts.advice(m));
    };

    /** Mounts {@code m}'s model ({@link ExternalMounts.ExternalMount#thawDigest()}) at its path; returns once it is there. */
    void mount(ExternalMounts.ExternalMount m) throws IOException;
  }

  /** Told of a fetch's images as they are written on this node. */
  public interface FetchProgress {
    FetchProgress NONE = bytes -> {};

    /** The fetch of {@code totalBytes} of images from {@code origin} begins. */
    default void started(long totalBytes, String origin) {}

    void wrote(long bytes);
  }

  // --- fetch ahead, list ---

  /**
   * Fetches the snapshot of {@code name} whose key matches this node from the origin into this node's snapshots, so
   * that a restore to come is a local one; a matching snapshot kept here already is left as it is (nothing fetched).
   *
   * @throws IOException naming why there is none to fetch (none matches, none can be trusted, the fetch failed)
   */
  public Found fetchAhead(String name) throws IOException {
    Optional<SnapshotCipher> cipher;
    try {
      cipher = Optional.of(keys.load(false));
    } catch (IOException e) {
      cipher = Optional.empty(); // enough for snapshots pushed unsealed
    }
    try (Origin o = Origins.open(origin)) {
      SnapshotStore store = new SnapshotStore(root, new ModelStore(o), cipher, parallelism, allowUnsealed);
      return store.find(name, SnapshotKey.ofThisNode(criu(), "", List.of(), version), null, false,
          FetchProgress.NONE);
    }
  }

  /** A snapshot kept on this node: its name, its key's tag, where its images are, their size and when it was taken. */
  public record Local(String name, String keyTag, Path images, long bytes, Instant taken) {}

  /** Every complete snapshot kept on this node, by name, newest first within a name; neither CRIU nor the origin is used. */
  public List<Local> list() throws IOException {
    return SnapshotStore.listLocal(root);
  }

  /** Deletes a snapshot kept on this node (one {@link #list} gave): its images go. */
  public void delete(Local snapshot) throws IOException {
    Path images = snapshot.images().toAbsolutePath().normalize();
    if (!images.startsWith(root.toAbsolutePath().normalize())) {
      throw new IOException(images + " is not a snapshot of " + root);
    }
    SnapshotStore.deleteTree(images);
  }

  // --- what the operations share ---

  private synchronized Criu criu() throws CriuException {
    if (criu == null) {
      criu = Criu.locate();
    }
    return criu;
  }

  private synchronized Optional<CudaCheckpoint> cuda() {
    if (cuda == null) {
      cuda = CudaCheckpoint.locate();
    }
    return cuda;
  }

  /** {@code model} as a manifest digest: a sha256: digest as it is, else the digest its tag at the origin names. */
  private static String digestOf(ModelStore models, String model) throws IOException {
    return model.startsWith("sha256:") ? model : models.digestOf(ModelName.parse(model));
  }

  /** Bytes of the regular files under {@code dir}. */
  private static long sizeOf(Path dir) throws IOException {
    try (Stream<Path> s = Files.walk(dir)) {
      long total = 0;
      for (Path p : s.filter(Files::isRegularFile).toList()) {
        total += Files.size(p);
      }
      return total;
    }
  }
}
