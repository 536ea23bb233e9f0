package dev.thaw.cli;

import dev.thaw.checkpoint.SnapshotService;
import java.nio.file.Path;
import picocli.CommandLine.Option;

/** Where snapshots are kept on this node and the key that seals them in the store; shared by checkpoint and restore. */
final class SnapshotOptions {
  static final Path DEFAULT_ROOT = Path.of(System.getProperty("user.home"), ".local", "share", "thaw", "snapshots");

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

  /** The snapshot service these options describe; a command adds what it alone decides. */
  SnapshotService.Builder service() {
    return SnapshotService.builder(root(), originUri(), ThawCommand.version()).keyFile(keyFile)
        .parallelism(parallelism);
  }
}
