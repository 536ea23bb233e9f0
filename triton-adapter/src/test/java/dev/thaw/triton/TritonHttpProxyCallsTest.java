package dev.thaw.triton;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;

import com.sun.net.httpserver.HttpServer;
import dev.thaw.testkit.FreePorts;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.Random;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * What the HTTP proxy does with bodies and failures, seen against an upstream that streams: large bodies both ways,
 * server-sent events as they are sent, an upstream that breaks off an answer, and one that is not there.
 */
class TritonHttpProxyCallsTest {
  static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();

  static HttpServer upstream;
  static TritonHttpProxy proxy;
  static final long DOWNLOAD_BYTES = 256L << 20;
  static final AtomicLong downloadSent = new AtomicLong();
  static volatile CountDownLatch eventsRelease = new CountDownLatch(0);

  @BeforeAll
  static void start() throws Exception {
    upstream = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 16);
    upstream.setExecutor(Executors.newVirtualThreadPerTaskExecutor());
    upstream.createContext("/echo", exchange -> { // the request body back, once read whole, in chunks
      byte[] body;
      try (InputStream in = exchange.getRequestBody()) {
        body = in.readAllBytes();
      }
      exchange.sendResponseHeaders(200, 0);
      try (OutputStream out = exchange.getResponseBody()) {
        out.write(body);
      }
    });
    upstream.createContext("/events", exchange -> { // one event, then the rest once the test has seen it
      exchange.getResponseHeaders().set("Content-Type", "text/event-stream");
      exchange.sendResponseHeaders(200, 0);
      try (OutputStream out = exchange.getResponseBody()) {
        out.write("data: first\n\n".getBytes(StandardCharsets.UTF_8));
        out.flush();
        eventsRelease.await(30, TimeUnit.SECONDS);
        out.write("data: second\n\n".getBytes(StandardCharsets.UTF_8));
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    });
    upstream.createContext("/download", exchange -> { // 256 MiB as fast as the connection takes them
      exchange.sendResponseHeaders(200, DOWNLOAD_BYTES);
      byte[] piece = new byte[1 << 20];
      try (OutputStream out = exchange.getResponseBody()) {
        for (long sent = 0; sent < DOWNLOAD_BYTES; sent += piece.length) {
          out.write(piece);
          downloadSent.addAndGet(piece.length);
        }
      }
    });
    upstream.createContext("/broken", exchange -> { // promises 1 MiB, sends 64 KiB, and hangs up
      exchange.sendResponseHeaders(200, 1 << 20);
      exchange.getResponseBody().write(new byte[64 << 10]);
      exchange.getResponseBody().flush();
      exchange.close();
    });
    upstream.start();
    proxy = TritonHttpProxy.start(new InetSocketAddress("127.0.0.1", 0), upstream.getAddress());
  }

  @AfterAll
  static void stop() {
    proxy.close();
    upstream.stop(0);
  }

  @Test
  void largeBodiesStreamThroughBothWaysUnchanged() throws Exception {
    byte[] body = new byte[48 << 20];
    new Random(1).nextBytes(body);

    HttpResponse<byte[]> answer = HTTP.send(HttpRequest.newBuilder(uri(proxy.port(), "/echo"))
        .POST(HttpRequest.BodyPublishers.ofByteArray(body)).timeout(Duration.ofSeconds(60)).build(),
        HttpResponse.BodyHandlers.ofByteArray());

    assertThat(answer.statusCode()).isEqualTo(200);
    assertThat(answer.body().length).isEqualTo(body.length);
    assertThat(MessageDigest.getInstance("SHA-256").digest(answer.body()))
        .isEqualTo(MessageDigest.getInstance("SHA-256").digest(body));
  }

