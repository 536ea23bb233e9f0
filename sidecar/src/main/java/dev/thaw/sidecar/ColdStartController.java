package dev.thaw.sidecar;

import io.micronaut.http.HttpStatus;
import io.micronaut.http.annotation.Controller;
import io.micronaut.http.annotation.Get;
import java.util.List;
import java.util.Map;

/** Recent cold starts and their timelines, the most recent first. */
@Controller("/v1/coldstarts")
final class ColdStartController {
  private final ThawNode node;

  ColdStartController(ThawNode node) {
    this.node = node;
  }

  @Get
  List<Map<String, Object>> list() {
    return node.coldStarts().stream().map(ColdStartLog.ColdStart::view).toList();
  }

  @Get("/{id}")
  Map<String, Object> get(String id) {
    return node.coldStart(id).orElseThrow(() -> new ApiException(HttpStatus.NOT_FOUND, "id", "no cold start " + id))
        .view();
  }
}
