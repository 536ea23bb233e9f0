package dev.thaw.sidecar;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.thaw.checkpoint.Checkpoints;
import dev.thaw.checkpoint.Criu;
import dev.thaw.checkpoint.CudaCheckpoint;
import dev.thaw.checkpoint.Probe;
import dev.thaw.checkpoint.SnapshotCipher;
import dev.thaw.checkpoint.SnapshotKey;
import dev.thaw.checkpoint.SnapshotStore;
import dev.thaw.checkpoint.Snapshots;
import dev.thaw.store.ModelName;
import dev.thaw.store.ModelStore;
import dev.thaw.store.Origin;
import dev.thaw.store.Origins;
import dev.thaw.store.PushProgress;
import io.micronaut.core.annotation.Nullable;
import io.micronaut.http.HttpStatus;
import io.micronaut.http.annotation.Body;
import io.micronaut.http.annotation.Controller;
import io.micronaut.http.annotation.Get;
import io.micronaut.http.annotation.Post;
import io.micronaut.http.annotation.Status;
import io.micronaut.scheduling.TaskExecutors;
import io.micronaut.scheduling.annotation.ExecuteOn;
import java.io.IOException;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * The snapshots this node keeps, and taking one of a warm server: what {@code thaw checkpoint} does, through the API.
 */
@Controller("/v1/snapshots")
@ExecuteOn(TaskExecutors.BLOCKING)
final class SnapshotController {
  private static final ObjectMapper JSON = new ObjectMapper();
  private final SidecarConfig config;
  private final MountService mountService;
  private final Object dumping = new Object(); // one dump at a time: each freezes a process tree and fills a disk

  SnapshotController(SidecarConfig config, MountService mountService) {
    this.config = config;
    this.mountService = mountService;
  }

  /** An inference request the warm server must answer, and the answer expected (compared as JSON). */
  record ProbeSpec(String url, JsonNode request, JsonNode expect) {}

  /**
   * Take a snapshot of the server whose process tree is rooted at {@code pid}, once it is ready at {@code ready_url}
   * (default: Triton's readiness endpoint beside the probe, else on port 8000) and answers the probe.
   */
  record Take(Long pid, String name, String readyUrl, ProbeSpec probe, Boolean leaveRunning, String model,
      Boolean push, Boolean encrypt, Double warmTimeoutS) {}

  /** Each snapshot kept on this node: name, key tag, images directory, bytes, when taken; by name, newest first. */
  @Get
  List<Map<String, Object>> list() throws IOException {
    return SnapshotStore.listLocal(config.getSnapshots()).stream().map(SnapshotController::view).toList();
  }

