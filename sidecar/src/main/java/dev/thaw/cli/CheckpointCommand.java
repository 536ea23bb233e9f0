package dev.thaw.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.thaw.checkpoint.Probe;
import dev.thaw.checkpoint.SnapshotMetadata;
import dev.thaw.checkpoint.SnapshotService;
import dev.thaw.store.PushProgress;
import dev.thaw.store.Pusher;
import java.io.IOException;
import java.net.URI;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

@Command(name = "checkpoint", mixinStandardHelpOptions = true,
    description = {
      "Snapshot a warm server and push its images to the origin.",
      "Waits until the server is ready (and, with --probe, has answered the probe's request with its expected "
          + "answer), checkpoints its CUDA processes, dumps its process tree with CRIU, keeps the images on this "
          + "node (owner-only) and pushes them to the origin as snapshots/NAME, keyed by what must match to restore "
          + "them (CPU, GPUs, driver, CUDA, kernel, CRIU, model, command line, Thaw). Images leave the node sealed "
          + "with AES-256-GCM unless --no-encrypt. Open TCP connections are closed in the snapshot (the restored "
          + "server's clients reconnect), so it restores on any node; the server should run under `thaw run` for the "
          + "same reason. Needs root.",
      "Example: thaw checkpoint --pid 4242 --name mlp-server --probe probe.json"
    })
final class CheckpointCommand implements Callable<Integer> {
  @Option(names = "--pid", required = true, paramLabel = "PID",
      description = "The server's process, the root of the tree to snapshot (the PID `thaw run` printed).")
  long pid;

  @Option(names = "--name", required = true, paramLabel = "NAME", description = "The snapshot's name, e.g. mlp-server.")
  String name;

  @Option(names = "--leave-running", description = "Keep the server running after the dump (default: CRIU stops it).")
  boolean leaveRunning;

  @Option(names = "--probe", paramLabel = "FILE",
      description = "A JSON file {\"url\": ..., \"request\": ..., \"expect\": ...}: one inference request (POSTed as JSON)"
          + " and its expected answer (optional). It is kept with the snapshot; a restore must give the same answer.")
  Path probeFile;

  @Option(names = "--ready-url", paramLabel = "URL",
      description = "Polled until it answers 200 before anything else. Default: /v2/health/ready on the probe's host and"
          + " port, else http://127.0.0.1:8000/v2/health/ready (Triton's).")
  String readyUrl;

  @Option(names = "--warm-timeout", paramLabel = "DURATION", defaultValue = "10m", converter = Units.DurationConverter.class,
      description = "How long the server may take to be ready. Default: ${DEFAULT-VALUE}.")
  Duration warmTimeout;

  @Option(names = "--lock-timeout", paramLabel = "DURATION", defaultValue = "30s", converter = Units.DurationConverter.class,
      description = "How long CUDA work may take to settle when its processes are locked. Default: ${DEFAULT-VALUE}.")
  Duration lockTimeout;

  @Option(names = "--model", paramLabel = "MODEL",
      description = "The model the server serves (NAME[:TAG] at the origin, or a sha256: digest): its manifest digest is part"
          + " of the key, so a restore can insist on it.")
  String model;

  @Option(names = "--no-encrypt", description = "Push the images unencrypted and unauthenticated (they hold the process's"
      + " memory, secrets included); restoring them from the origin then needs thaw restore --allow-unsealed.")
  boolean noEncrypt;

  @Option(names = "--no-push", description = "Keep the snapshot on this node only.")
  boolean noPush;

  @Option(names = "--json", description = "Print one JSON object with the result on stdout.")
  boolean json;

  @Mixin SnapshotOptions snapshots;

