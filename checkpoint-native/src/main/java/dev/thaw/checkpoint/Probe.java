package dev.thaw.checkpoint;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;

/**
 * One HTTP request a server answers the same way every time (an inference on fixed inputs), used twice: at
 * checkpoint, its answer from the warm server is recorded with the snapshot; after a restore, the restored server must
 * give exactly that answer before it counts as restored. {@code body} null means GET.
 */
public record Probe(String url, String body) {
  /** Triton's readiness endpoint ({@code /v2/health/ready}) on the host and port of this probe's URL. */
  public String readinessBeside() {
    java.net.URI u = java.net.URI.create(url);
    return u.getScheme() + "://" + u.getRawAuthority() + "/v2/health/ready";
  }

  private static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();

  /** Sends the probe; returns the answer's body, or throws naming the URL and the status. */
  public String ask(Duration timeout) throws IOException {
    HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(url)).timeout(timeout);
    if (body != null) {
      b.header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body));
    }
    try {
      HttpResponse<String> r = HTTP.send(b.build(), HttpResponse.BodyHandlers.ofString());
      if (r.statusCode() != 200) {
        throw new IOException("probe " + url + " answered HTTP " + r.statusCode() + ": " + r.body());
      }
      return r.body();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IOException("interrupted while probing " + url, e);
    }
  }

  /** Polls {@code url} until it answers 200 (a readiness endpoint such as Triton's /v2/health/ready). */
  public static void awaitReady(String url, Duration timeout) throws IOException {
    awaitReady(url, timeout, -1);
  }

  /** As {@link #awaitReady(String, Duration)}, failing at once when process {@code pid} (if not -1) has exited. */
  public static void awaitReady(String url, Duration timeout, long pid) throws IOException {
    long deadline = System.nanoTime() + timeout.toNanos();
    Probe p = new Probe(url, null);
    IOException last = null;
    while (System.nanoTime() < deadline) {
      try {
        p.ask(Duration.ofSeconds(5));
        return;
      } catch (IOException e) {
        last = e;
      }
      if (pid > 0 && !PidNamespaceProcess.exists(pid)) {
        throw new IOException("the server (process " + pid + ") exited before " + url + " answered"
            + (last == null ? "" : ": " + describe(last)));
      }
      try {
        Thread.sleep(20);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IOException("interrupted while waiting for " + url, e);
      }
    }
    throw new IOException(url + " not ready within " + timeout.toMillis() + " ms"
        + (last == null ? "" : ": " + describe(last)));
  }

  private static String describe(IOException e) {
    return e.getMessage() != null ? e.getMessage() : e.getClass().getSimpleName();
  }
}
