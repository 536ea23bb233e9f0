package dev.thaw.cli;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.thaw.store.ModelName;
import dev.thaw.store.Origin;
import dev.thaw.store.Origins;
import dev.thaw.store.PushProgress;
import dev.thaw.store.Pusher;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(name = "push", mixinStandardHelpOptions = true,
    description = {
      "Chunk, hash and upload a model directory, then write its manifest and tag.",
      "Only chunks the origin lacks are uploaded; the tag appears only after every chunk is stored."
    })
final class PushCommand implements Callable<Integer> {
  @Parameters(index = "0", paramLabel = "DIR", description = "The model directory.")
  Path dir;

  @Parameters(index = "1", paramLabel = "ORIGIN", arity = "0..1",
      description = "file:///dir or s3://bucket/prefix[?endpoint=URL&path-style=true]. Default: $THAW_ORIGIN, else ~/.thaw/origin.")
  String origin;

  @Option(names = "--name", required = true, paramLabel = "NAME[:TAG]", description = "Name and tag (tag defaults to latest).")
  String name;

  @Option(names = "--chunk-size", paramLabel = "SIZE", converter = Units.SizeConverter.class, defaultValue = "8m",
      description = "Bytes per chunk. Default: ${DEFAULT-VALUE}.")
  long chunkSize;

  @Option(names = "--block-size", paramLabel = "SIZE", converter = Units.SizeConverter.class,
      description = "Bytes per hashed block: a read on a mount then waits for its block, not its whole chunk (a power "
          + "of two from 4k up to the chunk size, which it divides). 0 writes a version 1 manifest without block "
          + "hashes, for readers older than them. Default: 1m, or for chunks under 2m half a chunk.")
  Long blockSize;

  @Option(names = "--concurrency", paramLabel = "N", defaultValue = "16",
      description = "Chunks hashed and uploaded at once. Default: ${DEFAULT-VALUE}.")
  int concurrency;

  @Option(names = "--json", description = "Print one JSON object with the result on stdout.")
  boolean json;

  @Override
  public Integer call() throws Exception {
    ModelName model = ModelName.parse(name);
    String uri = StoreOptions.expand(origin != null ? origin : System.getenv("THAW_ORIGIN"));
    try (Origin o = Origins.open(uri)) {
      Progress[] bar = new Progress[1];
      int chunk = Math.toIntExact(chunkSize);
      int block = blockSize == null ? Pusher.defaultBlockSize(chunk) : Math.toIntExact(blockSize);
      Pusher pusher = new Pusher(o, chunk, block, concurrency, new PushProgress() {
        @Override
        public void started(long totalBytes, int files) {
          System.err.printf(Locale.ROOT, "push: %s in %d files from %s to %s%n", Units.bytes(totalBytes), files, dir, o.uri());
          bar[0] = new Progress("push", totalBytes, false);
        }

        @Override
        public void hashed(long bytes) {
          bar[0].add(bytes);
        }
      });
      Pusher.Result r;
      try {
        r = pusher.push(dir, model);
      } finally {
        if (bar[0] != null) {
          bar[0].close();
        }
      }
      double s = r.elapsed().toNanos() / 1e9;
      String summary = String.format(Locale.ROOT,
          "pushed %s as %s: %d files, %d chunks; hashed %s, uploaded %s (%d chunks) in %.2f s: %.0f MB/s hashed, %.0f MB/s uploaded",
          model, r.digest(), r.files(), r.chunks(), Units.bytes(r.bytesHashed()), Units.bytes(r.bytesUploaded()),
          r.chunksUploaded(), s, Units.mbps(r.bytesHashed(), s), Units.mbps(r.bytesUploaded(), s));
      if (json) {
        System.err.println(summary);
        ObjectNode n = JsonOut.object();
        n.put("name", model.toString());
        n.put("origin", o.uri());
        n.put("digest", r.digest());
        n.put("files", r.files());
        n.put("chunks", r.chunks());
        n.put("bytes_hashed", r.bytesHashed());
        n.put("bytes_uploaded", r.bytesUploaded());
        n.put("chunks_uploaded", r.chunksUploaded());
        n.put("seconds", s);
        n.put("hash_mbps", Units.mbps(r.bytesHashed(), s));
        n.put("upload_mbps", Units.mbps(r.bytesUploaded(), s));
        JsonOut.print(System.out, n);
      } else {
        System.out.println(summary);
      }
      return 0;
    }
  }
}
