package dev.thaw.examples.ortserver;

import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpHandler;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.URLDecoder;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.Channels;
import java.nio.channels.WritableByteChannel;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.zip.GZIPInputStream;
import java.util.zip.InflaterInputStream;

/**
 * Triton's HTTP/REST v2 protocol (KServe v2 plus Triton's extensions) on the JDK's HTTP server: health, metadata,
 * configuration, inference with JSON tensors and with the binary tensor data extension, and the model repository
 * extension. Errors are {@code {"error": "..."}} with the HTTP status Triton gives the error's code.
 *
 * <p>Binary tensor data: with a request header {@code Inference-Header-Content-Length: N} the first N bytes of the
 * body are the JSON and the rest the inputs' bytes, in input order, each input sized by its
 * {@code "binary_data_size"} parameter. An output is returned as binary when its {@code "binary_data"} parameter is
 * true, or when the request's {@code "binary_data_output"} parameter is and the output does not say otherwise; the
 * response then carries {@code Inference-Header-Content-Length} and the outputs' bytes after the JSON.
 */
final class HttpInferenceService implements HttpHandler {
  static final String HEADER_LENGTH = "Inference-Header-Content-Length";

  /** Created on first use: Jackson's set-up is not needed to start listening. */
  private static final class Json {
    static final ObjectMapper MAPPER = new ObjectMapper();
  }

  /** One answer: a status, a content type (null for none) and a body of JSON and, optionally, binary tensors. */
  private record Reply(int status, String contentType, byte[] json, List<ByteBuffer> binary) {
    static Reply empty(int status) {
      return new Reply(status, null, new byte[0], List.of());
    }

    static Reply json(byte[] json) {
      return new Reply(200, "application/json", json, List.of());
    }
  }

  @FunctionalInterface
  private interface JsonWriter {
    void write(JsonGenerator g) throws IOException;
  }

  private final OrtServer server;
  private final ModelRepository repository;

  HttpInferenceService(OrtServer server, ModelRepository repository) {
    this.server = server;
    this.repository = repository;
  }

  @Override
  public void handle(HttpExchange exchange) throws IOException {
    Reply reply;
    try {
      reply = route(exchange);
    } catch (IOException e) {
      exchange.close(); // the client went away mid-request: no one to answer
      return;
    } catch (InferenceError e) {
      reply = error(e.httpStatus(), e.getMessage());
    } catch (RuntimeException e) {
      reply = error(500, String.valueOf(e));
    }
    try (exchange) {
      send(exchange, reply);
    }
  }

  private Reply route(HttpExchange exchange) throws IOException {
    List<String> path = segments(exchange.getRequestURI().getRawPath());
    String method = exchange.getRequestMethod().toUpperCase(Locale.ROOT);
    if (path.isEmpty() || !path.get(0).equals("v2")) {
      return error(404, "Not Found");
    }
    if (path.size() == 1) {
      requireMethod(method, "GET");
      return Reply.json(json(this::writeServerMetadata));
    }
    switch (path.get(1)) {
      case "health" -> {
        if (path.size() == 3 && (path.get(2).equals("live") || path.get(2).equals("ready"))) {
          requireMethod(method, "GET");
          boolean ok = path.get(2).equals("live") || server.isReady();
          return Reply.empty(ok ? 200 : 400);
        }
      }
      case "models" -> {
        if (path.size() >= 3) {
          return model(exchange, method, path);
        }
      }
      case "repository" -> {
        if (path.size() == 3 && path.get(2).equals("index")) {
          requireMethod(method, "POST");
          JsonNode body = readJsonBody(exchange);
          boolean readyOnly = body != null && body.path("ready").asBoolean(false);
          return Reply.json(json(g -> writeIndex(g, readyOnly)));
        }
        if (path.size() == 5 && path.get(2).equals("models")
            && (path.get(4).equals("load") || path.get(4).equals("unload"))) {
          requireMethod(method, "POST");
          return loadOrUnload(exchange, path.get(3), path.get(4).equals("load"));
        }
      }
      default -> {
        // not a route
      }
    }
    return error(404, "Not Found");
  }

  /** {@code /v2/models/{m}[/versions/{v}][/ready|/config|/infer]}. */
  private Reply model(HttpExchange exchange, String method, List<String> path) throws IOException {
    String name = path.get(2);
    int at = 3;
    String version = "";
    if (path.size() > at + 1 && path.get(at).equals("versions")) {
      version = path.get(at + 1);
      at += 2;
    }
    if (path.size() == at) {
      requireMethod(method, "GET");
      LoadedModel model = repository.model(name, version);
      return Reply.json(json(g -> writeModelMetadata(g, model)));
    }
    if (path.size() == at + 1) {
      switch (path.get(at)) {
        case "ready" -> {
          requireMethod(method, "GET");
          return Reply.empty(repository.isReady(name, version) ? 200 : 400);
        }
        case "config" -> {
          requireMethod(method, "GET");
          LoadedModel model = repository.model(name, version);
          return Reply.json(json(g -> ProtoJson.write(g, model.config())));
        }
        case "infer" -> {
          requireMethod(method, "POST");
          return infer(exchange, name, version);
        }
        default -> {
          // not a route
        }
      }
    }
    return error(404, "Not Found");
  }

