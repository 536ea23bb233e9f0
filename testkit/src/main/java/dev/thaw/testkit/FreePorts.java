package dev.thaw.testkit;

import java.io.IOException;
import java.net.ServerSocket;

/** Free TCP ports on this machine, for servers started with fixed ports (a restored server keeps its ports). */
public final class FreePorts {
  private FreePorts() {}

  /** {@code n} distinct free ports: each socket stays bound until all are picked. */
  public static int[] pick(int n) throws IOException {
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
}
