package dev.thaw.cli;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.thaw.bench.ModelGenerator;
import dev.thaw.store.AccessProfile;
import dev.thaw.store.ChunkCache;
import dev.thaw.store.FileEntry;
import dev.thaw.store.Hashes;
import dev.thaw.store.Manifest;
import dev.thaw.store.ModelName;
import dev.thaw.store.ModelReader;
import dev.thaw.store.ModelStore;
import dev.thaw.store.Origin;
import dev.thaw.store.Origins;
import dev.thaw.store.PushProgress;
import dev.thaw.store.Pusher;
import dev.thaw.store.ReaderOptions;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import java.util.stream.Stream;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(name = "demo", mixinStandardHelpOptions = true,
    description = {
      "Thaw's main job on the embedded default (a local file origin, no servers to set up):",
      "generate a model shaped like real shards, push it, read it back cold through the store,",
      "then again with its recorded access profile prefetched, check every byte, and print a summary."
    })
final class DemoCommand implements Callable<Integer> {
  @Option(names = "--work", paramLabel = "DIR", defaultValue = "target/demo",
      description = "Work directory (model, origin, cache). Default: ${DEFAULT-VALUE}.")
  Path work;

  @Option(names = "--shard-size", paramLabel = "SIZE", defaultValue = "256m", converter = Units.SizeConverter.class,
      description = "Bytes per weight shard. Default: ${DEFAULT-VALUE}.")
  long shardSize;

  @Option(names = "--shards", paramLabel = "N", defaultValue = "3", description = "Weight shards. Default: ${DEFAULT-VALUE}.")
  int shards;

  @Option(names = "--json", description = "Print one JSON object with the summary on stdout.")
  boolean json;

  @Override
  public Integer call() throws Exception {
    PrintStream log = System.err;
    Path model = work.resolve("model");
    Path originDir = work.resolve("origin");
    Path cacheDir = work.resolve("cache");
    log.printf(Locale.ROOT, "demo: model of %d x %s shards in %s%n", shards, Units.bytes(shardSize), model);
    Map<String, String> expected = generate(model, log);

    ModelGenerator.deleteTree(originDir); // every demo pushes into an empty origin, so the push is a real upload
    ModelName name = ModelName.parse("demo/model:v1");
    ObjectNode out = JsonOut.object();
    try (Origin origin = Origins.open(originDir.toUri().toString())) {
      Pusher.Result push;
      long total = expected.size();
      try (Progress bar = new Progress("push", sizeOf(model), false)) {
        push = new Pusher(origin, Pusher.DEFAULT_CHUNK_SIZE, 16, new PushProgress() {
          @Override
          public void hashed(long bytes) {
            bar.add(bytes);
          }
        }).push(model, name);
      }
      double pushS = push.elapsed().toNanos() / 1e9;
      log.printf(Locale.ROOT, "demo: pushed %s as %s: %s in %.2f s (%.0f MB/s), uploaded %s%n", name, push.digest(),
          Units.bytes(push.bytesHashed()), pushS, Units.mbps(push.bytesHashed(), pushS), Units.bytes(push.bytesUploaded()));

      ModelStore store = new ModelStore(origin);
      Manifest manifest = store.resolve(name);
      Load first = load(manifest, origin, store, cacheDir, expected, null, log, "cold read");
      Optional<AccessProfile> profile = store.profile(manifest, cacheDir);
      Load second = load(manifest, origin, store, cacheDir, expected, profile.orElse(null), log, "cold read with profile");

      out.put("model", name.toString());
      out.put("digest", push.digest());
      out.put("files", push.files());
      out.put("bytes", push.bytesHashed());
      out.put("push_seconds", pushS);
      out.put("push_mbps", Units.mbps(push.bytesHashed(), pushS));
      out.put("bytes_uploaded", push.bytesUploaded());
      out.put("cold_read_seconds", first.seconds);
      out.put("cold_read_mbps", Units.mbps(first.bytes, first.seconds));
      out.put("profile_chunks", profile.map(AccessProfile::chunkCount).orElse(0));
      out.put("profiled_read_seconds", second.seconds);
      out.put("profiled_read_mbps", Units.mbps(second.bytes, second.seconds));
      out.put("verified_files", total);
      out.put("verified", true);
    }
    String summary = String.format(Locale.ROOT,
        "demo: pushed %s (%.0f MB/s); cold read %.0f MB/s; cold read with its profile %.0f MB/s; %d files verified byte for byte",
        Units.bytes(out.get("bytes").asLong()), out.get("push_mbps").asDouble(), out.get("cold_read_mbps").asDouble(),
        out.get("profiled_read_mbps").asDouble(), out.get("verified_files").asInt());
    if (json) {
      log.println(summary);
      JsonOut.print(System.out, out);
    } else {
      System.out.println(summary);
    }
    return 0;
  }

