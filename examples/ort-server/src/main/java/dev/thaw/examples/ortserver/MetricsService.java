package dev.thaw.examples.ortserver;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpHandler;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.function.ToLongFunction;

/**
 * Triton's metrics endpoint ({@code GET /metrics} on the metrics port, Prometheus text format): the per-model request
 * counters under Triton's names and labels, for the models serving now.
 */
final class MetricsService implements HttpHandler {
  private final ModelRepository repository;

  MetricsService(ModelRepository repository) {
    this.repository = repository;
  }

  @Override
  public void handle(HttpExchange exchange) throws IOException {
    try (exchange) {
      if (!exchange.getRequestMethod().equals("GET") || !exchange.getRequestURI().getPath().equals("/metrics")) {
        exchange.sendResponseHeaders(404, -1);
        return;
      }
      byte[] body = text(repository.serving()).getBytes(StandardCharsets.UTF_8);
      exchange.getResponseHeaders().set("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
      exchange.sendResponseHeaders(200, body.length);
      try (OutputStream out = exchange.getResponseBody()) {
        out.write(body);
      }
    }
  }

  static String text(List<LoadedModel> models) {
    StringBuilder b = new StringBuilder();
    counter(b, models, "nv_inference_request_success",
        "Number of successful inference requests, all batch sizes", LoadedModel.Counts::successes);
    counter(b, models, "nv_inference_request_failure",
        "Number of failed inference requests, all batch sizes", LoadedModel.Counts::failures);
    counter(b, models, "nv_inference_count", "Number of inferences performed (does not include cached requests)",
        LoadedModel.Counts::inferences);
    return b.toString();
  }

  private static void counter(StringBuilder b, List<LoadedModel> models, String name, String help,
      ToLongFunction<LoadedModel.Counts> value) {
    b.append("# HELP ").append(name).append(' ').append(help).append('\n');
    b.append("# TYPE ").append(name).append(" counter\n");
    for (LoadedModel m : models) {
      b.append(name).append("{model=\"").append(m.name()).append("\",version=\"").append(m.version())
          .append("\"} ").append(value.applyAsLong(m.counts())).append('\n');
    }
  }
}