  private Reply loadOrUnload(HttpExchange exchange, String name, boolean load) throws IOException {
    server.checkModelControl();
    JsonNode body = readJsonBody(exchange);
    JsonNode parameters = body == null ? null : body.get("parameters");
    if (load) {
      if (parameters != null && parameters.size() > 0) {
        List<String> names = new ArrayList<>();
        parameters.fieldNames().forEachRemaining(names::add);
        throw InferenceError.unsupported("ort-server does not support load parameters " + names
            + " (it loads the model's files in the repository as they are)");
      }
      repository.load(name);
    } else {
      repository.unload(name); // "unload_dependents" means nothing without ensembles
    }
    return Reply.empty(200);
  }

  private Reply infer(HttpExchange exchange, String name, String version) throws IOException {
    // The model first, as Triton: an unknown model is reported before anything about the body.
    LoadedModel model = repository.model(name, version);
    byte[] body = readBody(exchange);
    int jsonLength = body.length;
    String header = exchange.getRequestHeaders().getFirst(HEADER_LENGTH);
    if (header != null) {
      try {
        jsonLength = Integer.parseInt(header.strip());
      } catch (NumberFormatException e) {
        jsonLength = -1;
      }
      if (jsonLength < 0 || jsonLength > body.length) {
        throw InferenceError.invalidArg(HEADER_LENGTH + " is '" + header + "' but the body has " + body.length
            + " bytes");
      }
    }
    JsonNode request;
    try {
      request = Json.MAPPER.readTree(body, 0, jsonLength);
    } catch (JsonProcessingException e) {
      throw InferenceError.invalidArg("failed to parse the request JSON buffer: " + e.getOriginalMessage());
    }
    if (request == null || !request.isObject()) {
      throw InferenceError.invalidArg("failed to parse the request JSON buffer: expected a JSON object");
    }
    ByteBuffer binary = ByteBuffer.wrap(body, jsonLength, body.length - jsonLength).slice();
    List<Tensor> inputs = decodeInputs(request, binary, name);
    if (binary.hasRemaining()) {
      throw InferenceError.invalidArg("unexpected additional input data for model '" + name + "'");
    }
    boolean binaryByDefault = request.path("parameters").path("binary_data_output").asBoolean(false);
    List<String> outputs = new ArrayList<>();
    List<Boolean> outputBinary = new ArrayList<>();
    for (JsonNode output : request.path("outputs")) {
      String outputName = text(output, "name", "output");
      JsonNode parameters = output.path("parameters");
      if (parameters.has("classification")) {
        throw InferenceError.unsupported("ort-server does not support the classification extension (output '"
            + outputName + "')");
      }
      outputs.add(outputName);
      outputBinary.add(parameters.path("binary_data").asBoolean(binaryByDefault));
    }
    InferResult result = model.infer(new InferRequest(request.path("id").asText(""), inputs, outputs));
    List<ByteBuffer> binaryOutputs = new ArrayList<>();
    byte[] json = json(g -> {
      g.writeStartObject();
      if (!result.id().isEmpty()) {
        g.writeStringField("id", result.id());
      }
      g.writeStringField("model_name", result.modelName());
      g.writeStringField("model_version", Long.toString(result.modelVersion()));
      g.writeArrayFieldStart("outputs");
      for (int i = 0; i < result.outputs().size(); i++) {
        Tensor output = result.outputs().get(i);
        boolean asBinary = outputs.isEmpty() ? binaryByDefault : outputBinary.get(i);
        g.writeStartObject();
        g.writeStringField("name", output.name());
        g.writeStringField("datatype", output.datatype());
        g.writeArrayFieldStart("shape");
        for (long d : output.shape()) {
          g.writeNumber(d);
        }
        g.writeEndArray();
        if (asBinary) {
          g.writeObjectFieldStart("parameters");
          g.writeNumberField("binary_data_size", output.data().remaining());
          g.writeEndObject();
          binaryOutputs.add(output.data());
        } else {
          TensorType type = TensorType.fromProtocol(output.datatype());
          ByteBuffer data = output.data().slice().order(ByteOrder.LITTLE_ENDIAN);
          g.writeArrayFieldStart("data");
          for (int e = 0, n = data.remaining() / type.byteSize; e < n; e++) {
            type.writeJson(g, data, e);
          }
          g.writeEndArray();
        }
        g.writeEndObject();
      }
      g.writeEndArray();
      g.writeEndObject();
    });
    return binaryOutputs.isEmpty()
        ? Reply.json(json)
        : new Reply(200, "application/octet-stream", json, binaryOutputs);
  }

