package dev.thaw.agent.internal;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * The agent's settings, from its options ({@code -javaagent:thaw-agent.jar=sidecar=URL,map=PREFIX=SOURCE;...}) over
 * {@code THAW_*} variables: where the sidecar is, its API token, and which model locations Thaw serves.
 *
 * @param sidecar the sidecar's API ({@code THAW_SIDECAR_URL}; default {@code http://127.0.0.1:7070})
 * @param token the API's token ({@code THAW_API_TOKEN}, else the file {@code THAW_API_TOKEN_FILE} or
 *     {@code ~/.thaw/api-token}); null when there is none
 * @param mappings model locations Thaw serves: a path prefix and the source mounted for it ({@code THAW_AGENT_MAP},
 *     {@code PREFIX=SOURCE} separated by {@code ;})
 */
record AgentConfig(String sidecar, String token, List<Mapping> mappings) {
  /** Paths under {@code prefix} are read from the mount of {@code source} (NAME:TAG, sha256:..., s3://...). */
  record Mapping(String prefix, String source) {}

  static AgentConfig from(String options, Map<String, String> env) {
    String sidecar = env.getOrDefault("THAW_SIDECAR_URL", "http://127.0.0.1:7070");
    String map = env.get("THAW_AGENT_MAP");
    if (options != null && !options.isBlank()) {
      for (String option : options.split(",")) {
        int eq = option.indexOf('=');
        if (eq <= 0) {
          throw new IllegalArgumentException("agent option '" + option + "' is not KEY=VALUE (sidecar=URL, "
              + "map=PREFIX=SOURCE;...)");
        }
        String key = option.substring(0, eq).strip();
        String value = option.substring(eq + 1).strip();
        switch (key) {
          case "sidecar" -> sidecar = value;
          case "map" -> map = value;
          default -> throw new IllegalArgumentException("unknown agent option '" + key + "' (sidecar, map)");
        }
      }
    }
    List<Mapping> mappings = new ArrayList<>();
    if (map != null && !map.isBlank()) {
      for (String m : map.split(";")) {
        int eq = m.indexOf('=');
        if (eq <= 0 || eq == m.length() - 1) {
          throw new IllegalArgumentException("model mapping '" + m + "' is not PREFIX=SOURCE (/models/resnet="
              + "resnet:v1)");
        }
        String prefix = m.substring(0, eq).strip();
        mappings.add(new Mapping(prefix.endsWith("/") ? prefix.substring(0, prefix.length() - 1) : prefix,
            m.substring(eq + 1).strip()));
      }
    }
    return new AgentConfig(sidecar.endsWith("/") ? sidecar.substring(0, sidecar.length() - 1) : sidecar,
        token(env), List.copyOf(mappings));
  }

  private static String token(Map<String, String> env) {
    String given = env.get("THAW_API_TOKEN");
    if (given != null && !given.isBlank()) {
      return given.strip();
    }
    Path file = env.containsKey("THAW_API_TOKEN_FILE") ? Path.of(env.get("THAW_API_TOKEN_FILE"))
        : Path.of(System.getProperty("user.home"), ".thaw", "api-token");
    try {
      return Files.isReadable(file) ? Files.readString(file, StandardCharsets.UTF_8).strip() : null;
    } catch (IOException e) {
      return null;
    }
  }
}
