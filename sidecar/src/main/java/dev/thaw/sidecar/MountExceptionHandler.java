package dev.thaw.sidecar;

import io.micronaut.context.annotation.Requires;
import io.micronaut.http.HttpRequest;
import io.micronaut.http.HttpResponse;
import io.micronaut.http.HttpStatus;
import io.micronaut.http.annotation.Produces;
import io.micronaut.http.server.exceptions.ExceptionHandler;
import jakarta.inject.Singleton;
import java.util.LinkedHashMap;
import java.util.Map;

/** A mount refused or failed, as the API answers it: the status its kind calls for and {@code {"error", "field"}}. */
@Produces
@Singleton
@Requires(classes = {MountException.class, ExceptionHandler.class})
final class MountExceptionHandler implements ExceptionHandler<MountException, HttpResponse<Map<String, Object>>> {
  @Override
  @SuppressWarnings("rawtypes") // the interface's own signature
  public HttpResponse<Map<String, Object>> handle(HttpRequest request, MountException e) {
    Map<String, Object> body = new LinkedHashMap<>();
    body.put("error", e.getMessage());
    if (e.field() != null) {
      body.put("field", e.field());
    }
    return HttpResponse.<Map<String, Object>>status(status(e.kind())).body(body);
  }

  static HttpStatus status(MountException.Kind kind) {
    return switch (kind) {
      case INVALID -> HttpStatus.BAD_REQUEST;
      case NOT_FOUND -> HttpStatus.NOT_FOUND;
      case CONFLICT -> HttpStatus.CONFLICT;
      case FORBIDDEN -> HttpStatus.FORBIDDEN;
      case ORIGIN_FAILED -> HttpStatus.BAD_GATEWAY;
      case FAILED -> HttpStatus.INTERNAL_SERVER_ERROR;
    };
  }
}
