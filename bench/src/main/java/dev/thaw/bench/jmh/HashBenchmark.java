package dev.thaw.bench.jmh;

import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.bouncycastle.crypto.digests.Blake3Digest;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

/**
 * Chunk hash throughput, one thread, on chunk-sized buffers: SHA-256 from the JDK (its SHA-NI / AVX intrinsics) vs
 * BLAKE3 from BouncyCastle (pure Java). Score is hashes per second; MB/s = score x bufferBytes / 10^6.
 *
 * <p>Run: {@code java -cp bench/target/classes:$(cat cp.txt) org.openjdk.jmh.Main HashBenchmark}
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 2, time = 1)
@Measurement(iterations = 3, time = 1)
@Fork(value = 1, jvmArgsAppend = {"-Xmx1g"})
public class HashBenchmark {
  @Param({"8388608"})
  public int bufferBytes;

  private byte[] data;
  private MessageDigest sha256;
  private Blake3Digest blake3;
  private final byte[] out = new byte[32];

  @Setup
  public void setup() throws NoSuchAlgorithmException {
    data = new byte[bufferBytes];
    new SplittableRandom(1).nextBytes(data);
    sha256 = MessageDigest.getInstance("SHA-256");
    blake3 = new Blake3Digest(256);
  }

  @Benchmark
  public byte[] sha256Jdk() {
    sha256.update(data, 0, data.length);
    return sha256.digest();
  }

  @Benchmark
  public byte[] blake3BouncyCastle() {
    blake3.update(data, 0, data.length);
    blake3.doFinal(out, 0);
    return out;
  }
}
