package dev.thaw.bench;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.stream.Stream;

/**
 * Generates a model shaped like a real checkpoint: a few shards of random (incompressible, unique) bytes plus small
 * config files. Generated once per size and kept: {@code <work>/model-<bytes>/}, complete when
 * {@code <work>/model-<bytes>.done} exists.
 */
public final class ModelGenerator {
  private ModelGenerator() {}

  static final int SHARDS = 4;

  static Path ensure(Path work, long bytes, PrintStream log) throws IOException {
    Path dir = work.resolve("model-" + bytes);
    Path done = work.resolve("model-" + bytes + ".done");
    if (Files.exists(done) && Files.isDirectory(dir)) {
      log.printf("model: reusing %s%n", dir);
      return dir;
    }
    if (Files.exists(dir)) {
      deleteTree(dir);
    }
    Files.createDirectories(dir);
    long start = System.nanoTime();
    long small = 64 << 10;
    long shardBytes = Math.max(1, (bytes - small) / SHARDS);
    List<Path> shards = new ArrayList<>();
    List<Long> sizes = new ArrayList<>();
    long left = bytes - small;
    for (int i = 1; i <= SHARDS; i++) {
      long size = i == SHARDS ? left : shardBytes;
      left -= size;
      shards.add(dir.resolve(String.format("model-%05d-of-%05d.safetensors", i, SHARDS)));
      sizes.add(size);
    }
    int threads = Math.max(1, Machine.nproc());
    try (ExecutorService pool = Executors.newFixedThreadPool(threads)) {
      List<Future<?>> fs = new ArrayList<>();
      for (int i = 0; i < shards.size(); i++) {
        Path p = shards.get(i);
        long size = sizes.get(i);
        long seed = 0x7ea5eedL * (i + 1) + bytes;
        fs.add(pool.submit(() -> {
          writeRandom(p, size, seed);
          return null;
        }));
      }
      for (Future<?> f : fs) {
        f.get();
      }
    } catch (Exception e) {
      throw new IOException("generating the model failed: " + e, e);
    }
    Files.writeString(dir.resolve("config.json"), """
        {"architectures":["ThawBenchForCausalLM"],"hidden_size":4096,"num_hidden_layers":32,
         "num_attention_heads":32,"vocab_size":32000,"torch_dtype":"bfloat16"}
        """);
    Files.writeString(dir.resolve("generation_config.json"), "{\"max_new_tokens\":256,\"temperature\":0.7}\n");
    // a tokenizer-like file that fills the rest of the small budget
    StringBuilder tok = new StringBuilder("{\"model\":{\"vocab\":{");
    SplittableRandom r = new SplittableRandom(bytes);
    int id = 0;
    while (tok.length() < small - 2048) {
      tok.append('"').append(Long.toString(r.nextLong() & Long.MAX_VALUE, 36)).append("\":").append(id++).append(',');
    }
    tok.append("\"<eos>\":").append(id).append("}}}\n");
    Files.writeString(dir.resolve("tokenizer.json"), tok, StandardCharsets.UTF_8);
    long total;
    try (Stream<Path> s = Files.list(dir)) {
      total = s.mapToLong(p -> p.toFile().length()).sum();
    }
    Files.writeString(done, total + "\n");
    log.printf("model: generated %s, %d files, %.2f GB in %.1f s%n", dir, SHARDS + 3, total / 1e9,
        (System.nanoTime() - start) / 1e9);
    return dir;
  }

  /** Writes {@code size} random (incompressible) bytes from {@code seed} to {@code p}. */
  static void writeRandom(Path p, long size, long seed) throws IOException {
    SplittableRandom r = new SplittableRandom(seed);
    ByteBuffer buf = ByteBuffer.allocateDirect(4 << 20).order(ByteOrder.LITTLE_ENDIAN);
    try (FileChannel ch = FileChannel.open(p, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
        StandardOpenOption.TRUNCATE_EXISTING)) {
      long written = 0;
      while (written < size) {
        buf.clear();
        int n = (int) Math.min(buf.capacity(), size - written);
        while (buf.position() + 8 <= n) {
          buf.putLong(r.nextLong());
        }
        while (buf.position() < n) {
          buf.put((byte) r.nextInt());
        }
        buf.flip();
        while (buf.hasRemaining()) {
          written += ch.write(buf);
        }
      }
    }
  }

  /** Deletes a directory tree; a missing one is fine. */
  public static void deleteTree(Path dir) throws IOException {
    if (!Files.exists(dir)) {
      return;
    }
    try (Stream<Path> s = Files.walk(dir)) {
      for (Path p : s.sorted(Comparator.reverseOrder()).toList()) {
        Files.deleteIfExists(p);
      }
    }
  }
}
