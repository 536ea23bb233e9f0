package dev.thaw.sidecar;

import dev.thaw.checkpoint.SnapshotStore;
import io.micronaut.http.annotation.Controller;
import io.micronaut.http.annotation.Get;
import io.micronaut.scheduling.TaskExecutors;
import io.micronaut.scheduling.annotation.ExecuteOn;
import java.io.IOException;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** The snapshots this node keeps ({@code thaw checkpoint} takes them, {@code thaw restore} restores them). */
@Controller("/v1/snapshots")
@ExecuteOn(TaskExecutors.BLOCKING)
final class SnapshotController {
  private final SidecarConfig config;

  SnapshotController(SidecarConfig config) {
    this.config = config;
  }

  /** Each snapshot kept on this node: name, key tag, images directory, bytes, when taken; by name, newest first. */
  @Get
  List<Map<String, Object>> list() throws IOException {
    return SnapshotStore.listLocal(config.getSnapshots()).stream().map(SnapshotController::view).toList();
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
