package dev.thaw.agent;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/** An application run in its own JVM, with the built agent or without it, its output captured. */
record AgentProcess(int exit, String out, String err) {
  static final Path AGENT = Path.of(System.getProperty("thaw.agent.jar", "target/thaw-agent.jar")).toAbsolutePath();

  /**
   * The tests' class path less the agent's own classes: the application must meet the agent only as the JVM gives
   * it, through {@code -javaagent}.
   */
  static String applicationClassPath() {
    return java.util.Arrays.stream(System.getProperty("java.class.path").split(java.io.File.pathSeparator))
        .filter(e -> !e.endsWith("javaagent/target/classes") && !Path.of(e).getFileName().toString()
            .startsWith("thaw-javaagent-"))
        .collect(java.util.stream.Collectors.joining(java.io.File.pathSeparator));
  }

  /** Runs {@code main} with {@code args}; {@code agentOptions} null: without the agent. */
  static AgentProcess run(Path work, String agentOptions, Map<String, String> env, List<String> jvmFlags,
      String main, String... args) throws IOException, InterruptedException {
    return run(Path.of(System.getProperty("java.home"), "bin", "java"), work, agentOptions, env, jvmFlags, main, args);
  }

  /** A Java 17 runtime, the oldest the agent is for (scripts/test installs one). */
  static Path java17() throws IOException {
    try (var jvms = Files.newDirectoryStream(Path.of("/usr/lib/jvm"), "java-17-openjdk-*")) {
      for (Path jvm : jvms) {
        if (Files.isExecutable(jvm.resolve("bin/java"))) {
          return jvm.resolve("bin/java");
        }
      }
    }
    throw new IOException("no Java 17 under /usr/lib/jvm: scripts/test installs openjdk-17-jre-headless");
  }

  /** As {@link #run(Path, String, Map, List, String, String...)} on the JVM {@code java}. */
  static AgentProcess run(Path java, Path work, String agentOptions, Map<String, String> env, List<String> jvmFlags,
      String main, String... args) throws IOException, InterruptedException {
    List<String> cmd = new ArrayList<>(List.of(java.toString()));
    if (agentOptions != null) {
      cmd.add("-javaagent:" + AGENT + (agentOptions.isEmpty() ? "" : "=" + agentOptions));
    }
    cmd.addAll(jvmFlags);
    cmd.addAll(List.of("-cp", applicationClassPath(), main));
    cmd.addAll(List.of(args));
    Files.createDirectories(work);
    Path out = Files.createTempFile(work, "out", ".txt");
    Path err = Files.createTempFile(work, "err", ".txt");
    ProcessBuilder pb = new ProcessBuilder(cmd).redirectOutput(out.toFile()).redirectError(err.toFile());
    pb.environment().keySet().removeIf(k -> k.startsWith("THAW_"));
    pb.environment().put("THAW_API_TOKEN_FILE", work.resolve("no-token").toString()); // not the user's token
    pb.environment().putAll(env);
    Process p = pb.start();
    if (!p.waitFor(120, TimeUnit.SECONDS)) {
      p.destroyForcibly();
      throw new IOException("the application did not exit within 120 s: " + cmd);
    }
    return new AgentProcess(p.exitValue(), Files.readString(out, StandardCharsets.UTF_8),
        Files.readString(err, StandardCharsets.UTF_8));
  }
}
