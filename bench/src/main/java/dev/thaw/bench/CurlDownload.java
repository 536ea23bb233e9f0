package dev.thaw.bench;

import dev.thaw.testkit.Tools;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Baseline downloads with {@code curl}: {@code streams} curl processes, each fetching its share of the objects one
 * after another over one kept-alive connection, each body to a file (as a download lands on disk) or to /dev/null
 * (the network alone). One stream is the plain single-connection download; several are the parallel download an
 * ordinary tool achieves.
 */
final class CurlDownload {
  private CurlDownload() {}

  /** One request: a URL and an optional inclusive byte range. */
  record Get(String url, long first, long last) {
    static Get whole(String url) {
      return new Get(url, -1, -1);
    }
  }

  /**
   * Downloads every request, spread round-robin over {@code streams} processes.
   *
   * @return bytes received (checked against what was asked when {@code expectedBytes >= 0})
   */
  static long run(List<Get> gets, int streams, Path tmpDir, long expectedBytes, PrintStream log) throws IOException {
    return run(gets, streams, tmpDir, expectedBytes, log, null);
  }

  /** As {@link #run(List, int, Path, long, PrintStream)}, writing body {@code i} to {@code outDir/part-i} when given. */
  static long run(List<Get> gets, int streams, Path tmpDir, long expectedBytes, PrintStream log, Path outDir)
      throws IOException {
    if (outDir != null) {
      Files.createDirectories(outDir);
    }
    String curl = Tools.require("curl", "curl", log);
    Files.createDirectories(tmpDir);
    List<Process> procs = new ArrayList<>();
    List<Path> configs = new ArrayList<>();
    List<List<Long>> expected = new ArrayList<>();
    try {
      for (int s = 0; s < streams; s++) {
        StringBuilder cfg = new StringBuilder();
        List<Long> sizes = new ArrayList<>();
        for (int i = s; i < gets.size(); i += streams) {
          Get g = gets.get(i);
          if (!cfg.isEmpty()) {
            cfg.append("next\n");
          }
          sizes.add(g.first() >= 0 ? g.last() - g.first() + 1 : -1);
          cfg.append("url = \"").append(g.url()).append("\"\n");
          cfg.append("output = \"").append(outDir == null ? "/dev/null" : outDir.resolve("part-" + i).toString())
              .append("\"\n");
          if (g.first() >= 0) {
            cfg.append("range = \"").append(g.first()).append('-').append(g.last()).append("\"\n");
          }
          // Each transfer is an operation of its own: without "next", options such as range are shared by every URL
          // of the config and the last one wins. Connections are still reused across operations.
          cfg.append("fail\nhttp1.1\nwrite-out = \"%{http_code} %{size_download} %{url}\\n\"\n");
        }
        if (cfg.isEmpty()) {
          continue;
        }
        Path c = tmpDir.resolve("curl-" + s + ".cfg");
        Files.writeString(c, cfg);
        configs.add(c);
        expected.add(sizes);
        procs.add(new ProcessBuilder(curl, "-s", "-S", "-K", c.toString()).redirectError(ProcessBuilder.Redirect.INHERIT).start());
      }
      long total = 0;
      List<String> bad = new ArrayList<>();
      for (int pi = 0; pi < procs.size(); pi++) {
        Process p = procs.get(pi);
        List<Long> sizes = expected.get(pi);
        int transfer = 0;
        String out = new String(p.getInputStream().readAllBytes());
        if (!p.waitFor(600, TimeUnit.SECONDS) || p.exitValue() != 0) {
          throw new IOException("curl failed (exit " + (p.isAlive() ? "timeout" : p.exitValue()) + ")");
        }
        for (String line : out.split("\n")) {
          if (!line.isBlank()) {
            String[] f = line.trim().split(" ", 3);
            long got = (long) Double.parseDouble(f[1]);
            total += got;
            long want = transfer < sizes.size() ? sizes.get(transfer) : -1;
            transfer++;
            if (bad.size() < 5 && (!f[0].startsWith("2") || (want >= 0 && got != want))) {
              bad.add(line.trim());
            }
          }
        }
      }
      if ((expectedBytes >= 0 && total != expectedBytes) || !bad.isEmpty()) {
        throw new IOException("curl received " + total + " bytes, expected " + expectedBytes
            + (bad.isEmpty() ? "" : "; failed requests (status, bytes, url): " + String.join("; ", bad)));
      }
      return total;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IOException("interrupted", e);
    } finally {
      for (Process p : procs) {
        p.destroyForcibly();
      }
      for (Path c : configs) {
        Files.deleteIfExists(c);
      }
    }
  }
}
