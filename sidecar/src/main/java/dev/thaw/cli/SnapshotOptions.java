package dev.thaw.cli;

import dev.thaw.checkpoint.SnapshotCipher;
import dev.thaw.checkpoint.SnapshotStore;
import dev.thaw.store.ModelStore;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.SecureRandom;
import java.util.Base64;
import java.util.Optional;
import picocli.CommandLine.Option;

/** Where snapshots are kept on this node and the key that seals them in the store; shared by checkpoint and restore. */
final class SnapshotOptions {
  static final Path DEFAULT_ROOT = Path.of(System.getProperty("user.home"), ".local", "share", "thaw", "snapshots");
  static final Path DEFAULT_KEY = Path.of(System.getProperty("user.home"), ".config", "thaw", "snapshot.key");
  static final String KEY_ENV = "THAW_SNAPSHOT_KEY";
  static final String KEY_FILE_ENV = "THAW_SNAPSHOT_KEY_FILE";

  @Option(names = "--origin", paramLabel = "URI", defaultValue = "${env:THAW_ORIGIN:-~/.thaw/origin}",
      description = "Where snapshots are pushed and fetched (and --model is resolved): file:///dir or"
          + " s3://bucket/prefix[?endpoint=URL&path-style=true&region=R]. Default: $THAW_ORIGIN, else ~/.thaw/origin.")
  String origin;

  @Option(names = "--parallelism", paramLabel = "N", defaultValue = "16",
      description = "Range requests in flight at once when fetching images. Default: ${DEFAULT-VALUE}.")
  int parallelism;

  @Option(names = "--snapshots", paramLabel = "DIR", defaultValue = "${env:THAW_SNAPSHOTS}",
      description = "Where this node keeps snapshots (owner-only). Default: $THAW_SNAPSHOTS, else ~/.local/share/thaw/snapshots.")
  Path root;

  @Option(names = "--key-file", paramLabel = "FILE",
      description = "The AES-256 key sealing snapshot images in the store: 32 bytes or their base64, in an owner-only file."
          + " Default: $THAW_SNAPSHOT_KEY (base64), else the file $THAW_SNAPSHOT_KEY_FILE, else ~/.config/thaw/snapshot.key.")
  Path keyFile;

  String originUri() {
    return StoreOptions.expand(origin);
  }

  Path root() {
    return (root != null ? root : DEFAULT_ROOT).toAbsolutePath();
  }

  /**
   * The configured key. With {@code createDefault}, a missing default key file is made (32 random bytes, owner-only),
   * so snapshots are sealed without any set-up; other nodes need a copy of it (a Kubernetes Secret) to restore them.
   */
  SnapshotCipher cipher(boolean createDefault) throws IOException {
    if (keyFile != null) {
      return SnapshotCipher.fromKeyFile(keyFile);
    }
    String env = System.getenv(KEY_ENV);
    if (env != null && !env.isBlank()) {
      return SnapshotCipher.fromBase64(env, "$" + KEY_ENV);
    }
    String file = System.getenv(KEY_FILE_ENV);
    if (file != null && !file.isBlank()) {
      return SnapshotCipher.fromKeyFile(Path.of(file));
    }
    if (!Files.exists(DEFAULT_KEY)) {
      if (!createDefault) {
        throw new IOException("no snapshot key: give --key-file, $" + KEY_ENV + " or $" + KEY_FILE_ENV
            + " (the key the snapshot was taken with), or copy it to " + DEFAULT_KEY);
      }
      byte[] key = new byte[32];
      new SecureRandom().nextBytes(key);
      Files.createDirectories(DEFAULT_KEY.getParent());
      Path tmp = DEFAULT_KEY.resolveSibling(".snapshot.key." + ProcessHandle.current().pid());
      Files.writeString(Files.createFile(tmp, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------"))),
          Base64.getEncoder().encodeToString(key) + "\n");
      try {
        Files.move(tmp, DEFAULT_KEY); // never over a key another process made meanwhile
        System.err.println("thaw: created the snapshot key " + DEFAULT_KEY + " (owner-only); nodes that restore these"
            + " snapshots need a copy of it, e.g. from a Kubernetes Secret in $" + KEY_ENV);
      } catch (java.nio.file.FileAlreadyExistsException raced) {
        Files.delete(tmp);
      }
    }
    return SnapshotCipher.fromKeyFile(DEFAULT_KEY);
  }

  SnapshotStore open(ModelStore store, Optional<SnapshotCipher> cipher, int parallelism) throws IOException {
    return new SnapshotStore(root(), store, cipher, parallelism);
  }
}
