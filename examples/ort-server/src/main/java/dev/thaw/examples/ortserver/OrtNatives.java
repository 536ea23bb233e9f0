package dev.thaw.examples.ortserver;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.net.JarURLConnection;
import java.net.URL;
import java.net.URLConnection;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import java.util.Locale;
import java.util.jar.Manifest;

/**
 * ONNX Runtime's native libraries, extracted once to a permanent directory.
 *
 * <p>ONNX Runtime's Java loader unpacks {@code libonnxruntime.so} and {@code libonnxruntime4j_jni.so} into a fresh
 * temporary directory and deletes them when the JVM exits. A CRIU image of the process maps those files, so every
 * restore after the first process exits fails. Pointing the loader at a directory that outlives the process (system
 * property {@code onnxruntime.native.path}) fixes that; this class fills such a directory from the onnxruntime jar.
 *
 * <p>The directory is keyed by the ONNX Runtime version ({@code ~/.cache/thaw/onnxruntime-1.23.2/} by default), so
 * a newer jar never loads an older library. A library is written to a temporary file and renamed into place, so a
 * process killed mid-copy never leaves a half library for the next one to load; concurrent processes each write their
 * own temporary file and the last rename wins with identical bytes. A library already there with the jar entry's size
 * is reused.
 *
 * <p>No ONNX Runtime class may be touched before {@link #prepare} has run: loading {@code ai.onnxruntime.OnnxRuntime}
 * reads the property once.
 */
final class OrtNatives {
  static final String PATH_PROPERTY = "onnxruntime.native.path";
  static final List<String> LIBRARIES = List.of("libonnxruntime.so", "libonnxruntime4j_jni.so");

  private OrtNatives() {}

  /**
   * Makes ONNX Runtime load its natives from a permanent directory: {@code dir}, or the default cache directory when
   * {@code dir} is null. Does nothing when the user already set {@code onnxruntime.native.path}, or on platforms
   * this class does not know (ONNX Runtime's own loader then runs as usual).
   *
   * @return the directory ONNX Runtime will load from, or null when its own loader decides
   */
  static Path prepare(Path dir) {
    String preset = System.getProperty(PATH_PROPERTY);
    if (preset != null && !preset.isBlank()) {
      return Path.of(preset);
    }
    Path target = extract(dir);
    if (target != null) {
      System.setProperty(PATH_PROPERTY, target.toString());
    }
    return target;
  }

  /**
   * Extracts the libraries for this platform to {@code dir} (null: the default directory) unless they are there
   * already, without touching the system property.
   *
   * @return the directory, or null on a platform this class does not know
   */
  static Path extract(Path dir) {
    String platform = platform();
    if (platform == null) {
      return null;
    }
    ClassLoader loader = OrtNatives.class.getClassLoader();
    URL first = loader.getResource(resource(platform, LIBRARIES.get(0)));
    if (first == null) {
      return null; // not the jar with natives for this platform: leave it to ONNX Runtime
    }
    Path target = dir != null ? dir : defaultDirectory(version(first));
    try {
      Files.createDirectories(target);
      for (String library : LIBRARIES) {
        URL url = loader.getResource(resource(platform, library));
        if (url == null) {
          throw new IOException("the onnxruntime jar has no " + resource(platform, library));
        }
        copy(url, target.resolve(library));
      }
    } catch (IOException e) {
      throw new UncheckedIOException("cannot extract ONNX Runtime's native libraries to " + target + ": " + e
          + " (choose another directory with --ort-native-dir, or set -D" + PATH_PROPERTY + ")", e);
    }
    return target;
  }

  /** {@code $XDG_CACHE_HOME/thaw/onnxruntime-<version>}, or under {@code ~/.cache} when XDG_CACHE_HOME is unset. */
  static Path defaultDirectory(String version) {
    String xdg = System.getenv("XDG_CACHE_HOME");
    Path cache = xdg != null && !xdg.isBlank()
        ? Path.of(xdg)
        : Path.of(System.getProperty("user.home"), ".cache");
    return cache.resolve("thaw").resolve("onnxruntime-" + version);
  }

  private static void copy(URL url, Path file) throws IOException {
    URLConnection connection = url.openConnection();
    long size = connection.getContentLengthLong();
    if (size >= 0 && Files.isRegularFile(file) && Files.size(file) == size) {
      return;
    }
    Path tmp = Files.createTempFile(file.getParent(), file.getFileName() + ".", ".tmp");
    try {
      try (InputStream in = connection.getInputStream()) {
        Files.copy(in, tmp, StandardCopyOption.REPLACE_EXISTING);
      }
      try {
        Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
      } catch (AtomicMoveNotSupportedException e) {
        Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING);
      }
    } finally {
      Files.deleteIfExists(tmp);
    }
  }

  /** The version in the onnxruntime jar's manifest, read without loading any ONNX Runtime class. */
  private static String version(URL resourceInJar) {
    try {
      if (resourceInJar.openConnection() instanceof JarURLConnection jar) {
        Manifest manifest = jar.getManifest();
        String v = manifest == null ? null : manifest.getMainAttributes().getValue("Implementation-Version");
        if (v != null && !v.isBlank()) {
          return v;
        }
      }
    } catch (IOException e) {
      // fall through: an unknown version still gets its own directory
    }
    return "unknown";
  }

  private static String resource(String platform, String library) {
    return "ai/onnxruntime/native/" + platform + "/" + library;
  }

  /** ONNX Runtime's resource folder name for this machine, for the Linux builds this class handles. */
  private static String platform() {
    String os = System.getProperty("os.name", "").toLowerCase(Locale.ROOT);
    String arch = System.getProperty("os.arch", "").toLowerCase(Locale.ROOT);
    if (!os.contains("linux")) {
      return null;
    }
    return switch (arch) {
      case "amd64", "x86_64" -> "linux-x64";
      case "aarch64", "arm64" -> "linux-aarch64";
      default -> null;
    };
  }
}
