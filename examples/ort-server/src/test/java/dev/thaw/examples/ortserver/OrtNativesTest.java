package dev.thaw.examples.ortserver;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class OrtNativesTest {
  @TempDir
  Path dir;

  @BeforeEach
  void extractTheNativesOfThisPlatform() {
    // Thaw runs on Linux x86-64, whose natives the onnxruntime jar carries: finding none is a failure
    assertThat(OrtNatives.extract(dir)).as("ONNX Runtime's natives extracted from the jar").isEqualTo(dir);
  }

  @Test
  void extractsBothLibrariesAndNothingElse() throws IOException {
    try (Stream<Path> files = Files.list(dir)) {
      assertThat(files.map(p -> p.getFileName().toString()))
          .containsExactlyInAnyOrder("libonnxruntime.so", "libonnxruntime4j_jni.so");
    }
    assertThat(Files.size(dir.resolve("libonnxruntime.so"))).isGreaterThan(1 << 20);
  }

  @Test
  void reusesLibrariesAlreadyThere() throws IOException {
    Path library = dir.resolve("libonnxruntime.so");
    FileTime old = FileTime.fromMillis(1_000_000_000_000L);
    Files.setLastModifiedTime(library, old);

    OrtNatives.extract(dir);

    assertThat(Files.getLastModifiedTime(library)).isEqualTo(old);
  }

  @Test
  void replacesALibraryLeftIncompleteAndLeavesNoTemporaryFile() throws IOException {
    Path library = dir.resolve("libonnxruntime4j_jni.so");
    long size = Files.size(library);
    Files.write(library, new byte[100]);

    OrtNatives.extract(dir);

    assertThat(Files.size(library)).isEqualTo(size);
    try (Stream<Path> files = Files.list(dir)) {
      assertThat(files.map(p -> p.getFileName().toString())).noneMatch(n -> n.endsWith(".tmp"));
    }
  }

  @Test
  void keysTheDefaultDirectoryByVersion() {
    assertThat(OrtNatives.defaultDirectory("1.23.2").toString()).endsWith("/thaw/onnxruntime-1.23.2");
  }

  @Test
  void leavesAPathTheUserSetAlone() {
    String before = System.getProperty(OrtNatives.PATH_PROPERTY);
    try {
      System.setProperty(OrtNatives.PATH_PROPERTY, "/opt/my-ort");

      assertThat(OrtNatives.prepare(dir.resolve("unused"))).isEqualTo(Path.of("/opt/my-ort"));
      assertThat(dir.resolve("unused")).doesNotExist();
    } finally {
      if (before == null) {
        System.clearProperty(OrtNatives.PATH_PROPERTY);
      } else {
        System.setProperty(OrtNatives.PATH_PROPERTY, before);
      }
    }
  }
}
