package dev.thaw.testkit;

import java.io.IOException;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.StringJoiner;

/**
 * Real etcd servers (Debian's etcd-server) on loopback, each with its own data directory: one, or a cluster of three
 * for a quorum. For tests and benchmarks of cluster mode.
 */
public final class EtcdCluster implements AutoCloseable {
  private final Path dir;
  private final int[] clientPorts;
  private final int[] peerPorts;
  private final Process[] processes;

  private EtcdCluster(Path dir, int members) throws IOException {
    this.dir = dir;
    clientPorts = new int[members];
    peerPorts = new int[members];
    processes = new Process[members];
    for (int i = 0; i < members; i++) {
      clientPorts[i] = freePort();
      peerPorts[i] = freePort();
    }
  }

  /** Starts {@code members} members as one new cluster and waits until each says it is healthy. */
  public static EtcdCluster start(Path dir, int members) throws Exception {
    EtcdCluster e = new EtcdCluster(dir, members);
    for (int i = 0; i < members; i++) {
      e.launch(i, true);
    }
    for (int i = 0; i < members; i++) {
      e.awaitHealthy(i);
    }
    return e;
  }

  /** The client URLs, comma-separated, as {@code --etcd} takes them. */
  public String endpoints() {
    StringJoiner j = new StringJoiner(",");
    for (int p : clientPorts) {
      j.add("http://127.0.0.1:" + p);
    }
    return j.toString();
  }

  private void launch(int i, boolean fresh) throws IOException {
    StringJoiner cluster = new StringJoiner(",");
    for (int k = 0; k < peerPorts.length; k++) {
      cluster.add("m" + k + "=http://127.0.0.1:" + peerPorts[k]);
    }
    Path data = dir.resolve("m" + i);
    Files.createDirectories(data);
    List<String> cmd = new ArrayList<>(List.of("etcd", "--name", "m" + i, "--data-dir", data.toString(),
        "--listen-client-urls", "http://127.0.0.1:" + clientPorts[i],
        "--advertise-client-urls", "http://127.0.0.1:" + clientPorts[i],
        "--listen-peer-urls", "http://127.0.0.1:" + peerPorts[i],
        "--initial-advertise-peer-urls", "http://127.0.0.1:" + peerPorts[i],
        "--initial-cluster", cluster.toString(), "--initial-cluster-state", fresh ? "new" : "existing",
        "--initial-cluster-token", "thaw-test", "--heartbeat-interval", "50", "--election-timeout", "500"));
    processes[i] = new ProcessBuilder(cmd).redirectErrorStream(true)
        .redirectOutput(dir.resolve("m" + i + ".log").toFile()).start();
  }

  void awaitHealthy(int i) throws Exception {
    HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(1)).build();
    long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
    while (System.nanoTime() < deadline) {
      if (!processes[i].isAlive()) {
        throw new IllegalStateException("etcd m" + i + " exited: " + Files.readString(dir.resolve("m" + i + ".log")));
      }
      try {
        HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + clientPorts[i]
            + "/health")).timeout(Duration.ofSeconds(1)).build(), HttpResponse.BodyHandlers.ofString());
        if (r.statusCode() == 200 && r.body().contains("\"health\":\"true\"")) {
          return;
        }
      } catch (IOException e) {
        // not listening yet
      }
      Thread.sleep(100);
    }
    throw new IllegalStateException("etcd m" + i + " not healthy in 30 s: "
        + Files.readString(dir.resolve("m" + i + ".log")));
  }

  /** Stops every member at once (SIGKILL): etcd is gone until {@link #restart()}. */
  public void stop() throws InterruptedException {
    for (Process p : processes) {
      if (p != null && p.isAlive()) {
        p.destroyForcibly().waitFor();
      }
    }
  }

  /** Starts every member again on the same ports and data. */
  public void restart() throws Exception {
    for (int i = 0; i < processes.length; i++) {
      launch(i, false);
    }
    for (int i = 0; i < processes.length; i++) {
      awaitHealthy(i);
    }
  }

  @Override
  public void close() {
    try {
      stop();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  private static int freePort() throws IOException {
    try (ServerSocket s = new ServerSocket(0)) {
      return s.getLocalPort();
    }
  }
}
