package dev.thaw.sidecar;

import io.micronaut.http.HttpStatus;

/** A request the API refuses: its status, the request field at fault (or null) and what is wrong, in words. */
final class ApiException extends RuntimeException {
  private final HttpStatus status;
  private final String field;

  ApiException(HttpStatus status, String field, String message) {
    super(message);
    this.status = status;
    this.field = field;
  }

  ApiException(HttpStatus status, String field, String message, Throwable cause) {
    super(message, cause);
    this.status = status;
    this.field = field;
  }

  static ApiException badField(String field, String message) {
    return new ApiException(HttpStatus.BAD_REQUEST, field, message);
  }

  HttpStatus status() {
    return status;
  }

  String field() {
    return field;
  }
}
