package dev.thaw.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.thaw.sidecar.ApiToken;
import dev.thaw.sidecar.Sidecar;
import io.micronaut.context.ApplicationContext;
import io.micronaut.runtime.server.EmbeddedServer;
import java.io.IOException;
import java.io.PrintStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.locks.LockSupport;

/**
 * Ready and first-4-KiB times of a mount made through a sidecar that is already running, as in a deployment: the
 * server's pod starts beside a sidecar that has been up all along. {@code POST /v1/mounts} is sent at t0; ready is
 * when {@code stat} of the shard succeeds, then the first 4 KiB are read. Each repeat gets a fresh sidecar with an
 * empty chunk cache, started in the bench's JVM before t0, so its classes are loaded and compiled as a long-running
 * sidecar's are after earlier mounts; the first repeat is the first in this JVM and is reported apart.
 */
final class SidecarMountTimes {
  private static final ObjectMapper JSON = new ObjectMapper();

  private SidecarMountTimes() {}

  static Map<String, Object> measure(String origin, String model, String file, Path work, int repeats,
      PrintStream log) throws Exception {
    HttpClient http = HttpClient.newHttpClient();
    double[] ready = new double[repeats + 1];
    double[] ttfb = new double[repeats + 1];
    // The S3 origin's credentials, as the sidecar's environment would give them (S3Proxy runs with auth off).
    System.setProperty("aws.accessKeyId", MountBench.ACCESS_KEY);
    System.setProperty("aws.secretAccessKey", MountBench.SECRET_KEY);
    System.setProperty("aws.region", "us-east-1");
    try {
      for (int r = 0; r <= repeats; r++) {
        Path node = work.resolve("sidecar-" + r);
        ModelGenerator.deleteTree(node);
        Map<String, Object> p = new HashMap<>();
        p.put("thaw.api.port", -1);
        p.put("thaw.origin", origin);
        p.put("thaw.mount-root", node.resolve("mounts").toString());
        p.put("thaw.cache-dir", node.resolve("cache").toString());
        try (ApplicationContext sidecar = Sidecar.start(p)) {
          URI base = sidecar.getBean(EmbeddedServer.class).getURI();
          String token = sidecar.getBean(ApiToken.class).value();
          Machine.dropPageCache(log);
          long t0 = System.nanoTime();
          HttpResponse<String> made = http.send(HttpRequest.newBuilder(base.resolve("/v1/mounts"))
              .header("Authorization", "Bearer " + token).header("Content-Type", "application/json")
              .POST(HttpRequest.BodyPublishers.ofString("{\"source\": \"" + model + "\", \"prefetch\": \"auto\"}"))
              .build(), HttpResponse.BodyHandlers.ofString());
          if (made.statusCode() != 201) {
            throw new IOException("POST /v1/mounts answered " + made.statusCode() + ": " + made.body());
          }
          JsonNode mount = JSON.readTree(made.body());
          Path shard = Path.of(mount.get("mountpoint").asText(), file);
          long deadline = t0 + 60_000_000_000L;
          while (!Files.exists(shard)) {
            if (System.nanoTime() > deadline) {
              throw new IOException(shard + " did not appear within 60 s of POST /v1/mounts");
            }
            LockSupport.parkNanos(100_000);
          }
          ready[r] = (System.nanoTime() - t0) / 1e6;
          long t1 = System.nanoTime();
          MountBench.readFirst(shard, MountBench.TTFB_BYTES);
          ttfb[r] = (System.nanoTime() - t1) / 1e6;
          log.printf(Locale.ROOT, "  sidecar mount %d%s: ready %.1f ms, first 4 KiB %.1f ms%n", r,
              r == 0 ? " (the first in this JVM)" : "", ready[r], ttfb[r]);
          http.send(HttpRequest.newBuilder(base.resolve("/v1/mounts/" + mount.get("id").asText()))
              .header("Authorization", "Bearer " + token).DELETE().build(), HttpResponse.BodyHandlers.discarding());
        } finally {
          ModelGenerator.deleteTree(node);
        }
      }
    } finally {
      System.clearProperty("aws.accessKeyId");
      System.clearProperty("aws.secretAccessKey");
      System.clearProperty("aws.region");
    }
    Map<String, Object> out = new LinkedHashMap<>();
    out.put("what", "POST /v1/mounts (prefetch auto) to a running sidecar until stat of the shard succeeds, then its "
        + "first 4 KiB; a fresh sidecar and empty cache per repeat, in the bench's JVM (warm, as a long-running "
        + "sidecar); median of the repeats after the first");
    double[] rest = Arrays.copyOfRange(ready, 1, ready.length);
    double[] restTtfb = Arrays.copyOfRange(ttfb, 1, ttfb.length);
    out.put("ready_ms", MountBench.round(MountBench.median(rest)));
    out.put("ttfb_ms", MountBench.round(MountBench.median(restTtfb)));
    out.put("first_in_jvm_ready_ms", MountBench.round(ready[0]));
    out.put("first_in_jvm_ttfb_ms", MountBench.round(ttfb[0]));
    out.put("ready_ms_all", MountBench.roundAll(rest));
    out.put("ttfb_ms_all", MountBench.roundAll(restTtfb));
    return out;
  }
}