  /** Takes, keeps and (by default) pushes a snapshot, sealed with the snapshot key; 201 with what was taken. */
  @Post
  @Status(HttpStatus.CREATED)
  Map<String, Object> take(@Nullable @Body Take t) throws IOException {
    if (t == null || t.pid() == null || t.pid() < 1) {
      throw ApiException.badField("pid", "pid is required: the root of the warm server's process tree");
    }
    if (ProcessHandle.of(t.pid()).isEmpty()) {
      throw new ApiException(HttpStatus.NOT_FOUND, "pid", "no process " + t.pid());
    }
    if (t.name() == null || t.name().isBlank()) {
      throw ApiException.badField("name", "name is required: what the snapshot is restored by");
    }
    try {
      ModelName.parse("snapshots/" + t.name() + ":x");
    } catch (IllegalArgumentException e) {
      throw ApiException.badField("name", "not a snapshot name: " + t.name() + " (" + e.getMessage() + ")");
    }
    Probe probe = null;
    String expected = null;
    if (t.probe() != null) {
      String url = t.probe().url();
      if (url == null || !(url.startsWith("http://") || url.startsWith("https://"))) {
        throw ApiException.badField("probe.url", "probe.url must be an http(s):// URL, not " + url);
      }
      JsonNode req = t.probe().request();
      probe = new Probe(url, req == null || req.isNull() ? null : req.isTextual() ? req.asText()
          : JSON.writeValueAsString(req));
      JsonNode e = t.probe().expect();
      expected = e == null || e.isNull() ? null : e.isTextual() ? e.asText() : JSON.writeValueAsString(e);
    }
    String ready = t.readyUrl() != null ? t.readyUrl() : probe != null ? probe.readinessBeside()
        : "http://127.0.0.1:8000/v2/health/ready";
    boolean push = t.push() == null || t.push();
    boolean encrypt = t.encrypt() == null || t.encrypt();
    Duration warm = Duration.ofMillis((long) (1000 * (t.warmTimeoutS() == null ? 300 : t.warmTimeoutS())));
    Optional<SnapshotCipher> cipher = push && encrypt
        ? Optional.of(SnapshotCipher.configured(config.getSnapshotKeyFile(), true, System.err)) : Optional.empty();
    synchronized (dumping) {
      try (Origin o = Origins.open(config.getOrigin())) {
        ModelStore models = new ModelStore(o);
        String modelDigest = t.model() == null ? "" : t.model().startsWith("sha256:") ? t.model()
            : models.digestOf(ModelName.parse(t.model()));
        SnapshotStore snaps = new SnapshotStore(config.getSnapshots(), models, cipher, config.getParallelism());
        Checkpoints.Taken taken;
        try {
          taken = Checkpoints.take(Criu.locate(), snaps, t.name(), t.pid(), new Snapshots.TakeRequest(ready, probe,
              expected, Boolean.TRUE.equals(t.leaveRunning()), warm, modelDigest, Sidecar.version(),
              CudaCheckpoint.locate(), Duration.ofSeconds(30)), push, PushProgress.NONE);
        } catch (IOException e) {
          throw new ApiException(HttpStatus.CONFLICT, null, "no snapshot of process " + t.pid() + " was taken: "
              + e.getMessage(), e);
        }
        Map<String, Object> v = new LinkedHashMap<>();
        v.put("name", taken.name());
        v.put("key", taken.metadata().snapshotKey().digest());
        v.put("images", taken.images().toString());
        v.put("image_bytes", taken.imageBytes());
        v.put("dump_s", taken.dumpSeconds());
        v.put("left_running", Boolean.TRUE.equals(t.leaveRunning()));
        v.put("cuda_pids", taken.metadata().cudaPids());
        if (taken.pushed() != null) {
          v.put("tag", taken.pushed().tag().toString());
          v.put("origin", o.uri());
          v.put("encrypted", taken.pushed().encrypted());
          v.put("bytes_uploaded", taken.pushed().result().bytesUploaded());
        }
        return v;
      }
    }
  }

  /**
   * Restore {@code name}: the snapshot whose key matches this node, from this node's copies first, then the origin
   * ({@code from_origin}: the origin only), for {@code model} when given; on any failure boot instead what this
   * sidecar is configured to ({@code thaw.fallback-command}, else the command of a snapshot whose record authenticates),
   * unless {@code no_fallback}. A request never names a command: what the sidecar boots is its configuration's.
   */
  record Restore(String model, Boolean fromOrigin, Boolean noFallback, Double readyTimeoutS) {}

