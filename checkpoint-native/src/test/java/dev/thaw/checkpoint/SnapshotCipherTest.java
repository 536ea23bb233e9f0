package dev.thaw.checkpoint;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Base64;
import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SnapshotCipherTest {
  @TempDir Path tmp;
  private final SnapshotCipher cipher = new SnapshotCipher(key(1));
  private static final SnapshotCipher.Binding PAGES = new SnapshotCipher.Binding("push-1", "pages-1.img");

  @ParameterizedTest(name = "{0} bytes")
  @ValueSource(ints = {0, 1, 64 << 10, (64 << 10) + 1, (9 << 20) + 12345})
  void filesOfAnySizeComeBackBitForBitAndAreNotStoredInTheClear(int size) throws Exception {
    byte[] data = new byte[size];
    new Random(size).nextBytes(data);
    Path plain = Files.write(tmp.resolve("pages-1.img"), data);
    SnapshotCipher.Digest sent = cipher.encrypt(plain, tmp.resolve("sealed"), PAGES);
    byte[] sealed = Files.readAllBytes(tmp.resolve("sealed"));
    assertThat(new String(sealed, 0, 8, java.nio.charset.StandardCharsets.US_ASCII)).isEqualTo("THAWENC2");
    if (size >= 64) {
      assertThat(indexOf(sealed, java.util.Arrays.copyOf(data, 64))).as("no plaintext run in the sealed file").isNegative();
    }
    SnapshotCipher.Digest got = cipher.decrypt(tmp.resolve("sealed"), tmp.resolve("back"), PAGES);
    assertThat(Files.readAllBytes(tmp.resolve("back"))).isEqualTo(data);
    assertThat(got).isEqualTo(sent);
    assertThat(got.size()).isEqualTo(size);
    assertThat(got.sha256()).isEqualTo(java.util.HexFormat.of().formatHex(
        java.security.MessageDigest.getInstance("SHA-256").digest(data)));
  }

  @Test
  void aSealedFileOpensOnlyAsTheFileOfThePushItWasSealedFor() throws Exception {
    byte[] data = new byte[(64 << 10) * 2 + 7];
    new Random(4).nextBytes(data);
    Path sealed = tmp.resolve("sealed");
    cipher.encrypt(Files.write(tmp.resolve("plain"), data), sealed, PAGES);

    assertThatThrownBy(() -> cipher.decrypt(sealed, tmp.resolve("a"), new SnapshotCipher.Binding("push-1", "core-1.img")))
        .as("swapped with another file of the same push").hasMessageContaining("segment 0 does not authenticate");
    assertThatThrownBy(() -> cipher.decrypt(sealed, tmp.resolve("b"), new SnapshotCipher.Binding("push-0", "pages-1.img")))
        .as("the same file of another (older) push").hasMessageContaining("segment 0 does not authenticate");
    assertThat(tmp.resolve("a")).doesNotExist();
    assertThat(tmp.resolve("b")).doesNotExist();
    cipher.decrypt(sealed, tmp.resolve("c"), PAGES);
    assertThat(Files.readAllBytes(tmp.resolve("c"))).isEqualTo(data);
  }

  @Test
  void recordsAreAuthenticatedByAMacThatAnotherKeyOrAChangedByteDoesNotMatch() {
    byte[] record = "{\"name\":\"mlp-server\"}".getBytes(java.nio.charset.StandardCharsets.UTF_8);
    byte[] mac = cipher.mac(record);
    assertThat(cipher.verify(record, mac)).isTrue();
    assertThat(new SnapshotCipher(key(2)).verify(record, mac)).isFalse();
    byte[] changed = record.clone();
    changed[3] ^= 1;
    assertThat(cipher.verify(changed, mac)).isFalse();
    assertThat(cipher.verify(record, null)).isFalse();
    assertThat(cipher.verify(record, java.util.Arrays.copyOf(mac, 16))).isFalse();
  }

  @Test
  void aWrongKeyAChangedByteOrACutFileIsRefusedAndLeavesNoPlaintext() throws Exception {
    byte[] data = new byte[(9 << 20) + 5];
    new Random(2).nextBytes(data);
    Path plain = Files.write(tmp.resolve("plain"), data);
    Path sealed = tmp.resolve("sealed");
    cipher.encrypt(plain, sealed, PAGES);

    assertThatThrownBy(() -> new SnapshotCipher(key(2)).decrypt(sealed, tmp.resolve("a"), PAGES))
        .hasMessageContaining("segment 0 does not authenticate");
    assertThat(tmp.resolve("a")).doesNotExist();

    Path changed = Files.copy(sealed, tmp.resolve("changed"));
    try (FileChannel ch = FileChannel.open(changed, StandardOpenOption.WRITE)) {
      // a byte in the second segment
      ch.write(java.nio.ByteBuffer.wrap(new byte[] {42}), SnapshotCipher.HEADER + SnapshotCipher.SEGMENT + 100L);
    }
    assertThatThrownBy(() -> cipher.decrypt(changed, tmp.resolve("b"), PAGES)).hasMessageContaining("segment 1 ");
    assertThat(tmp.resolve("b")).doesNotExist();

    // cut at a segment boundary: what is left must not pass as a whole file
    Path cut = Files.copy(sealed, tmp.resolve("cut"));
    try (FileChannel ch = FileChannel.open(cut, StandardOpenOption.WRITE)) {
      ch.truncate(SnapshotCipher.HEADER + 2L * (SnapshotCipher.SEGMENT + SnapshotCipher.TAG));
    }
    assertThatThrownBy(() -> cipher.decrypt(cut, tmp.resolve("c"), PAGES)).hasMessageContaining("does not authenticate");
    assertThat(tmp.resolve("c")).doesNotExist();

    assertThatThrownBy(() -> cipher.decrypt(plain, tmp.resolve("d"), PAGES)).hasMessageContaining("not an encrypted snapshot");
    assertThatThrownBy(() -> cipher.decrypt(sealed, plain, PAGES)).isInstanceOf(java.nio.file.FileAlreadyExistsException.class);
    assertThat(Files.readAllBytes(plain)).isEqualTo(data);
  }

  @Test
  void keysComeFromOwnerOnlyFilesOrBase64() throws Exception {
    Path raw = Files.write(tmp.resolve("raw.key"), key(3));
    Files.setPosixFilePermissions(raw, PosixFilePermissions.fromString("rw-------"));
    Path b64 = Files.writeString(tmp.resolve("b64.key"), Base64.getEncoder().encodeToString(key(3)) + "\n");
    Files.setPosixFilePermissions(b64, PosixFilePermissions.fromString("rw-------"));
    Path plain = Files.write(tmp.resolve("plain"), new byte[] {1, 2, 3});
    SnapshotCipher.fromKeyFile(raw).encrypt(plain, tmp.resolve("sealed"), PAGES);
    SnapshotCipher.fromKeyFile(b64).decrypt(tmp.resolve("sealed"), tmp.resolve("back"), PAGES);
    assertThat(Files.readAllBytes(tmp.resolve("back"))).containsExactly(1, 2, 3);

    Files.setPosixFilePermissions(raw, PosixFilePermissions.fromString("rw-r--r--"));
    assertThatThrownBy(() -> SnapshotCipher.fromKeyFile(raw)).hasMessageContaining("readable by others");
    assertThatThrownBy(() -> SnapshotCipher.fromBase64("c2hvcnQ=", "THAW_SNAPSHOT_KEY"))
        .hasMessageContaining("THAW_SNAPSHOT_KEY").hasMessageContaining("needs 32");
  }

  private static byte[] key(int seed) {
    byte[] k = new byte[32];
    new Random(seed).nextBytes(k);
    return k;
  }

  private static int indexOf(byte[] haystack, byte[] needle) {
    outer:
    for (int i = 0; i + needle.length <= haystack.length; i++) {
      for (int j = 0; j < needle.length; j++) {
        if (haystack[i + j] != needle[j]) {
          continue outer;
        }
      }
      return i;
    }
    return -1;
  }
}
