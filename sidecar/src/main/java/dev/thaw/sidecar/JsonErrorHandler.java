package dev.thaw.sidecar;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonMappingException;
import com.fasterxml.jackson.databind.exc.UnrecognizedPropertyException;
import io.micronaut.context.annotation.Replaces;
import io.micronaut.core.convert.exceptions.ConversionErrorException;
import io.micronaut.http.HttpRequest;
import io.micronaut.http.HttpResponse;
import io.micronaut.http.HttpStatus;
import io.micronaut.http.annotation.Produces;
import io.micronaut.http.server.exceptions.ConversionErrorHandler;
import io.micronaut.http.server.exceptions.ExceptionHandler;
import jakarta.inject.Singleton;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.stream.Collectors;

/**
 * A body that is not the JSON an endpoint takes is a 400 in the API's own shape, {@code {"error", "field"}}, the
 * field being where in the body it went wrong ({@code source}, {@code probe.url}, {@code paths[0]}).
 */
@Produces
@Singleton
@Replaces(ConversionErrorHandler.class)
final class JsonErrorHandler implements ExceptionHandler<ConversionErrorException, HttpResponse<Map<String, Object>>> {
  @Override
  @SuppressWarnings("rawtypes") // the interface's own signature
  public HttpResponse<Map<String, Object>> handle(HttpRequest request, ConversionErrorException e) {
    Throwable cause = e.getConversionError().getCause();
    Map<String, Object> body = new LinkedHashMap<>();
    String field = null;
    String why;
    if (cause instanceof UnrecognizedPropertyException u) {
      field = path(u);
      why = "unknown field " + field + " (known: " + u.getKnownPropertyIds().stream().map(String::valueOf).sorted()
          .collect(Collectors.joining(", ")) + ")";
    } else if (cause instanceof JsonMappingException m && !m.getPath().isEmpty()) {
      field = path(m);
      why = "field " + field + " has the wrong type or value: " + jacksonWords(m);
    } else if (cause instanceof JsonProcessingException p) {
      why = "the body is not the JSON this endpoint takes: " + jacksonWords(p);
    } else {
      why = "the body is not what this endpoint takes: " + (cause == null ? e.getMessage() : cause.getMessage());
    }
    body.put("error", why);
    if (field != null) {
      body.put("field", field);
    }
    return HttpResponse.<Map<String, Object>>status(HttpStatus.BAD_REQUEST).body(body);
  }

  /** Jackson's first line, less its advice on enabling coercion (which the API refuses on purpose). */
  private static String jacksonWords(JsonProcessingException e) {
    return e.getOriginalMessage().lines().findFirst().orElse("")
        .replaceAll("\\s*\\(but (could|might) if coercion[^)]*\\)", "");
  }

  /** The JSON path of the error: {@code probe.url}, {@code paths[0]}. */
  private static String path(JsonMappingException e) {
    StringBuilder b = new StringBuilder();
    for (JsonMappingException.Reference r : e.getPath()) {
      if (r.getFieldName() != null) {
        b.append(b.isEmpty() ? "" : ".").append(r.getFieldName());
      } else if (r.getIndex() >= 0) {
        b.append('[').append(r.getIndex()).append(']');
      }
    }
    return b.toString();
  }
}