  /** Restores a snapshot on this node (or boots instead, saying why); the server runs on after the call. */
  @Post("/{name}/restore")
  Map<String, Object> restore(String name, @Nullable @Body Restore r) throws IOException {
    try {
      ModelName.parse("snapshots/" + name + ":x");
    } catch (IllegalArgumentException e) {
      throw ApiException.badField("name", "not a snapshot name: " + name);
    }
    Restore req = r != null ? r : new Restore(null, null, null, null);
    long t0 = System.nanoTime();
    Criu criu = Criu.locate();
    Optional<CudaCheckpoint> cuda = CudaCheckpoint.locate();
    Optional<SnapshotCipher> cipher;
    String noKey = null;
    try {
      cipher = Optional.of(SnapshotCipher.configured(config.getSnapshotKeyFile(), false, System.err));
    } catch (IOException e) {
      cipher = Optional.empty(); // enough for snapshots pushed unencrypted
      noKey = e.getMessage();
    }
    Duration ready = Duration.ofMillis((long) (1000 * (req.readyTimeoutS() == null ? 120 : req.readyTimeoutS())));
    synchronized (dumping) {
      try (Origin o = Origins.open(config.getOrigin())) {
        ModelStore models = new ModelStore(o);
        String modelDigest = req.model() == null ? null : req.model().startsWith("sha256:") ? req.model()
            : models.digestOf(ModelName.parse(req.model()));
        SnapshotStore snaps = new SnapshotStore(config.getSnapshots(), models, cipher, config.getParallelism());
        java.nio.file.Path logs = java.nio.file.Files.createDirectories(config.getSnapshots().resolve(".logs")
            .resolve(name));
        Snapshots.RestoreRequest request = new Snapshots.RestoreRequest(logs, Sidecar.version(), cuda, ready,
            modelDigest, Boolean.TRUE.equals(req.noFallback()) ? Snapshots.Fallback.NONE
                : Snapshots.Fallback.givenOrRecorded(config.getFallbackCommand()), this::mountForRestore);
        Checkpoints.Restoring done;
        try {
          done = Checkpoints.restore(criu, snaps, name, SnapshotKey.ofThisNode(criu, "", List.of(), Sidecar.version()),
              Boolean.TRUE.equals(req.fromOrigin()), request, noKey,
              SnapshotStore.FetchProgress.NONE);
        } catch (Checkpoints.NoSnapshot e) {
          throw new ApiException(HttpStatus.NOT_FOUND, "name", e.getMessage()
              + (e.nothingToBoot() ? " (set thaw.fallback-command to boot the server instead)" : ""), e);
        } catch (IOException e) {
          throw new ApiException(HttpStatus.CONFLICT, null, e.getMessage(), e);
        }
        Snapshots.Restored restored = done.restored();
        SnapshotStore.Found found = done.found();
        Map<String, Object> v = new LinkedHashMap<>();
        v.put("name", name);
        v.put("pid", restored.pid());
        v.put("restored", restored.fromSnapshot());
        v.put("fallback_reason", restored.fallbackReason());
        if (found != null) {
          v.put("source", found.source());
          v.put("bytes_fetched", found.bytesFetched());
        }
        v.put("steps_ms", restored.stepsMs());
        v.put("logs", logs.toString());
        v.put("total_s", (System.nanoTime() - t0) / 1e9);
        return v;
      }
    }
  }

  /**
   * The model a snapshot's server read through a Thaw mount, mounted again by this sidecar at the same path, which must
   * be under its mount root.
   */
  private void mountForRestore(dev.thaw.checkpoint.ExternalMounts.ExternalMount m) throws IOException {
    java.nio.file.Path root = config.getMountRoot().toAbsolutePath().normalize();
    java.nio.file.Path at = java.nio.file.Path.of(m.path());
    String what = m.thawDigest() != null ? m.thawDigest() : m.thawSource();
    if (!at.startsWith(root) || at.equals(root)) {
      throw new IOException("the snapshot's server read " + what + " through a Thaw mount at " + at + ", outside this"
          + " sidecar's mount root " + root + ": mount it there (thaw mount " + what + " " + at + "), then restore again");
    }
    try {
      mountService.mount(new MountService.MountRequest(what, null, root.relativize(at).toString(), "auto"));
    } catch (MountException e) {
      throw new IOException("could not mount " + what + " at " + at + " for the restore: " + e.getMessage(), e);
    }
  }

  static Map<String, Object> view(SnapshotStore.Local s) {
    Map<String, Object> v = new LinkedHashMap<>();
    v.put("name", s.name());
    v.put("key", s.keyTag());
    v.put("images", s.images().toString());
    v.put("bytes", s.bytes());
    v.put("taken_at", s.taken().toString());
    return v;
  }
}
