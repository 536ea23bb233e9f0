package dev.thaw.store;

import java.nio.ByteBuffer;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;

/**
 * SHA-256, the store's content hash. Chosen by measurement (docs/benchmarks.md): with the JDK's SHA-NI
 * intrinsic it hashes several times faster than a pure-Java BLAKE3 on the machines Thaw targets.
 */
public final class Hashes {
  /** The name recorded in manifests. */
  public static final String ALGORITHM = "sha256";
  /** Bytes in one hash. */
  public static final int LENGTH = 32;

  private static final HexFormat HEX = HexFormat.of();
  private static final ThreadLocal<MessageDigest> DIGEST = ThreadLocal.withInitial(Hashes::newDigest);

  private static final java.util.concurrent.atomic.AtomicBoolean WARMING = new java.util.concurrent.atomic.AtomicBoolean();

  private Hashes() {}

  /**
   * Starts, once per JVM, a side thread that hashes a few MiB so the JIT compiles SHA-256 with its SHA-NI intrinsic
   * before the first chunks arrive. Until then a fresh JVM hashes at 20-150 MB/s instead of 1.5 GB/s
   * (docs/benchmarks.md), and a mount's first reads, each hashing its 8 MiB chunk, would wait for that. Called when a
   * fetcher starts, so it overlaps the origin's and the mount's set-up.
   */
  static void warmUp() {
    if (WARMING.compareAndSet(false, true)) {
      Thread.ofPlatform().daemon().name("thaw-hash-warm-up").start(() -> {
        MessageDigest digest = newDigest();
        byte[] block = new byte[128 << 10];
        for (int i = 0; i < 32; i++) { // 4 MiB: enough for C2 on a 2-core machine (measured)
          digest.update(block);
        }
        digest.digest();
      });
    }
  }

  public static MessageDigest newDigest() {
    try {
      return MessageDigest.getInstance("SHA-256");
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException("the JDK has no SHA-256", e);
    }
  }

  /** Hashes the remaining bytes of {@code data} without moving its position. */
  public static String sha256Hex(ByteBuffer data) {
    MessageDigest digest = DIGEST.get();
    digest.reset();
    digest.update(data.duplicate());
    return HEX.formatHex(digest.digest());
  }

  /** Writes the raw SHA-256 of the remaining bytes of {@code data} (position unmoved) into {@code out} at {@code offset}. */
  static void sha256(ByteBuffer data, byte[] out, int offset) {
    MessageDigest digest = DIGEST.get();
    digest.reset();
    digest.update(data.duplicate());
    try {
      digest.digest(out, offset, LENGTH);
    } catch (java.security.DigestException e) {
      throw new IllegalArgumentException("no room for a hash at " + offset + " of " + out.length + " bytes", e);
    }
  }

  public static String sha256Hex(byte[] data) {
    MessageDigest digest = DIGEST.get();
    digest.reset();
    return HEX.formatHex(digest.digest(data));
  }

  public static String hex(byte[] raw) {
    return HEX.formatHex(raw);
  }

  public static byte[] unhex(String hex) {
    return HEX.parseHex(hex);
  }

  static boolean isHex(String s, int chars) {
    if (s == null || s.length() != chars) {
      return false;
    }
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
        return false;
      }
    }
    return true;
  }
}
