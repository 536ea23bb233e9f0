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

  private Hashes() {}

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
