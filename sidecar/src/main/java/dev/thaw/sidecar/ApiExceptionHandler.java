package dev.thaw.sidecar;

import io.micronaut.context.annotation.Requires;
import io.micronaut.http.HttpRequest;
import io.micronaut.http.HttpResponse;
import io.micronaut.http.annotation.Produces;
import io.micronaut.http.server.exceptions.ExceptionHandler;
import jakarta.inject.Singleton;
import java.util.LinkedHashMap;
import java.util.Map;

/** Every refusal as JSON: {@code {"error": "...", "field": "..."}} with the status it calls for. */
@Produces
@Singleton
@Requires(classes = {ApiException.class, ExceptionHandler.class})
final class ApiExceptionHandler implements ExceptionHandler<ApiException, HttpResponse<Map<String, Object>>> {
  @Override
  @SuppressWarnings("rawtypes") // the interface's own signature
  public HttpResponse<Map<String, Object>> handle(HttpRequest request, ApiException e) {
    Map<String, Object> body = new LinkedHashMap<>();
    body.put("error", e.getMessage());
    if (e.field() != null) {
      body.put("field", e.field());
    }
    return HttpResponse.<Map<String, Object>>status(e.status()).body(body);
  }
}