  /** The request's inputs, their bytes from "data" (flat or nested) or from the binary section, in input order. */
  private static List<Tensor> decodeInputs(JsonNode request, ByteBuffer binary, String model) {
    JsonNode inputs = request.get("inputs");
    if (inputs == null || !inputs.isArray()) {
      throw InferenceError.invalidArg("the request JSON for model '" + model + "' has no 'inputs' array");
    }
    List<Tensor> tensors = new ArrayList<>(inputs.size());
    for (JsonNode input : inputs) {
      String name = text(input, "name", "input");
      String datatype = text(input, "datatype", "input '" + name + "'");
      JsonNode shapeNode = input.get("shape");
      if (shapeNode == null || !shapeNode.isArray()) {
        throw InferenceError.invalidArg("input '" + name + "' has no 'shape' array");
      }
      long[] shape = new long[shapeNode.size()];
      for (int i = 0; i < shape.length; i++) {
        if (!shapeNode.get(i).canConvertToLong() || !shapeNode.get(i).isIntegralNumber()) {
          throw InferenceError.invalidArg("input '" + name + "' has a shape that is not integers: " + shapeNode);
        }
        shape[i] = shapeNode.get(i).longValue();
      }
      JsonNode binarySize = input.path("parameters").get("binary_data_size");
      ByteBuffer data;
      if (binarySize != null) {
        long size = binarySize.asLong(-1);
        if (size < 0 || size > binary.remaining()) {
          throw InferenceError.invalidArg("input '" + name + "' has binary_data_size " + binarySize + " but "
              + binary.remaining() + " bytes of binary data remain for model '" + model + "'");
        }
        data = binary.slice(binary.position(), (int) size).order(ByteOrder.LITTLE_ENDIAN);
        binary.position(binary.position() + (int) size);
      } else if (input.has("data")) {
        data = fromJson(name, datatype, shape, input.get("data"));
      } else {
        throw InferenceError.invalidArg("input '" + name + "' has neither 'data' nor a 'binary_data_size' parameter"
            + " for model '" + model + "'");
      }
      tensors.add(new Tensor(name, datatype, shape, data));
    }
    return tensors;
  }

  private static ByteBuffer fromJson(String name, String datatype, long[] shape, JsonNode data) {
    List<JsonNode> elements = new ArrayList<>();
    flatten(data, elements);
    TensorType type = TensorType.fromProtocol(datatype);
    if (type == null) {
      // No JSON form for this type: an empty tensor, which validation answers with the datatype error.
      return ByteBuffer.allocate(0);
    }
    if (elements.size() != Tensor.elementCount(shape)) {
      throw InferenceError.invalidArg("Unable to parse 'data': Shape does not match true shape of 'data' field");
    }
    ByteBuffer bytes = ByteBuffer.allocateDirect(elements.size() * type.byteSize).order(ByteOrder.LITTLE_ENDIAN);
    for (JsonNode e : elements) {
      try {
        type.putJson(bytes, e);
      } catch (IllegalArgumentException ex) {
        throw InferenceError.invalidArg("Unable to parse 'data' of input '" + name + "' as " + datatype + ": "
            + ex.getMessage());
      }
    }
    return bytes.flip();
  }

  private static void flatten(JsonNode node, List<JsonNode> out) {
    if (node.isArray()) {
      for (JsonNode e : node) {
        flatten(e, out);
      }
    } else {
      out.add(node);
    }
  }

  private static String text(JsonNode node, String field, String what) {
    JsonNode v = node.get(field);
    if (v == null || !v.isTextual()) {
      throw InferenceError.invalidArg(what + " has no '" + field + "' string");
    }
    return v.textValue();
  }

  private void writeServerMetadata(JsonGenerator g) throws IOException {
    g.writeStartObject();
    g.writeStringField("name", OrtServer.NAME);
    g.writeStringField("version", OrtServer.version());
    g.writeArrayFieldStart("extensions");
    for (String extension : OrtServer.EXTENSIONS) {
      g.writeString(extension);
    }
    g.writeEndArray();
    g.writeEndObject();
  }

  private static void writeModelMetadata(JsonGenerator g, LoadedModel model) throws IOException {
    g.writeStartObject();
    g.writeStringField("name", model.name());
    g.writeArrayFieldStart("versions");
    g.writeString(Long.toString(model.version()));
    g.writeEndArray();
    g.writeStringField("platform", model.config().getPlatform());
    writeTensors(g, "inputs", model.inputs(), model.maxBatchSize());
    writeTensors(g, "outputs", model.outputs(), model.maxBatchSize());
    g.writeEndObject();
  }

