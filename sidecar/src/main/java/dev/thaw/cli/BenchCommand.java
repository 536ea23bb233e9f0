package dev.thaw.cli;

import dev.thaw.bench.StoreBench;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code thaw bench}: end-to-end benchmarks against real servers on this machine. */
@Command(name = "bench", mixinStandardHelpOptions = true,
    description = {
      "Run end-to-end benchmarks on this machine and compare against baselines measured in the same run.",
      "Needs root (drops the page cache, sets up loopback throttling) and installs nginx and curl when missing."
    },
    subcommands = {BenchCommand.Store.class})
final class BenchCommand implements Runnable {
  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Override
  public void run() {
    throw new CommandLine.ParameterException(spec.commandLine(), "a benchmark is required (see thaw bench --help)");
  }

  @Command(name = "store", mixinStandardHelpOptions = true,
      description = {
        "Benchmark the lazy store on a generated model (random shards plus config files, kept under the work dir):",
        "cold load through the reader with its access profile from nginx behind a 100 MB/s-per-connection throttle",
        "and from S3Proxy, against curl with 1, 8, 16 and 32 streams of the same chunk objects; warm load from the",
        "chunk cache and re-push of the unchanged model against a plain local disk read. The page cache is dropped",
        "before every measurement that reads disk. Progress and the table go to stderr; with --json stdout gets",
        "exactly one JSON object. Rates are GB/s (10^9 bytes per second)."
      })
  static final class Store implements Callable<Integer> {
    @Option(names = "--size", paramLabel = "SIZE", defaultValue = "2g", converter = Units.SizeConverter.class,
        description = "Model size. Default: ${DEFAULT-VALUE}.")
    long size;

    @Option(names = "--chunk-size", paramLabel = "SIZE", defaultValue = "8m", converter = Units.SizeConverter.class,
        description = "Chunk size for the push. Default: ${DEFAULT-VALUE}.")
    long chunkSize;

    @Option(names = "--parallelism", paramLabel = "N", defaultValue = "16",
        description = "The reader's parallel range requests. Default: ${DEFAULT-VALUE}.")
    int parallelism;

    @Option(names = "--push-concurrency", paramLabel = "N", defaultValue = "8",
        description = "Chunks hashed and uploaded at once by push. Default: ${DEFAULT-VALUE}.")
    int pushConcurrency;

    @Option(names = "--work-dir", paramLabel = "DIR", defaultValue = "target/bench-store",
        description = "Model, origins and caches (the model is generated once and reused). Default: ${DEFAULT-VALUE}.")
    Path workDir;

    @Option(names = "--json", description = "Print exactly one JSON object with every figure on stdout.")
    boolean json;

    @Override
    public Integer call() throws Exception {
      if (chunkSize > Integer.MAX_VALUE) {
        throw new CommandLine.ParameterException(new CommandLine(this), "--chunk-size is too large: " + chunkSize);
      }
      StoreBench.Result r = StoreBench.run(
          new StoreBench.Options(size, (int) chunkSize, parallelism, pushConcurrency, workDir), System.err);
      if (json) {
        System.out.println(r.toJson());
        System.out.flush();
      }
      return 0;
    }
  }
}