  @Override
  public Integer call() throws Exception {
    Probe probe = null;
    String expected = null;
    if (probeFile != null) {
      JsonNode p = readProbe(probeFile);
      JsonNode request = p.get("request");
      probe = new Probe(p.get("url").asText(), request == null || request.isNull() ? null
          : request.isTextual() ? request.asText() : JsonOut.MAPPER.writeValueAsString(request));
      JsonNode e = p.get("expect");
      expected = e == null || e.isNull() ? null : e.isTextual() ? e.asText() : JsonOut.MAPPER.writeValueAsString(e);
    }
    SnapshotService.Take take = new SnapshotService.Take(name, pid, readyUrl, probe, expected, leaveRunning,
        warmTimeout, lockTimeout, model, !noPush, !noEncrypt);
    System.err.printf("checkpoint: waiting for %s to be ready%s, then dumping process %d%n", take.readyUrl(),
        probe == null ? "" : " and to answer " + probe.url(), pid);
    Progress[] bar = new Progress[1];
    SnapshotService.Taken taken;
    try {
      taken = snapshots.service().build().take(take, new PushProgress() {
        @Override
        public void started(long totalBytes, int files) {
          bar[0] = new Progress("push", totalBytes, false);
        }

        @Override
        public void hashed(long bytes) {
          bar[0].add(bytes);
        }
      });
    } finally {
      if (bar[0] != null) {
        bar[0].close();
      }
    }
    SnapshotMetadata m = taken.metadata();
    Path kept = taken.images();
    long imageBytes = taken.imageBytes();
    double dumpS = taken.dumpSeconds();
    String key = m.snapshotKey().digest();
    System.err.printf(Locale.ROOT, "checkpoint: %s dumped in %.2f s: %s of images in %s (key %s)%s%n", name, dumpS,
        Units.bytes(imageBytes), kept, key.substring(0, 19), m.cudaPids().isEmpty() ? ""
            : ", CUDA processes " + m.cudaPids());
    SnapshotService.Pushed pushed = taken.pushed();
    if (pushed != null) {
      Pusher.Result r = pushed.result();
      double s = r.elapsed().toNanos() / 1e9;
      System.err.printf(Locale.ROOT, "checkpoint: pushed %s%s to %s: %s hashed, %s uploaded in %.2f s (%.0f MB/s)%n",
          pushed.tag(), pushed.encrypted() ? " (encrypted)" : " (NOT encrypted)", pushed.origin(),
          Units.bytes(r.bytesHashed()), Units.bytes(r.bytesUploaded()), s, Units.mbps(r.bytesHashed(), s));
    }
    if (json) {
      ObjectNode n = JsonOut.object();
      n.put("name", name);
      n.put("key", key);
      n.put("images", kept.toString());
      n.put("image_bytes", imageBytes);
      n.put("dump_s", dumpS);
      n.put("left_running", leaveRunning);
      n.putPOJO("cuda_pids", m.cudaPids());
      if (pushed != null) {
        n.put("tag", pushed.tag().toString());
        n.put("origin", pushed.origin());
        n.put("manifest", pushed.result().digest());
        n.put("encrypted", pushed.encrypted());
        n.put("bytes_uploaded", pushed.result().bytesUploaded());
        n.put("push_s", pushed.result().elapsed().toNanos() / 1e9);
      }
      JsonOut.print(System.out, n);
    } else {
      System.out.printf(Locale.ROOT, "%s: snapshot %s in %s%s%n", name, key, kept,
          pushed == null ? "" : ", pushed as " + pushed.tag() + " to " + pushed.origin());
    }
    return 0;
  }

  static JsonNode readProbe(Path file) throws IOException {
    JsonNode p;
    try {
      p = JsonOut.MAPPER.readTree(file.toFile());
    } catch (IOException e) {
      throw new IOException("cannot read the probe file " + file + ": " + e.getMessage(), e);
    }
    if (p == null || !p.isObject() || !p.hasNonNull("url") || !p.get("url").isTextual()) {
      throw new IOException("the probe file " + file + " needs {\"url\": \"http://...\", \"request\": {...},"
          + " \"expect\": {...}}");
    }
    URI u = URI.create(p.get("url").asText());
    if (!"http".equals(u.getScheme()) && !"https".equals(u.getScheme())) {
      throw new IOException("the probe file " + file + ": url must be http(s)://, not " + u);
    }
    return p;
  }

}
