package dev.thaw.agent.internal;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import java.io.IOException;
import java.io.StringWriter;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.Optional;

/** The sidecar's mount API ({@code /v1/mounts}, docs/api.md), as the agent uses it. */
final class SidecarClient {
  /** Jackson, loaded at the first call to the sidecar, not at the JVM's start. */
  private static final class Json {
    static final JsonFactory FACTORY = new JsonFactory();
  }

  private final AgentConfig config;
  private HttpClient http; // made at the first call: building one sets up TLS, a cost the JVM's start need not pay

  SidecarClient(AgentConfig config) {
    this.config = config;
  }

  /**
   * The mount point of {@code source}: the sidecar's existing mount of it, or a new one.
   *
   * @throws IOException naming the sidecar and its answer when it cannot mount the source
   */
  String mount(String source) throws IOException, InterruptedException {
    Optional<String> mounted = existing(source);
    if (mounted.isPresent()) {
      return mounted.get();
    }
    StringWriter body = new StringWriter();
    try (JsonGenerator g = Json.FACTORY.createGenerator(body)) {
      g.writeStartObject();
      g.writeStringField("source", source);
      g.writeEndObject();
    }
    HttpResponse<String> answer = send(request("/v1/mounts").POST(HttpRequest.BodyPublishers.ofString(body.toString()))
        .header("Content-Type", "application/json"));
    if (answer.statusCode() == 409) { // mounted meanwhile by another load
      return existing(source).orElseThrow(() -> failure("mount " + source, answer));
    }
    if (answer.statusCode() != 201) {
      throw failure("mount " + source, answer);
    }
    return field(answer.body(), "mountpoint").orElseThrow(() -> failure("mount " + source, answer));
  }

  /** Tells the sidecar that process {@code pid} loaded the model at {@code path}, and has answered an inference. */
  void warm(long pid, String path, boolean firstInference) throws IOException, InterruptedException {
    StringWriter body = new StringWriter();
    try (JsonGenerator g = Json.FACTORY.createGenerator(body)) {
      g.writeStartObject();
      g.writeNumberField("pid", pid);
      g.writeArrayFieldStart("paths");
      g.writeString(path);
      g.writeEndArray();
      g.writeBooleanField("first_inference", firstInference);
      g.writeEndObject();
    }
    HttpResponse<String> answer = send(request("/v1/agent/warm").POST(HttpRequest.BodyPublishers.ofString(
        body.toString())).header("Content-Type", "application/json"));
    if (answer.statusCode() != 200) {
      throw failure("note the model warm", answer);
    }
  }

  private Optional<String> existing(String source) throws IOException, InterruptedException {
    HttpResponse<String> answer = send(request("/v1/mounts").GET());
    if (answer.statusCode() != 200) {
      throw failure("list mounts", answer);
    }
    try (JsonParser p = Json.FACTORY.createParser(answer.body())) {
      if (p.nextToken() != JsonToken.START_ARRAY) {
        return Optional.empty();
      }
      while (p.nextToken() == JsonToken.START_OBJECT) {
        String src = null;
        String mountpoint = null;
        boolean isMounted = false;
        while (p.nextToken() == JsonToken.FIELD_NAME) {
          String name = p.currentName();
          JsonToken value = p.nextToken();
          switch (name) {
            case "source" -> src = p.getValueAsString();
            case "mountpoint" -> mountpoint = p.getValueAsString();
            case "mounted" -> isMounted = value == JsonToken.VALUE_TRUE;
            default -> p.skipChildren();
          }
        }
        if (source.equals(src) && isMounted && mountpoint != null) {
          return Optional.of(mountpoint);
        }
      }
    }
    return Optional.empty();
  }

  private static Optional<String> field(String json, String field) throws IOException {
    try (JsonParser p = Json.FACTORY.createParser(json)) {
      if (p.nextToken() != JsonToken.START_OBJECT) {
        return Optional.empty();
      }
      while (p.nextToken() == JsonToken.FIELD_NAME) {
        String name = p.currentName();
        p.nextToken();
        if (name.equals(field)) {
          return Optional.ofNullable(p.getValueAsString());
        }
        p.skipChildren();
      }
    }
    return Optional.empty();
  }

  private HttpRequest.Builder request(String path) {
    HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(config.sidecar() + path)).timeout(Duration.ofSeconds(60));
    if (config.token() != null) {
      b.header("Authorization", "Bearer " + config.token());
    }
    return b;
  }

  private synchronized HttpClient http() {
    if (http == null) {
      http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
    }
    return http;
  }

  private HttpResponse<String> send(HttpRequest.Builder request) throws IOException, InterruptedException {
    try {
      return http().send(request.build(), HttpResponse.BodyHandlers.ofString());
    } catch (IOException e) {
      throw new IOException("the sidecar at " + config.sidecar() + " cannot be reached: " + e, e);
    }
  }

  private IOException failure(String what, HttpResponse<String> answer) {
    return new IOException("the sidecar at " + config.sidecar() + " could not " + what + ": HTTP "
        + answer.statusCode() + " " + answer.body().strip());
  }
}
