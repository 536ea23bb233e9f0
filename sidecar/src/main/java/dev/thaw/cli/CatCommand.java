package dev.thaw.cli;

import dev.thaw.store.AccessProfile;
import dev.thaw.store.ChunkCache;
import dev.thaw.store.ModelReader;
import dev.thaw.store.ReaderOptions;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.Optional;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(name = "cat", mixinStandardHelpOptions = true,
    description = {
      "Stream one file of a model to stdout through the chunk cache (fetching what it lacks).",
      "A recorded access profile of the model is prefetched. Reading one file records no profile: with "
          + "--record-profile, the order this read first touches chunks is saved as the model's access profile "
          + "(mounts record theirs with thaw mount --record-profile)."
    })
final class CatCommand implements Callable<Integer> {
  @Parameters(index = "0", paramLabel = "MODEL", description = "NAME[:TAG], URI#NAME[:TAG], or s3://... / file://... (direct).")
  String model;

  @Parameters(index = "1", paramLabel = "PATH", description = "The file's path inside the model.")
  String path;

  @Mixin StoreOptions store;

  @Option(names = "--read-timeout", paramLabel = "DURATION", defaultValue = "60s", converter = Units.DurationConverter.class,
      description = "Fail when a chunk cannot be had this long (retries included), naming it and its origin, instead "
          + "of waiting on a stalled origin. Default: ${DEFAULT-VALUE}.")
  Duration readTimeout;

  @Option(names = "--record-profile",
      description = "Save the order this read first touches chunks as the model's access profile, which later mounts "
          + "prefetch. Off by default: one file's read is not a load of the model.")
  boolean recordProfile;

  @Override
  public Integer call() throws Exception {
    try (StoreOptions.Resolved r = store.resolve(model);
        ChunkCache cache = store.openCache()) {
      // A read being recorded must touch chunks in its own order, not the prefetch's.
      Optional<AccessProfile> profile = r.manifest().isDirect() || recordProfile
          ? Optional.empty() : r.store().profile(r.manifest(), cache.directory());
      try (ModelReader reader = ModelReader.open(r.manifest(), r.origin(), cache,
          ReaderOptions.DEFAULT.withParallelism(store.parallelism).withRecordProfile(recordProfile)
              .withReadTimeout(readTimeout))) {
        profile.ifPresent(reader::prefetch);
        OutputStream out = System.out;
        try (ModelReader.ModelFile file = reader.open(path)) {
          ByteBuffer buf = ByteBuffer.allocate(1 << 20);
          long offset = 0;
          while (true) {
            buf.clear();
            int n = file.read(offset, buf);
            if (n < 0) {
              break;
            }
            out.write(buf.array(), 0, n);
            offset += n;
          }
        }
        out.flush();
        if (recordProfile) {
          AccessProfile recorded = reader.recordedProfile();
          // Direct mode keeps it beside the cache, as a mount does: that origin is someone's bucket of plain files.
          String where = r.store().saveProfile(recorded, cache.directory(), !r.manifest().isDirect());
          System.err.printf("thaw cat: saved access profile of %d chunks to %s%n", recorded.chunkCount(), where);
        }
      }
    }
    return 0;
  }
}
