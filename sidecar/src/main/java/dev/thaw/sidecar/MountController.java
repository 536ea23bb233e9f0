package dev.thaw.sidecar;

import io.micronaut.core.annotation.Nullable;
import io.micronaut.http.HttpStatus;
import io.micronaut.http.annotation.Body;
import io.micronaut.http.annotation.Controller;
import io.micronaut.http.annotation.Delete;
import io.micronaut.http.annotation.Get;
import io.micronaut.http.annotation.Post;
import io.micronaut.http.annotation.Status;
import io.micronaut.scheduling.TaskExecutors;
import io.micronaut.scheduling.annotation.ExecuteOn;
import java.util.List;

/** Models mounted by this sidecar: register a source and mount it, list, prefetch, unmount ({@link ThawNode}). */
@Controller("/v1/mounts")
@ExecuteOn(TaskExecutors.BLOCKING)
final class MountController {
  private final ThawNode node;

  MountController(ThawNode node) {
    this.node = node;
  }

  /** Prefetch what: the recorded access profile, or every chunk. */
  record PrefetchRequest(String mode) {}

  /**
   * Mounts {@code source} (NAME[:TAG] or sha256:DIGEST at {@code origin}, default the sidecar's; or a direct-mode
   * s3:// or file:// URI) at {@code path} under the mount root; {@code prefetch} auto, all or off.
   */
  @Post
  @Status(HttpStatus.CREATED)
  MountService.MountInfo mount(@Nullable @Body MountService.MountRequest request) {
    return node.mount(request);
  }

  /** Every mount with its cache fill and the bytes it read per tier. */
  @Get
  List<MountService.Listed> list() {
    return node.mounts();
  }

  @Get("/{id}")
  MountService.MountInfo get(String id) {
    return node.mount(id);
  }

  /** Starts prefetching; progress shows in the mount's cached_bytes. */
  @Post("/{id}/prefetch")
  @Status(HttpStatus.ACCEPTED)
  MountService.MountInfo prefetch(String id, @Nullable @Body PrefetchRequest request) {
    return node.prefetch(id, request == null ? null : request.mode());
  }

  @Delete("/{id}")
  @Status(HttpStatus.NO_CONTENT)
  void unmount(String id) {
    node.unmount(id);
  }
}
