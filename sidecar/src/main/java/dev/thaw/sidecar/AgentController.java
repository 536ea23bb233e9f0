package dev.thaw.sidecar;

import io.micronaut.core.annotation.Nullable;
import io.micronaut.http.HttpStatus;
import io.micronaut.http.annotation.Body;
import io.micronaut.http.annotation.Controller;
import io.micronaut.http.annotation.Post;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/** What the java agent (or any server's hook) tells the sidecar about a server it watches. */
@Controller("/v1/agent")
final class AgentController {
  private final MountService mounts;

  AgentController(MountService mounts) {
    this.mounts = mounts;
  }

  /**
   * A server is warm: process {@code pid} loaded its model from {@code paths} (or from mount {@code mount}) and is
   * ready; {@code first_inference} when it has also answered one.
   */
  record Warm(Long pid, String mount, List<String> paths, Boolean firstInference) {}

  @Post("/warm")
  Map<String, Object> warm(@Nullable @Body Warm warm) {
    if (warm == null || warm.pid() == null || warm.pid() < 1) {
      throw ApiException.badField("pid", "pid is required: the warm server's process id");
    }
    String mountId = warm.mount();
    if (mountId == null) {
      if (warm.paths() == null || warm.paths().isEmpty()) {
        throw ApiException.badField("paths", "say which model the server loaded: mount (an id) or paths (files it read)");
      }
      Optional<String> found = Optional.empty();
      for (String p : warm.paths()) {
        try {
          found = mounts.mountHolding(Path.of(p));
        } catch (InvalidPathException e) {
          throw ApiException.badField("paths", "not a path: " + p);
        }
        if (found.isPresent()) {
          break;
        }
      }
      mountId = found.orElseThrow(() -> new ApiException(HttpStatus.NOT_FOUND, "paths", "no mount holds any of "
          + warm.paths()));
    }
    String id = mountId;
    ColdStartLog.ColdStart cs = mounts.coldStartOf(id)
        .orElseThrow(() -> new ApiException(HttpStatus.NOT_FOUND, "mount", "no mount " + id));
    cs.mark("server_ready");
    if (Boolean.TRUE.equals(warm.firstInference())) {
      cs.mark("first_inference");
    }
    return cs.view();
  }
}
