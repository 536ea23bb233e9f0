package dev.thaw.cli;

import dev.thaw.store.Hashes;
import java.io.IOException;
import java.io.Reader;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Optional;
import java.util.Properties;

/**
 * Running {@code thaw mount} processes, one small file each, so {@code thaw unmount} and {@code thaw profile save}
 * can find the process behind a mount point. Requests are files the mount process polls for.
 */
final class MountRegistry {
  private final Path dir;

  MountRegistry() {
    String user = System.getProperty("user.name", "user");
    this.dir = Path.of(System.getProperty("java.io.tmpdir"), "thaw-mounts-" + user);
  }

  private Path file(Path mountPoint, String suffix) {
    String id = Hashes.sha256Hex(mountPoint.toAbsolutePath().normalize().toString().getBytes(StandardCharsets.UTF_8));
    return dir.resolve(id.substring(0, 32) + suffix);
  }

  void write(Path mountPoint, Properties p) throws IOException {
    Files.createDirectories(dir);
    Path f = file(mountPoint, ".properties");
    Path tmp = f.resolveSibling(f.getFileName() + ".tmp");
    try (Writer w = Files.newBufferedWriter(tmp, StandardCharsets.UTF_8)) {
      p.store(w, "thaw mount");
    }
    Files.move(tmp, f, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
  }

  Optional<Properties> read(Path mountPoint) throws IOException {
    Path f = file(mountPoint, ".properties");
    if (!Files.exists(f)) {
      return Optional.empty();
    }
    Properties p = new Properties();
    try (Reader r = Files.newBufferedReader(f, StandardCharsets.UTF_8)) {
      p.load(r);
    }
    return Optional.of(p);
  }

  void remove(Path mountPoint) throws IOException {
    Files.deleteIfExists(file(mountPoint, ".properties"));
    Files.deleteIfExists(file(mountPoint, ".save-profile"));
    Files.deleteIfExists(file(mountPoint, ".unmount"));
  }

  void requestUnmount(Path mountPoint) throws IOException {
    Files.createDirectories(dir);
    Files.writeString(file(mountPoint, ".unmount"), "unmount\n");
  }

  /** True (once) when an unmount was requested. */
  boolean takeUnmountRequest(Path mountPoint) throws IOException {
    return Files.deleteIfExists(file(mountPoint, ".unmount"));
  }

  void requestProfileSave(Path mountPoint) throws IOException {
    Files.createDirectories(dir);
    Files.writeString(file(mountPoint, ".save-profile"), "save\n");
  }

  /** True (once) when a profile save was requested. */
  boolean takeProfileSaveRequest(Path mountPoint) throws IOException {
    return Files.deleteIfExists(file(mountPoint, ".save-profile"));
  }
}
