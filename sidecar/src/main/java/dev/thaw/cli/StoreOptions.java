package dev.thaw.cli;

import dev.thaw.store.ChunkCache;
import dev.thaw.store.Manifest;
import dev.thaw.store.ModelSource;
import dev.thaw.store.ModelStore;
import dev.thaw.store.Origin;
import dev.thaw.store.Origins;
import java.io.IOException;
import java.nio.file.Path;
import picocli.CommandLine.Option;

/** Where models live and where they are cached; shared by the commands that read models. */
final class StoreOptions {
  static final String DEFAULT_ORIGIN = Path.of(System.getProperty("user.home"), ".thaw", "origin").toUri().toString();
  static final Path DEFAULT_CACHE = Path.of(System.getProperty("user.home"), ".cache", "thaw");

  @Option(names = "--origin", paramLabel = "URI",
      description = "Origin of NAME[:TAG] models: file:///dir, http(s)://host/path (read-only) or "
          + "s3://bucket/prefix[?endpoint=URL&path-style=true&region=R]. Default: $THAW_ORIGIN, else ${DEFAULT-VALUE}.",
      defaultValue = "${env:THAW_ORIGIN:-~/.thaw/origin}")
  String origin;

  @Option(names = "--cache", paramLabel = "DIR", description = "Chunk cache directory. Default: $THAW_CACHE, else ~/.cache/thaw.",
      defaultValue = "${env:THAW_CACHE}")
  Path cache;

  @Option(names = "--cache-size", paramLabel = "SIZE", converter = Units.SizeConverter.class,
      description = "Most bytes the cache may hold (e.g. 50g). Default: 80%% of the cache file system's free space "
          + "plus what the cache holds.")
  Long cacheSize;

  @Option(names = "--parallelism", paramLabel = "N", defaultValue = "16",
      description = "Range requests in flight at once. Default: ${DEFAULT-VALUE}.")
  int parallelism;

  String originUri() {
    return expand(origin);
  }

  static String expand(String uri) {
    if (uri == null || uri.isBlank()) {
      return DEFAULT_ORIGIN;
    }
    if (uri.startsWith("~/")) {
      return Path.of(System.getProperty("user.home"), uri.substring(2)).toUri().toString();
    }
    return uri;
  }

  ChunkCache openCache() throws IOException {
    Path dir = cache != null ? cache : DEFAULT_CACHE;
    long max = cacheSize != null ? cacheSize : ChunkCache.defaultMaxBytes(dir);
    return ChunkCache.open(dir, max);
  }

  /**
   * A model as named on the command line ({@link ModelSource}: {@code NAME[:TAG]} at {@code --origin},
   * {@code URI#NAME[:TAG]} at that origin, or a direct-mode URI), opened: its origin and manifest.
   */
  record Resolved(Origin origin, ModelStore store, Manifest manifest, String display) implements AutoCloseable {
    @Override
    public void close() {
      origin.close();
    }
  }

  Resolved resolve(String model) throws IOException {
    ModelSource source = ModelSource.parse(model);
    Origin o = Origins.open(source.origin() != null ? source.origin() : originUri());
    try {
      ModelSource.Resolved r = source.resolve(o);
      return new Resolved(o, new ModelStore(o), r.manifest(), r.display());
    } catch (IOException | RuntimeException e) {
      o.close();
      throw e;
    }
  }
}
