package dev.thaw.checkpoint;

import java.io.IOException;
import java.net.ServerSocket;
import java.nio.file.Path;
import java.util.List;

/** What the CRIU tests start: free ports, and ort-server as PID 1 of its own PID namespace. */
final class TestServers {
  private TestServers() {}

  /** Free ports, distinct: each socket stays bound until all are picked. */
  static int[] freePorts(int n) throws IOException {
    ServerSocket[] sockets = new ServerSocket[n];
    try {
      int[] ports = new int[n];
      for (int i = 0; i < n; i++) {
        sockets[i] = new ServerSocket(0);
        ports[i] = sockets[i].getLocalPort();
      }
      return ports;
    } finally {
      for (ServerSocket s : sockets) {
        if (s != null) {
          s.close();
        }
      }
    }
  }

  /**
   * ort-server on {@code repository} in its own PID namespace, stdout and stderr to {@code log}.out/.err. ONNX Runtime's
   * natives go to a folder that outlives the process (its default is a temp folder deleted at exit, which a restore
   * would miss); -XX:-UsePerfData because the JVM is PID 1 of its namespace.
   */
  static PidNamespaceProcess ortServer(Path repository, int http, int grpc, boolean warmup, Path log) throws IOException {
    String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
    List<String> cmd = new java.util.ArrayList<>(List.of(java, "-XX:-UsePerfData", "--enable-native-access=ALL-UNNAMED",
        "-Xmx256m", "-cp", System.getProperty("java.class.path"), "dev.thaw.examples.ortserver.OrtServer",
        "--model-repository=" + repository, "--http-port=" + http, "--grpc-port=" + grpc, "--allow-metrics=false",
        "--ort-native-dir=" + Path.of("target", "ort-natives").toAbsolutePath()));
    if (warmup) {
      cmd.add("--warmup");
    }
    return PidNamespaceProcess.start(cmd, Path.of(log + ".out"), Path.of(log + ".err"));
  }
}
