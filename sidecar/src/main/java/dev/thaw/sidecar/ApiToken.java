package dev.thaw.sidecar;

import io.micronaut.context.annotation.Context;
import io.micronaut.context.annotation.Value;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.util.Base64;
import java.util.Set;

/**
 * The bearer token every control-API call but health and metrics must carry ({@link ApiTokenFilter}): loopback is not
 * an authentication, since any local user reaches it. {@code thaw.api.token} gives it (a Kubernetes Secret through
 * {@code THAW_API_TOKEN}); otherwise it is read from {@code thaw.api.token-file} (default {@code ~/.thaw/api-token}),
 * which is created at the first start with a fresh random token, owner-only. The CLI, the java agent and the
 * adapters read the same file.
 */
@Context // made at start: a token that cannot be read stops the start, not the first call
public final class ApiToken {
  static final Path DEFAULT_FILE = Path.of(System.getProperty("user.home"), ".thaw", "api-token");
  private static final int MIN_LENGTH = 16;

  private final byte[] token;
  private final Path file;

  ApiToken(@Value("${thaw.api.token:}") String given, @Value("${thaw.api.token-file:}") String fileSetting)
      throws IOException {
    if (!given.isBlank()) {
      if (given.strip().length() < MIN_LENGTH) {
        throw new IllegalStateException("thaw.api.token (THAW_API_TOKEN) must be at least " + MIN_LENGTH
            + " characters: a short token can be guessed");
      }
      this.token = given.strip().getBytes(StandardCharsets.UTF_8);
      this.file = null;
    } else {
      this.file = fileSetting.isBlank() ? DEFAULT_FILE : Path.of(fileSetting).toAbsolutePath();
      this.token = readOrCreate(file).getBytes(StandardCharsets.UTF_8);
    }
  }

  /** The token, for clients in this process (tests, the bench). */
  public String value() {
    return new String(token, StandardCharsets.UTF_8);
  }

  /** Where the token was read from or written to; null when it was given as a setting. */
  public Path file() {
    return file;
  }

  /** Whether {@code presented} is the token, in time that does not depend on where they differ. */
  boolean matches(String presented) {
    return presented != null && MessageDigest.isEqual(token, presented.getBytes(StandardCharsets.UTF_8));
  }

  /**
   * The token in {@code file}, which must be a regular file of this user's that no one else may read; a missing file
   * is created with a new token (32 random bytes, base64url), whole or not at all.
   */
  static String readOrCreate(Path file) throws IOException {
    if (!Files.exists(file, LinkOption.NOFOLLOW_LINKS)) {
      Path dir = file.getParent();
      if (!Files.isDirectory(dir)) {
        Files.createDirectories(dir, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")));
      }
      byte[] raw = new byte[32];
      new SecureRandom().nextBytes(raw);
      String fresh = Base64.getUrlEncoder().withoutPadding().encodeToString(raw);
      Path tmp = Files.createTempFile(dir, ".api-token-", ".tmp",
          PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
      try {
        Files.writeString(tmp, fresh + "\n");
        try {
          Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE);
        } catch (AtomicMoveNotSupportedException e) {
          Files.move(tmp, file);
        }
      } catch (FileAlreadyExistsException raced) {
        // another sidecar wrote it first: use that one
      } finally {
        Files.deleteIfExists(tmp);
      }
    }
    if (!Files.isRegularFile(file, LinkOption.NOFOLLOW_LINKS)) {
      throw new IllegalStateException("the API token file " + file + " is not a regular file");
    }
    Set<PosixFilePermission> perms = Files.getPosixFilePermissions(file, LinkOption.NOFOLLOW_LINKS);
    if (perms.stream().anyMatch(p -> p.name().startsWith("GROUP") || p.name().startsWith("OTHERS"))) {
      throw new IllegalStateException("the API token file " + file + " is readable by others ("
          + PosixFilePermissions.toString(perms) + "): chmod 600 " + file);
    }
    String t = Files.readString(file, StandardCharsets.UTF_8).strip();
    if (t.length() < MIN_LENGTH) {
      throw new IllegalStateException("the API token file " + file + " holds fewer than " + MIN_LENGTH
          + " characters: delete it and a new token is made at the next start");
    }
    return t;
  }
}