  private record Load(long bytes, double seconds) {}

  /** Reads every file through a fresh cache and checks its hash against the source. */
  private Load load(Manifest manifest, Origin origin, ModelStore store, Path cacheDir, Map<String, String> expected,
      AccessProfile profile, PrintStream log, String label) throws IOException {
    ModelGenerator.deleteTree(cacheDir);
    long bytes = 0;
    long start = System.nanoTime();
    try (ChunkCache cache = ChunkCache.open(cacheDir, 64L << 30);
        ModelReader reader = ModelReader.open(manifest, origin, cache, ReaderOptions.DEFAULT.withRecordProfile(profile == null))) {
      if (profile != null) {
        reader.prefetch(profile);
      }
      ByteBuffer buf = ByteBuffer.allocate(1 << 20);
      for (FileEntry f : manifest.files()) {
        MessageDigest md = Hashes.newDigest();
        long off = 0;
        try (ModelReader.ModelFile file = reader.open(f.path())) {
          int n;
          while ((n = file.read(off, buf.clear())) > 0) {
            md.update(buf.flip());
            off += n;
          }
        }
        bytes += off;
        String got = Hashes.hex(md.digest());
        if (!got.equals(expected.get(f.path()))) {
          throw new IOException("demo: " + f.path() + " read back with sha256 " + got + ", expected " + expected.get(f.path()));
        }
      }
      double s = (System.nanoTime() - start) / 1e9;
      log.printf(Locale.ROOT, "demo: %s: %s in %.2f s (%.0f MB/s), %d chunks fetched, every byte verified%n", label,
          Units.bytes(bytes), s, Units.mbps(bytes, s), reader.chunksFetched());
      if (profile == null) {
        log.println("demo: recorded access profile saved to " + store.saveProfile(reader.recordedProfile(), cacheDir));
      }
      return new Load(bytes, s);
    }
  }

  /** Generates the model once (random shards plus small configs) and returns each file's sha256. */
  private Map<String, String> generate(Path model, PrintStream log) throws IOException {
    // The hashes live beside the model, not in it, so they are never pushed.
    Path stamp = model.resolveSibling("model-" + shards + "x" + shardSize + ".sha256");
    Map<String, String> hashes = new LinkedHashMap<>();
    if (Files.exists(stamp) && Files.isDirectory(model)) {
      for (String line : Files.readAllLines(stamp)) {
        String[] p = line.split("  ", 2);
        hashes.put(p[1], p[0]);
      }
      return hashes;
    }
    ModelGenerator.deleteTree(model);
    Files.createDirectories(model);
    SplittableRandom random = new SplittableRandom(42);
    ByteBuffer buf = ByteBuffer.allocate(1 << 20);
    for (int i = 1; i <= shards; i++) {
      String file = String.format(Locale.ROOT, "model-%05d-of-%05d.safetensors", i, shards);
      MessageDigest md = Hashes.newDigest();
      try (FileChannel ch = FileChannel.open(model.resolve(file), StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
        for (long done = 0; done < shardSize; ) {
          buf.clear();
          while (buf.remaining() >= 8) {
            buf.putLong(random.nextLong());
          }
          buf.flip().limit((int) Math.min(buf.limit(), shardSize - done));
          md.update(buf.duplicate());
          done += buf.remaining();
          while (buf.hasRemaining()) {
            ch.write(buf);
          }
        }
      }
      hashes.put(file, Hashes.hex(md.digest()));
    }
    Map<String, String> configs = Map.of(
        "config.json", "{\"architectures\":[\"DemoForCausalLM\"],\"hidden_size\":4096,\"num_hidden_layers\":32}\n",
        "generation_config.json", "{\"max_new_tokens\":256}\n",
        "tokenizer/tokenizer_config.json", "{\"model_max_length\":4096}\n");
    for (Map.Entry<String, String> c : configs.entrySet()) {
      Path p = model.resolve(c.getKey());
      Files.createDirectories(p.getParent());
      byte[] b = c.getValue().getBytes(StandardCharsets.UTF_8);
      Files.write(p, b);
      hashes.put(c.getKey(), Hashes.sha256Hex(b));
    }
    log.printf(Locale.ROOT, "demo: generated %d files in %s%n", hashes.size(), model);
    writeStamp(stamp, hashes);
    return hashes;
  }

  private static void writeStamp(Path stamp, Map<String, String> hashes) throws IOException {
    StringBuilder s = new StringBuilder();
    hashes.forEach((k, v) -> s.append(v).append("  ").append(k).append('\n'));
    Files.writeString(stamp, s);
  }

  private static long sizeOf(Path dir) throws IOException {
    try (Stream<Path> s = Files.walk(dir)) {
      return s.filter(Files::isRegularFile).mapToLong(p -> p.toFile().length()).sum();
    }
  }
}
