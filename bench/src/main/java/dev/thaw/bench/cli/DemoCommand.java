package dev.thaw.bench.cli;

import dev.thaw.bench.ColdStartDemo;
import dev.thaw.checkpoint.Criu;
import dev.thaw.checkpoint.CriuException;
import dev.thaw.cli.JsonOut;
import dev.thaw.cli.Units;
import java.io.InputStream;
import java.io.PrintStream;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(name = "demo", mixinStandardHelpOptions = true,
    description = {
      "Thaw's main job: time to the first correct inference of a real server starting cold, ten ways.",
      "On the embedded default (a local emulated cloud origin, nothing to configure), a real server "
          + "(examples/ort-server, ONNX Runtime) starts cold on a generated ONNX model (made once, cached): download "
          + "then boot; boot on a Thaw lazy mount, made through a running sidecar (POST /v1/mounts) and with the "
          + "thaw mount command (which records the access profile); both again prefetching that profile; "
          + "boot with the model already on local disk; restore the server's snapshot (thaw checkpoint once warm) on "
          + "a new node, images from the origin; restore it from images on local disk; both restores again with the "
          + "server's model on a Thaw mount. The origin is S3Proxy behind a 100 MB/s-per-connection throttle. Needs "
          + "root (FUSE mounts, dumps and restores, dropping the page cache before each run) and CRIU, which it "
          + "installs first when missing (scripts/install-criu.sh).",
      "Prints a table and writes the per-run timeline as JSON and as an HTML waterfall to the work directory; with "
          + "--json stdout gets exactly one JSON object and the table goes to stderr."
    })
final class DemoCommand implements Callable<Integer> {
  @Option(names = "--work", paramLabel = "DIR", defaultValue = "target/demo",
      description = "Work directory (model, origin, caches, logs, timeline). Default: ${DEFAULT-VALUE}.")
  Path work;

  @Option(names = "--size", paramLabel = "SIZE", defaultValue = "1GiB", converter = Units.SizeConverter.class,
      description = "Weight bytes of the generated model. Default: ${DEFAULT-VALUE}.")
  long size;

  @Option(names = "--seed", paramLabel = "N", defaultValue = "42", description = "The model generator's seed. Default: ${DEFAULT-VALUE}.")
  long seed;

  @Option(names = "--json", description = "Print exactly one JSON object with the figures on stdout.")
  boolean json;

  @Override
  public Integer call() throws Exception {
    requireCriu(System.err);
    ColdStartDemo.Options o = new ColdStartDemo.Options(size, seed, work, null, null);
    ColdStartDemo.Result r = ColdStartDemo.run(o, System.err);
    String where = "timeline: " + r.timelineHtml() + " (waterfall), " + r.timelineJson() + " (JSON)";
    if (json) {
      System.err.print(r.table());
      System.err.println(where);
      JsonOut.print(System.out, JsonOut.MAPPER.valueToTree(r.summary()));
    } else {
      System.out.print(r.table());
      System.out.println(where);
    }
    return 0;
  }

  /**
   * The snapshot rows need CRIU: without one, get one from scripts/install-criu.sh (as {@code ./thaw demo} does) before
   * any work, rather than stop a minute in; with no such script (the CLI run outside Thaw's repository), stop at once.
   */
  static void requireCriu(PrintStream log) throws Exception {
    try {
      Criu.locate();
      return;
    } catch (CriuException missing) {
      Path script = installScript().orElseThrow(() -> new IllegalStateException(missing.getMessage()
          + "; the demo's snapshot rows need it: install one with scripts/install-criu.sh from Thaw's repository"));
      log.println("thaw demo: no working CRIU here; installing one with " + script);
      ProcessBuilder pb = new ProcessBuilder(script.toString()).redirectErrorStream(true);
      Path jdk = Path.of(System.getProperty("java.home"));
      if (Files.isExecutable(jdk.resolve("bin/javac"))) {
        pb.environment().put("JAVA_HOME", jdk.toString()); // the smoke test's JVM: the one running this
      }
      Process p = pb.start();
      try (InputStream out = p.getInputStream()) {
        out.transferTo(log); // stderr, not stdout: --json keeps stdout for its one object
      }
      if (p.waitFor() != 0) {
        throw new IllegalStateException(script + " failed (exit status " + p.exitValue() + ", its output is above); "
            + "the demo's snapshot rows need CRIU");
      }
      Criu.locate();
    }
  }

  /** scripts/install-criu.sh of the repository these classes were built in, if they were. */
  private static Optional<Path> installScript() {
    try {
      Path dir = Path.of(DemoCommand.class.getProtectionDomain().getCodeSource().getLocation().toURI());
      for (; dir != null; dir = dir.getParent()) {
        Path script = dir.resolve("scripts/install-criu.sh");
        if (Files.isExecutable(script)) {
          return Optional.of(script);
        }
      }
    } catch (URISyntaxException | RuntimeException e) {
      // no code location (an unusual class loader): fall through
    }
    return Optional.empty();
  }
}
