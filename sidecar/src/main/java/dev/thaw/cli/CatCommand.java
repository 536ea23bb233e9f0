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
      "The first read of a model records its access profile; later reads prefetch it."
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

  @Override
  public Integer call() throws Exception {
    try (StoreOptions.Resolved r = store.resolve(model);
        ChunkCache cache = store.openCache()) {
      Optional<AccessProfile> profile = r.manifest().isDirect()
          ? Optional.empty() : r.store().profile(r.manifest(), cache.directory());
      try (ModelReader reader = ModelReader.open(r.manifest(), r.origin(), cache,
          ReaderOptions.DEFAULT.withParallelism(store.parallelism).withRecordProfile(profile.isEmpty())
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
        if (profile.isEmpty() && !r.manifest().isDirect()) {
          try {
            r.store().saveProfile(reader.recordedProfile(), cache.directory());
          } catch (java.io.IOException e) {
            System.err.println("thaw cat: warning: could not save the access profile: " + e.getMessage());
          }
        }
      }
    }
    return 0;
  }
}
