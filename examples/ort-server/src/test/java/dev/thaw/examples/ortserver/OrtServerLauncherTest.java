package dev.thaw.examples.ortserver;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.File;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.jar.Attributes;
import java.util.jar.JarOutputStream;
import java.util.jar.Manifest;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The launcher {@code examples/ort-server/ort-server} runs the server on a JDK 25 whatever {@code java} comes first on
 * the PATH, where {@code java -jar} fails. It runs in a copy of the repository's layout (the launcher and
 * scripts/lib.sh as they are, and a built jar whose class path is this test's), so it finds its jar up to date and
 * does not start a Maven build.
 */
class OrtServerLauncherTest {
  private static final Path MODULE = Path.of("").toAbsolutePath();

  @TempDir
  Path tree;
  Path launcher;
  Path jar;
  /** A directory whose {@code java} is not a JDK 25: another JDK's when the machine has one. */
  Path otherJava;

  @BeforeEach
  void copyTheLayout() throws IOException {
    Path module = Files.createDirectories(tree.resolve("examples/ort-server"));
    launcher = Files.copy(MODULE.resolve("ort-server"), module.resolve("ort-server"));
    Files.setPosixFilePermissions(launcher, PosixFilePermissions.fromString("rwxr-xr-x"));
    Files.createDirectories(tree.resolve("scripts"));
    Files.copy(MODULE.resolve("../../scripts/lib.sh"), tree.resolve("scripts/lib.sh"));
    Path target = Files.createDirectories(module.resolve("target/lib"));
    jar = target.getParent().resolve("ort-server.jar");
    writeJar(jar);
    Files.createFile(target.getParent().resolve(".ort-server-build-stamp"));
    otherJava = otherJavaOnThePath();
  }

  @Test
  void runsTheServerOnAJdk25WhenAnOlderJavaComesFirstOnThePath() throws Exception {
    // the other java by its path: ProcessBuilder looks a bare "java" up on this JVM's PATH, not the child's
    Run plain = run(List.of(otherJava.resolve("java").toString(), "-jar", jar.toString(), "--help"));
    assertThat(plain.status).as("java -jar with the other java: %s", plain.output).isNotZero();

    Run launched = run(List.of(launcher.toString(), "--help"));

    assertThat(launched.status).as(launched.output).isZero();
    assertThat(launched.output).startsWith("Usage: ort-server --model-repository=DIR");
  }

  @Test
  void passesJvmOptionsFromTheEnvironment() throws Exception {
    Run launched = run(List.of(launcher.toString(), "--help"),
        Map.of("ORT_SERVER_JAVA_OPTS", "-Xmx384m -XshowSettings:vm"));

    assertThat(launched.status).as(launched.output).isZero();
    // Both options reached the JVM: it shows its settings, with the heap asked for.
    assertThat(launched.output).containsPattern("Max\\. Heap Size.*: 384\\.00M")
        .contains("Usage: ort-server --model-repository=DIR");
  }

  private record Run(int status, String output) {}

  private Run run(List<String> command) throws Exception {
    return run(command, Map.of());
  }

  private Run run(List<String> command, Map<String, String> extraEnv) throws Exception {
    ProcessBuilder pb = new ProcessBuilder(command).redirectErrorStream(true);
    Map<String, String> env = pb.environment();
    env.put("PATH", otherJava + File.pathSeparator + env.getOrDefault("PATH", "/usr/bin:/bin"));
    // As a new user's shell: no JAVA_HOME, unless this test's JDK is where the launcher would not look.
    Path javaHome = Path.of(System.getProperty("java.home"));
    if (javaHome.startsWith("/usr/lib/jvm")) {
      env.remove("JAVA_HOME");
    } else {
      env.put("JAVA_HOME", javaHome.toString());
    }
    env.putAll(extraEnv);
    Process process = pb.start();
    String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertThat(process.waitFor(60, TimeUnit.SECONDS)).isTrue();
    return new Run(process.exitValue(), output);
  }

  /** A jar like the build's: ort-server's main class, native access enabled, this test's class path. */
  private static void writeJar(Path jar) throws IOException {
    Manifest manifest = new Manifest();
    Attributes main = manifest.getMainAttributes();
    main.put(Attributes.Name.MANIFEST_VERSION, "1.0");
    main.put(Attributes.Name.MAIN_CLASS, OrtServer.class.getName());
    main.put(new Attributes.Name("Enable-Native-Access"), "ALL-UNNAMED");
    List<String> classPath = new ArrayList<>();
    for (String entry : System.getProperty("java.class.path").split(File.pathSeparator)) {
      classPath.add(Path.of(entry).toAbsolutePath().toUri().toString()); // directories end in '/'
    }
    main.put(Attributes.Name.CLASS_PATH, String.join(" ", classPath));
    try (OutputStream out = Files.newOutputStream(jar); JarOutputStream j = new JarOutputStream(out, manifest)) {
      // the manifest is the whole jar
    }
  }

  /**
   * Another JDK's bin directory (the machine's Java 17, say), or, on a machine with JDK 25 alone, a directory whose
   * {@code java} fails as a wrong one would.
   */
  private Path otherJavaOnThePath() throws IOException {
    try (Stream<Path> jdks = Files.list(Path.of("/usr/lib/jvm"))) {
      for (Path jdk : jdks.sorted().toList()) {
        Path release = jdk.resolve("release");
        if (Files.isExecutable(jdk.resolve("bin/java")) && Files.isRegularFile(release)
            && !Files.readString(release).contains("JAVA_VERSION=\"25")) {
          return jdk.resolve("bin");
        }
      }
    } catch (IOException e) {
      // no /usr/lib/jvm: fall through
    }
    Path bin = Files.createDirectories(tree.resolve("other-java"));
    Path java = bin.resolve("java");
    Files.writeString(java, "#!/bin/sh\necho 'Error: this java is not a JDK 25' >&2\nexit 1\n");
    Files.setPosixFilePermissions(java, PosixFilePermissions.fromString("rwxr-xr-x"));
    return bin;
  }
}
