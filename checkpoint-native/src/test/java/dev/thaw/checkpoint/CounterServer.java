package dev.thaw.checkpoint;

import com.sun.net.httpserver.HttpServer;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A tiny stateful server for the CRIU tests: every GET answers the next value of a counter held in memory, so an
 * answer after a restore shows the process's memory came back, not a fresh start. Prints "listening" once bound.
 */
public final class CounterServer {
  private CounterServer() {}

  public static void main(String[] args) throws Exception {
    AtomicLong counter = new AtomicLong();
    HttpServer server = HttpServer.create(new InetSocketAddress("127.0.0.1", Integer.parseInt(args[0])), 16);
    server.createContext("/", exchange -> {
      byte[] body = Long.toString(counter.incrementAndGet()).getBytes(StandardCharsets.UTF_8);
      exchange.sendResponseHeaders(200, body.length);
      try (OutputStream out = exchange.getResponseBody()) {
        out.write(body);
      }
    });
    server.start();
    System.out.println("listening");
    System.out.flush();
  }
}
