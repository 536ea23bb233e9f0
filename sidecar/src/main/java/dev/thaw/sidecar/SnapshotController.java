package dev.thaw.sidecar;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.thaw.checkpoint.Probe;
import dev.thaw.checkpoint.SnapshotService;
import dev.thaw.store.ModelName;
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
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The snapshots this node keeps, and taking one of a warm server: what {@code thaw checkpoint} does, through the API.
 */
@Controller("/v1/snapshots")
@ExecuteOn(TaskExecutors.BLOCKING)
final class SnapshotController {
  private static final ObjectMapper JSON = new ObjectMapper();
  private final SidecarConfig config;
  private final ThawNode node;

  SnapshotController(SidecarConfig config, ThawNode node) {
    this.config = config;
    this.node = node;
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
    return node.snapshots().stream().map(SnapshotController::view).toList();
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
    boolean push = t.push() == null || t.push();
    boolean encrypt = t.encrypt() == null || t.encrypt();
    Duration warm = Duration.ofMillis((long) (1000 * (t.warmTimeoutS() == null ? 300 : t.warmTimeoutS())));
    SnapshotService.Taken taken;
    try {
      taken = node.takeSnapshot(new SnapshotService.Take(t.name(), t.pid(), t.readyUrl(), probe, expected,
          Boolean.TRUE.equals(t.leaveRunning()), warm, Duration.ofSeconds(30), t.model(), push, encrypt));
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
      v.put("origin", taken.pushed().origin());
      v.put("encrypted", taken.pushed().encrypted());
      v.put("bytes_uploaded", taken.pushed().result().bytesUploaded());
    }
    return v;
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
    Duration ready = Duration.ofMillis((long) (1000 * (req.readyTimeoutS() == null ? 120 : req.readyTimeoutS())));
    Path logs = Files.createDirectories(config.getSnapshots().resolve(".logs").resolve(name));
    SnapshotService.Restoring done;
    try {
      done = node.restoreSnapshot(new SnapshotService.Restore(name, req.model(),
          Boolean.TRUE.equals(req.fromOrigin()), Boolean.TRUE.equals(req.noFallback()), ready, logs));
    } catch (SnapshotService.NoSnapshot e) {
      throw new ApiException(HttpStatus.NOT_FOUND, "name", e.getMessage()
          + (e.nothingToBoot() ? " (set thaw.fallback-command to boot the server instead)" : ""), e);
    } catch (IOException e) {
      throw new ApiException(HttpStatus.CONFLICT, null, e.getMessage(), e);
    }
    SnapshotService.Restored restored = done.restored();
    SnapshotService.Found found = done.found();
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
    v.put("logs", done.logs().toString());
    v.put("total_s", (System.nanoTime() - t0) / 1e9);
    return v;
  }

  static Map<String, Object> view(SnapshotService.Local s) {
    Map<String, Object> v = new LinkedHashMap<>();
    v.put("name", s.name());
    v.put("key", s.keyTag());
    v.put("images", s.images().toString());
    v.put("bytes", s.bytes());
    v.put("taken_at", s.taken().toString());
    return v;
  }
}
