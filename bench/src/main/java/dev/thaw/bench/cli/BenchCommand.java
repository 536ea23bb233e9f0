package dev.thaw.bench.cli;

import dev.thaw.bench.CheckpointBench;
import dev.thaw.bench.ClusterBench;
import dev.thaw.bench.MountBench;
import dev.thaw.bench.StoreBench;
import dev.thaw.bench.AgentBench;
import dev.thaw.bench.TritonBench;
import dev.thaw.cli.JsonOut;
import dev.thaw.cli.Units;
import java.nio.file.Path;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine;

/** {@code thaw bench}: end-to-end benchmarks against real servers on this machine. */
@Command(name = "bench", mixinStandardHelpOptions = true,
    description = {
      "Run end-to-end benchmarks against baselines measured in the same run.",
      "Needs root (drops the page cache, sets up loopback throttling, mounts FUSE file systems) and installs what it "
          + "drives (nginx, curl, rclone, s3fs) when missing."
    },
    subcommands = {BenchCommand.Store.class, BenchCommand.Mount.class, BenchCommand.Checkpoint.class,
        BenchCommand.ClusterRun.class, BenchCommand.Triton.class, BenchCommand.Agent.class})
final class BenchCommand implements Runnable {
  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Override
  public void run() {
    throw new CommandLine.ParameterException(spec.commandLine(), "a benchmark is required (see thaw bench --help)");
  }

