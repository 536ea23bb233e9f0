package dev.thaw.examples.ortserver;

import io.grpc.Status;

/**
 * An error answered to a client, as Triton answers it: one of Triton's error codes and a message in Triton's wording
 * (clients and test suites match on both, e.g. "Request for unknown model: 'x' is not found").
 *
 * <p>Each code maps to a gRPC status and an HTTP status the way Triton's frontends map {@code TRITONSERVER_Error}
 * codes: gRPC one to one; HTTP 500 for INTERNAL, 404 for NOT_FOUND, 503 for UNAVAILABLE, 501 for UNSUPPORTED and
 * 400 for everything else.
 */
final class InferenceError extends RuntimeException {
  private static final long serialVersionUID = 1L;

  /** Triton's {@code TRITONSERVER_Error_Code} values. */
  enum Code {
    UNKNOWN(Status.Code.UNKNOWN, 400),
    INTERNAL(Status.Code.INTERNAL, 500),
    NOT_FOUND(Status.Code.NOT_FOUND, 404),
    INVALID_ARG(Status.Code.INVALID_ARGUMENT, 400),
    UNAVAILABLE(Status.Code.UNAVAILABLE, 503),
    UNSUPPORTED(Status.Code.UNIMPLEMENTED, 501),
    ALREADY_EXISTS(Status.Code.ALREADY_EXISTS, 400);

    final Status.Code grpc;
    final int http;

    Code(Status.Code grpc, int http) {
      this.grpc = grpc;
      this.http = http;
    }
  }

  private final Code code;
  private final int httpStatus;

  InferenceError(Code code, String message) {
    this(code, message, code.http);
  }

  private InferenceError(Code code, String message, int httpStatus) {
    // No stack trace: these are expected answers to bad requests, built on every one of them.
    super(message, null, false, false);
    this.code = code;
    this.httpStatus = httpStatus;
  }

  /** An HTTP request with the wrong method for its path: 405, which no Triton error code maps to. */
  static InferenceError methodNotAllowed(String allowed) {
    return new InferenceError(Code.UNSUPPORTED, "Method Not Allowed: use " + allowed, 405);
  }

  static InferenceError invalidArg(String message) {
    return new InferenceError(Code.INVALID_ARG, message);
  }

  static InferenceError notFound(String message) {
    return new InferenceError(Code.NOT_FOUND, message);
  }

  static InferenceError unavailable(String message) {
    return new InferenceError(Code.UNAVAILABLE, message);
  }

  static InferenceError internal(String message) {
    return new InferenceError(Code.INTERNAL, message);
  }

  static InferenceError unsupported(String message) {
    return new InferenceError(Code.UNSUPPORTED, message);
  }

  Code code() {
    return code;
  }

  int httpStatus() {
    return httpStatus;
  }

  Status grpcStatus() {
    return Status.fromCode(code.grpc).withDescription(getMessage());
  }
}