  @Test
  void aClientThatReadsNothingHoldsBackTheUpstreamAndGetsEveryByteLater() throws Exception {
    HttpResponse<InputStream> answer = HTTP.send(HttpRequest.newBuilder(uri(proxy.port(), "/download"))
        .timeout(Duration.ofSeconds(60)).build(), HttpResponse.BodyHandlers.ofInputStream());
    try (InputStream body = answer.body()) {
      long before;
      do { // until the upstream stops getting rid of bytes
        before = downloadSent.get();
        Thread.sleep(300);
      } while (downloadSent.get() != before);

      assertThat(downloadSent.get()).as("bytes the upstream could send to a client reading nothing")
          .isLessThan(64L << 20);
      assertThat(body.transferTo(OutputStream.nullOutputStream())).isEqualTo(DOWNLOAD_BYTES);
    }
  }

  @Test
  void serverSentEventsArriveAsTheyAreSent() throws Exception {
    eventsRelease = new CountDownLatch(1);
    HttpResponse<InputStream> answer = HTTP.send(HttpRequest.newBuilder(uri(proxy.port(), "/events"))
        .timeout(Duration.ofSeconds(30)).build(), HttpResponse.BodyHandlers.ofInputStream());
    try (BufferedReader events = new BufferedReader(new InputStreamReader(answer.body(), StandardCharsets.UTF_8))) {
      assertThat(answer.headers().firstValue("content-type")).hasValue("text/event-stream");
      // the upstream holds the second event until the first has come through: a buffering proxy would hang here
      assertThat(events.readLine()).isEqualTo("data: first");
      eventsRelease.countDown();
      assertThat(events.readLine()).isEmpty();
      assertThat(events.readLine()).isEqualTo("data: second");
    }
  }

  @Test
  void anAnswerTheUpstreamBreaksOffEndsTheClientsConnectionAndTheProxyServesOn() throws Exception {
    Throwable broken = catchThrowable(() -> HTTP.send(HttpRequest.newBuilder(uri(proxy.port(), "/broken"))
        .timeout(Duration.ofSeconds(30)).build(), HttpResponse.BodyHandlers.ofByteArray()));

    assertThat(broken).as("the client sees the answer end early").isInstanceOf(IOException.class);
    HttpResponse<byte[]> next = HTTP.send(HttpRequest.newBuilder(uri(proxy.port(), "/echo"))
        .POST(HttpRequest.BodyPublishers.ofString("still here")).timeout(Duration.ofSeconds(30)).build(),
        HttpResponse.BodyHandlers.ofByteArray());
    assertThat(new String(next.body(), StandardCharsets.UTF_8)).isEqualTo("still here");
  }

  @Test
  void whatIsNotHttpIsAnswered400WithoutReachingTheUpstream() throws Exception {
    try (Socket socket = new Socket("127.0.0.1", proxy.port())) {
      socket.setSoTimeout(10_000);
      socket.getOutputStream().write("GET /v2 HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n"
          .getBytes(StandardCharsets.US_ASCII));
      String answer = new String(socket.getInputStream().readAllBytes(), StandardCharsets.UTF_8);

      assertThat(answer).startsWith("HTTP/1.1 400 Bad Request\r\n").contains("{\"error\":\"malformed HTTP request: ");
    }
  }

  @Test
  void anUnreachableUpstreamIsAnswered502NamingIt() throws Exception {
    int nothing = FreePorts.pick(1)[0];
    try (TritonHttpProxy toNothing = TritonHttpProxy.start(new InetSocketAddress("127.0.0.1", 0),
        new InetSocketAddress("127.0.0.1", nothing))) {
      HttpResponse<String> answer = HTTP.send(HttpRequest.newBuilder(uri(toNothing.port(), "/v2/health/ready"))
          .timeout(Duration.ofSeconds(30)).build(), HttpResponse.BodyHandlers.ofString());

      assertThat(answer.statusCode()).isEqualTo(502);
      assertThat(answer.headers().firstValue("content-type")).hasValue("application/json");
      assertThat(answer.body()).startsWith("{\"error\":\"Triton at 127.0.0.1:" + nothing + " is unreachable: ");
    }
  }

  private static URI uri(int port, String path) {
    return URI.create("http://127.0.0.1:" + port + path);
  }
}
