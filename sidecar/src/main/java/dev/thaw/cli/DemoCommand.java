package dev.thaw.cli;

import dev.thaw.bench.ColdStartDemo;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(name = "demo", mixinStandardHelpOptions = true,
    description = {
      "Thaw's main job on the embedded default (a local emulated cloud origin, nothing to configure): time to the",
      "first correct inference of a real server (examples/ort-server, ONNX Runtime) starting cold on a generated",
      "ONNX model (made once, cached), eight ways: download then boot; boot on a Thaw lazy mount; the same with the",
      "access profile recorded by the previous run; boot with the model already on local disk; restore the server's",
      "snapshot (thaw checkpoint once warm) on a new node, images from the origin; restore it from images on local",
      "disk; both restores again with the server's model on a Thaw mount. The origin is S3Proxy behind a",
      "100 MB/s-per-connection throttle. Needs root and CRIU (FUSE mounts, dumps and restores, dropping the page",
      "cache before each run).",
      "Prints a table and writes the per-run timeline as JSON and as an HTML waterfall to the work directory; with",
      "--json stdout gets exactly one JSON object and the table goes to stderr."
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
}
