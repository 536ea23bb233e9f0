package dev.thaw.sidecar;

import io.micronaut.core.annotation.Nullable;
import io.micronaut.http.annotation.Body;
import io.micronaut.http.annotation.Controller;
import io.micronaut.http.annotation.Post;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/** What the java agent (or any server's hook) tells the sidecar about a server it watches ({@link ThawNode}). */
@Controller("/v1/agent")
final class AgentController {
  private final ThawNode node;

  AgentController(ThawNode node) {
    this.node = node;
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
    List<Path> paths = new ArrayList<>();
    for (String p : warm.paths() == null ? List.<String>of() : warm.paths()) {
      try {
        paths.add(Path.of(p));
      } catch (InvalidPathException e) {
        throw ApiException.badField("paths", "not a path: " + p);
      }
    }
    return node.reportWarm(new ThawNode.Warm(warm.pid(), warm.mount(), paths, Boolean.TRUE.equals(warm.firstInference())))
        .view();
  }
}