  private static void writeTensors(JsonGenerator g, String field, List<LoadedModel.TensorSpec> tensors,
      int maxBatchSize) throws IOException {
    g.writeArrayFieldStart(field);
    for (LoadedModel.TensorSpec t : tensors) {
      g.writeStartObject();
      g.writeStringField("name", t.name());
      g.writeStringField("datatype", t.type().protocolName);
      g.writeArrayFieldStart("shape");
      for (long d : t.fullShape(maxBatchSize)) {
        g.writeNumber(d);
      }
      g.writeEndArray();
      g.writeEndObject();
    }
    g.writeEndArray();
  }

  private void writeIndex(JsonGenerator g, boolean readyOnly) throws IOException {
    g.writeStartArray();
    for (ModelRepository.IndexEntry e : repository.index(readyOnly)) {
      g.writeStartObject();
      g.writeStringField("name", e.name());
      // Like Triton, a model that was never loaded is listed by name only.
      if (!e.state().isEmpty()) {
        g.writeStringField("version", e.version());
        g.writeStringField("state", e.state());
        g.writeStringField("reason", e.reason());
      }
      g.writeEndObject();
    }
    g.writeEndArray();
  }

  private static void requireMethod(String method, String expected) {
    if (!method.equals(expected)) {
      throw InferenceError.methodNotAllowed(expected);
    }
  }

  /** The body as JSON, or null when it is empty. */
  private static JsonNode readJsonBody(HttpExchange exchange) throws IOException {
    byte[] body = readBody(exchange);
    if (body.length == 0) {
      return null;
    }
    try {
      return Json.MAPPER.readTree(body);
    } catch (JsonProcessingException e) {
      throw InferenceError.invalidArg("failed to parse the request JSON buffer: " + e.getOriginalMessage());
    }
  }

  private static byte[] readBody(HttpExchange exchange) throws IOException {
    byte[] body;
    try (InputStream in = exchange.getRequestBody()) {
      body = in.readAllBytes();
    }
    String encoding = exchange.getRequestHeaders().getFirst("Content-Encoding");
    if (encoding == null) {
      return body;
    }
    try {
      return switch (encoding.strip().toLowerCase(Locale.ROOT)) {
        case "gzip" -> new GZIPInputStream(new ByteArrayInputStream(body)).readAllBytes();
        case "deflate" -> new InflaterInputStream(new ByteArrayInputStream(body)).readAllBytes();
        case "identity", "" -> body;
        default -> throw InferenceError.unsupported("unsupported Content-Encoding '" + encoding + "'");
      };
    } catch (IOException e) {
      throw InferenceError.invalidArg("cannot decompress the " + encoding + " request body: " + e.getMessage());
    }
  }

  private static byte[] json(JsonWriter writer) throws IOException {
    ByteArrayOutputStream out = new ByteArrayOutputStream(256);
    try (JsonGenerator g = Json.MAPPER.getFactory().createGenerator(out)) {
      writer.write(g);
    }
    return out.toByteArray();
  }

  private static Reply error(int status, String message) {
    try {
      return new Reply(status, "application/json", json(g -> {
        g.writeStartObject();
        g.writeStringField("error", message);
        g.writeEndObject();
      }), List.of());
    } catch (IOException e) {
      throw new IllegalStateException(e); // writing to memory does not fail
    }
  }

  private static void send(HttpExchange exchange, Reply reply) throws IOException {
    long length = reply.json().length;
    for (ByteBuffer b : reply.binary()) {
      length += b.remaining();
    }
    if (reply.contentType() != null) {
      exchange.getResponseHeaders().set("Content-Type", reply.contentType());
    }
    if (!reply.binary().isEmpty()) {
      exchange.getResponseHeaders().set(HEADER_LENGTH, Integer.toString(reply.json().length));
    }
    exchange.sendResponseHeaders(reply.status(), length == 0 ? -1 : length);
    if (length == 0) {
      return;
    }
    OutputStream out = exchange.getResponseBody();
    out.write(reply.json());
    if (!reply.binary().isEmpty()) {
      WritableByteChannel channel = Channels.newChannel(out);
      for (ByteBuffer b : reply.binary()) {
        ByteBuffer view = b.slice();
        while (view.hasRemaining()) {
          channel.write(view);
        }
      }
    }
    out.flush();
  }

  /** The path's segments, percent-decoded; empty segments (from doubled or trailing slashes) are dropped. */
  private static List<String> segments(String rawPath) {
    List<String> segments = new ArrayList<>();
    for (String s : rawPath.split("/")) {
      if (!s.isEmpty()) {
        try {
          segments.add(URLDecoder.decode(s.replace("+", "%2B"), StandardCharsets.UTF_8));
        } catch (IllegalArgumentException e) {
          throw InferenceError.invalidArg("malformed request path " + rawPath);
        }
      }
    }
    return segments;
  }
}