  @Command(name = "store", mixinStandardHelpOptions = true,
      description = {
        "Benchmark the lazy store on a generated model against curl and a local disk read.",
        "The model: random shards plus config files, kept under the work dir. Measured: cold load through the reader "
            + "with its access profile from nginx behind a 100 MB/s-per-connection throttle and from S3Proxy, "
            + "against curl with 1, 8, 16 and 32 streams of the same chunk objects; warm load from the chunk cache "
            + "and re-push of the unchanged model against a plain local disk read. The page cache is dropped before "
            + "every measurement that reads disk. Progress and the table go to stderr; with --json stdout gets "
            + "exactly one JSON object. Rates are GB/s (10^9 bytes per second)."
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

  @Command(name = "mount", mixinStandardHelpOptions = true,
      description = {
        "Benchmark Thaw's FUSE mount against rclone mount, s3fs and a parallel download.",
        "Thaw's mount against rclone mount (vfs cache full and off), s3fs (cache on and off) and a parallel curl "
            + "download followed by a local read, on the same data (one shard and a set of smaller files of random "
            + "bytes, kept under the work dir) in S3Proxy behind a 100 MB/s-per-connection throttle: time from the "
            + "exec of the mount command until the shard is visible, first 4 KiB, cold sequential read, 4 readers "
            + "over the files, re-read with the page cache dropped and warm, and the CPU seconds per GB of the "
            + "process that delivers the bytes; plus Thaw's mount of a synthetic 1 TB manifest, and Thaw's ready and "
            + "first 4 KiB through a running sidecar (POST /v1/mounts). The page cache is dropped before every cold measurement. Progress and the table go to "
            + "stderr; with --json stdout gets exactly one JSON object. Rates are GB/s (10^9 bytes per second). "
            + "About 10 minutes."
      })
  static final class Mount implements Callable<Integer> {
    @Option(names = "--shard-size", paramLabel = "SIZE", defaultValue = "2g", converter = Units.SizeConverter.class,
        description = "Size of the shard. Default: ${DEFAULT-VALUE}.")
    long shardSize;

    @Option(names = "--files", paramLabel = "N", defaultValue = "20",
        description = "Number of smaller files. Default: ${DEFAULT-VALUE}.")
    int files;

    @Option(names = "--file-size", paramLabel = "SIZE", defaultValue = "100m", converter = Units.SizeConverter.class,
        description = "Size of each smaller file. Default: ${DEFAULT-VALUE}.")
    long fileSize;

    @Option(names = "--repeats", paramLabel = "N", defaultValue = "3",
        description = "Mounts per configuration for the ready and first-4-KiB times (median). Default: ${DEFAULT-VALUE}.")
    int repeats;

    @Option(names = "--block-size", paramLabel = "SIZE", defaultValue = "1m", converter = Units.SizeConverter.class,
        description = "Block size Thaw's models are pushed with (version 2 manifests: a read waits for its block, not "
            + "its whole chunk); 0 pushes version 1 manifests, for an A/B. Default: ${DEFAULT-VALUE}.")
    long blockSize;

    @Option(names = "--systems", paramLabel = "LIST", split = ",", defaultValue = "thaw,rclone,s3fs,download",
        description = "Which systems to run. Default: ${DEFAULT-VALUE}.")
    List<String> systems;

    @Option(names = "--work-dir", paramLabel = "DIR", defaultValue = "target/bench-mount",
        description = "Data, S3Proxy objects, caches and mount logs (data and objects are kept and reused)."
            + " Default: ${DEFAULT-VALUE}.")
    Path workDir;

    @Option(names = "--json", description = "Print exactly one JSON object with every figure on stdout.")
    boolean json;

    @Override
    public Integer call() throws Exception {
      MountBench.Result r = MountBench.run(new MountBench.Options(shardSize, files, fileSize, repeats,
          new LinkedHashSet<>(systems), workDir, null, Math.toIntExact(blockSize)), System.err);
      if (json) {
        System.out.println(r.toJson());
        System.out.flush();
      }
      return 0;
    }
  }

  @Command(name = "checkpoint", mixinStandardHelpOptions = true,
      description = {
        "Benchmark restoring ort-server from its snapshot against booting it.",
        "On a generated ONNX model, each time from the exec of the first command to the first correct answer with "
            + "the page cache dropped: a cold boot with the model on local disk; thaw restore with the images on "
            + "local disk; thaw restore on a new node with the images at S3Proxy behind a 100 MB/s-per-connection "
            + "throttle; the dump time and image bytes; and the floors (every byte a restore must read, from local "
            + "disk with the page cache dropped, and over the best parallel download rate of that origin). Twice: "
            + "the server as it is, and with ONNX Runtime's prepacking off so the weights stay mapped from the model "
            + "files instead of being carried in the image. Then both again with the model on a Thaw mount, as a node "
            + "serves it (each run on a fresh mount and cache: a boot; a restore from local images after a fresh "
            + "mount, and again with its prefetch off; a restore on a new node that mounts the model itself), in the "
            + "JSON under on_mount. Needs root, CRIU and FUSE. Progress and the table go to stderr; with --json stdout "
            + "gets exactly one JSON object. About 6 minutes for 1 GiB."
      })
  static final class Checkpoint implements Callable<Integer> {
    @Option(names = "--size", paramLabel = "SIZE", defaultValue = "1g", converter = Units.SizeConverter.class,
        description = "Model size. Default: ${DEFAULT-VALUE}.")
    long size;

    @Option(names = "--runs", paramLabel = "N", defaultValue = "3",
        description = "Runs of each path (the median is reported). Default: ${DEFAULT-VALUE}.")
    int runs;

    @Option(names = "--work-dir", paramLabel = "DIR", defaultValue = "target/bench-checkpoint",
        description = "Model, S3Proxy objects, snapshots and logs (the model is kept and reused). Default: ${DEFAULT-VALUE}.")
    Path workDir;

    @Option(names = "--json", description = "Print exactly one JSON object with every figure on stdout.")
    boolean json;

    @Override
    public Integer call() throws Exception {
      CheckpointBench.Result r = CheckpointBench.run(new CheckpointBench.Options(size, 42, runs, workDir, null),
          System.err);
      System.err.println(r.table());
      if (json) {
        JsonOut.print(System.out, (com.fasterxml.jackson.databind.node.ObjectNode) JsonOut.MAPPER.valueToTree(r.summary()));
      }
      return 0;
    }
  }

  @Command(name = "cluster", mixinStandardHelpOptions = true,
      description = {
        "N sidecars cold-start the same model at once, standalone and as a cluster sharing chunks.",
        "The origin is emulated (nginx behind a per-connection throttle, bytes counted where they leave it); the "
            + "sidecars run standalone, then as a cluster on etcd sharing chunks (peers and cooperative fetch), for "
            + "each N. Measured: the origin's bytes and the seconds until every sidecar has read the whole model. "
            + "Needs root (FUSE), nginx and etcd. With --json stdout gets one object: model_bytes and, under n1, n2, "
            + "n4, origin_bytes_with_peers, origin_bytes_without_peers, seconds_with_peers, seconds_without_peers."
      })
  static final class ClusterRun implements Callable<Integer> {
    @Option(names = "--size", paramLabel = "SIZE", defaultValue = "2g", converter = Units.SizeConverter.class,
        description = "Model size. Default: ${DEFAULT-VALUE}.")
    long size;

    @Option(names = "--nodes", paramLabel = "LIST", split = ",", defaultValue = "1,2,4",
        description = "Cluster sizes. Default: ${DEFAULT-VALUE}.")
    List<Integer> nodes;

    @Option(names = "--origin-rate", paramLabel = "RATE", defaultValue = "100m", converter = Units.SizeConverter.class,
        description = "The origin's bytes per second per connection. Default: ${DEFAULT-VALUE}.")
    long originRate;

    @Option(names = "--work-dir", paramLabel = "DIR", defaultValue = "target/bench-cluster",
        description = "The model (kept and reused), caches and logs. Default: ${DEFAULT-VALUE}.")
    Path workDir;

    @Option(names = "--json", description = "Print exactly one JSON object on stdout.")
    boolean json;

    @Override
    public Integer call() throws Exception {
      for (int n : nodes) {
        if (n < 1 || n > 16) {
          throw new CommandLine.ParameterException(new CommandLine(this), "--nodes takes 1 to 16, not " + n);
        }
      }
      var r = ClusterBench.run(new ClusterBench.Options(size, nodes, originRate,
          workDir), System.err);
      System.err.print(ClusterBench.table(r));
      if (json) {
        JsonOut.print(System.out, (com.fasterxml.jackson.databind.node.ObjectNode) JsonOut.MAPPER.valueToTree(r));
      }
      return 0;
    }
  }

  @Command(name = "triton", mixinStandardHelpOptions = true,
      description = {
        "Benchmark what Thaw's Triton gRPC proxy adds in front of a Triton-protocol server.",
        "The example server (ONNX Runtime, Triton's protocol) runs as its own process on loopback; a small ModelInfer "
            + "(one row of a 1 MiB MLP) is sent directly and through the proxy in alternating rounds, by one client "
            + "and by 16 at once, and one with 16 MiB in and out (8 rows through a wide MLP with a narrow hidden "
            + "layer). Then scale from zero: a running server asked for a model it has not loaded (--model-size, in "
            + "S3Proxy behind a 100 MB/s per connection throttle), downloaded with rclone then loaded, against "
            + "thaw triton on a lazy mount of the bucket without and with the recorded profile. Progress goes to "
            + "stderr; with --json stdout gets exactly one JSON object: p50_added_ms_1, p99_added_ms_1, "
            + "p50_added_ms_16, throughput_ratio_16, large_bandwidth_ratio, scale_from_zero_s, "
            + "scale_from_zero_profile_s, download_then_load_s, proxy_share and the raw figures."
      })
  static final class Triton implements Callable<Integer> {
    @Option(names = "--requests", paramLabel = "N", defaultValue = "2000",
        description = "Requests per measurement. Default: ${DEFAULT-VALUE}.")
    int requests;

    @Option(names = "--rounds", paramLabel = "N", defaultValue = "3",
        description = "Alternating rounds of direct and proxied measurements. Default: ${DEFAULT-VALUE}.")
    int rounds;

    @Option(names = "--model-size", paramLabel = "SIZE", defaultValue = "1g", converter = Units.SizeConverter.class,
        description = "Weights of the model served from zero (512m, 1g). Default: ${DEFAULT-VALUE}.")
    long modelSize;

    @Option(names = "--work-dir", paramLabel = "DIR", defaultValue = "target/bench-triton",
        description = "The model and the server's log. Default: ${DEFAULT-VALUE}.")
    Path workDir;

    @Option(names = "--json", description = "Print exactly one JSON object with every figure on stdout.")
    boolean json;

    @Override
    public Integer call() throws Exception {
      if (requests < 16 || rounds < 1) {
        throw new CommandLine.ParameterException(new CommandLine(this), "--requests must be at least 16 and --rounds "
            + "at least 1");
      }
      TritonBench.Result r = TritonBench.run(new TritonBench.Options(requests, rounds, modelSize,
          workDir), System.err);
      if (json) {
        System.out.println(r.toJson());
        System.out.flush();
      }
      return 0;
    }
  }

  @Command(name = "agent", mixinStandardHelpOptions = true,
      description = {
        "Benchmark what -javaagent:thaw-agent.jar costs a Java server, against the same JVM without it, same run.",
        "Start: milliseconds from a JVM's exec to its main, with and without the agent, in alternating runs (medians). "
            + "Per inference: the example server (ONNX Runtime, whose session loads and runs the agent instruments) "
            + "answering ModelInfer from 16 clients, with and without the agent, in alternating rounds. Progress goes "
            + "to stderr; with --json stdout gets exactly one JSON object: start_ms_without, start_ms_with, "
            + "start_ms_added, throughput_ratio and the raw figures."
      })
  static final class Agent implements Callable<Integer> {
    @Option(names = "--starts", paramLabel = "N", defaultValue = "15",
        description = "JVM starts each way. Default: ${DEFAULT-VALUE}.")
    int starts;

    @Option(names = "--requests", paramLabel = "N", defaultValue = "8000",
        description = "Requests per round. Default: ${DEFAULT-VALUE}.")
    int requests;

    @Option(names = "--rounds", paramLabel = "N", defaultValue = "3",
        description = "Alternating rounds without and with the agent. Default: ${DEFAULT-VALUE}.")
    int rounds;

    @Option(names = "--agent", paramLabel = "JAR", defaultValue = "javaagent/target/thaw-agent.jar",
        description = "The agent's jar. Default: ${DEFAULT-VALUE}.")
    Path agentJar;

    @Option(names = "--work-dir", paramLabel = "DIR", defaultValue = "target/bench-agent",
        description = "The model and the servers' logs. Default: ${DEFAULT-VALUE}.")
    Path workDir;

    @Option(names = "--json", description = "Print exactly one JSON object with every figure on stdout.")
    boolean json;

    @Override
    public Integer call() throws Exception {
      if (starts < 1 || requests < 16 || rounds < 1) {
        throw new CommandLine.ParameterException(new CommandLine(this), "--starts must be at least 1, --requests 16 "
            + "and --rounds 1");
      }
      AgentBench.Result r = AgentBench.run(new AgentBench.Options(starts, requests, rounds, agentJar.toAbsolutePath(),
          workDir), System.err);
      if (json) {
        System.out.println(r.toJson());
        System.out.flush();
      }
      return 0;
    }
  }
}
