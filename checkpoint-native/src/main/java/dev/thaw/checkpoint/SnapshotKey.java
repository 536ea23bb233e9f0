package dev.thaw.checkpoint;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;

/**
 * Everything that must match for a snapshot to restore on a node: the CPU (model and instruction-set features: a
 * restored process keeps using the instructions it detected at start), the GPUs (model and count), the NVIDIA driver
 * and CUDA versions, the kernel and CRIU versions, the model's manifest digest, the server's command line and Thaw's
 * version. Snapshots are stored under {@link #digest()}; a snapshot whose key differs is refused with the fields that
 * differ named ({@link #mismatches}).
 */
public record SnapshotKey(Map<String, String> fields) {
  public static final String CPU_MODEL = "cpu_model";
  public static final String CPU_FLAGS = "cpu_flags";
  public static final String GPU_MODEL = "gpu_model";
  public static final String GPU_COUNT = "gpu_count";
  public static final String DRIVER = "nvidia_driver";
  public static final String CUDA = "cuda";
  public static final String KERNEL = "kernel";
  public static final String CRIU = "criu";
  public static final String MODEL = "model_digest";
  public static final String COMMAND = "command";
  public static final String THAW = "thaw";
  static final List<String> ORDER = List.of(CPU_MODEL, CPU_FLAGS, GPU_MODEL, GPU_COUNT, DRIVER, CUDA, KERNEL, CRIU, MODEL,
      COMMAND, THAW);
  /** The fields that describe the node and Thaw, which a restore compares with the node it runs on. */
  public static final List<String> NODE_FIELDS = List.of(CPU_MODEL, CPU_FLAGS, GPU_MODEL, GPU_COUNT, DRIVER, CUDA, KERNEL,
      CRIU, THAW);

  public SnapshotKey {
    for (String f : ORDER) {
      if (!fields.containsKey(f)) {
        throw new IllegalArgumentException("snapshot key without " + f);
      }
    }
    Map<String, String> ordered = new LinkedHashMap<>();
    for (String f : ORDER) {
      ordered.put(f, fields.get(f));
    }
    fields = java.util.Collections.unmodifiableMap(ordered);
  }

  /**
   * The key of a snapshot taken on this node now.
   *
   * @param modelDigest the manifest digest of the model the server serves ("" when it serves none from Thaw)
   * @param command the server's command line
   */
  public static SnapshotKey ofThisNode(Criu criu, String modelDigest, List<String> command, String thawVersion)
      throws IOException {
    Map<String, String> f = new LinkedHashMap<>(nodeFacts());
    int[] v = criu.version();
    f.put(CRIU, v[0] + "." + v[1] + "." + v[2]);
    f.put(MODEL, modelDigest);
    f.put(COMMAND, String.join("\u0000", command));
    f.put(THAW, thawVersion);
    return new SnapshotKey(f);
  }

  private static volatile Map<String, String> nodeFacts;

  /**
   * CPU, GPUs, driver, CUDA and kernel: read once per process (nvidia-smi takes a while, and a restore asks twice),
   * since they cannot change under a running process.
   */
  private static Map<String, String> nodeFacts() throws IOException {
    Map<String, String> facts = nodeFacts;
    if (facts == null) {
      Map<String, String> f = new LinkedHashMap<>();
      Map<String, String> cpu = cpuInfo(Path.of("/proc/cpuinfo"));
      f.put(CPU_MODEL, cpu.getOrDefault("model name", "unknown"));
      f.put(CPU_FLAGS, cpu.getOrDefault("flags", ""));
      Gpus g = gpus();
      f.put(GPU_MODEL, g.model());
      f.put(GPU_COUNT, Integer.toString(g.count()));
      f.put(DRIVER, g.driver());
      f.put(CUDA, g.cuda());
      f.put(KERNEL, Files.readString(Path.of("/proc/sys/kernel/osrelease")).strip());
      facts = java.util.Collections.unmodifiableMap(f);
      nodeFacts = facts;
    }
    return facts;
  }

  /** The names of the fields in which {@code other} differs from this key, in key order; empty when it matches. */
  public List<String> mismatches(SnapshotKey other) {
    return mismatches(other, ORDER);
  }

  /** As {@link #mismatches(SnapshotKey)}, comparing only {@code compared}. */
  public List<String> mismatches(SnapshotKey other, List<String> compared) {
    List<String> m = new ArrayList<>();
    for (String f : ORDER) {
      if (!compared.contains(f)) {
        continue;
      }
      if (!fields.get(f).equals(other.fields.get(f))) {
        m.add(f);
      }
    }
    return m;
  }

  /**
   * Says how {@code here} differs from this (a snapshot's) key in {@code fields}: "gpu_model (snapshot: A, here: B),
   * ..."; empty when it does not.
   */
  public String describeMismatches(SnapshotKey here, List<String> fields) {
    List<String> parts = new ArrayList<>();
    for (String f : mismatches(here, fields)) {
      parts.add(f + " (snapshot: " + abbreviate(fields().get(f)) + ", here: " + abbreviate(here.fields().get(f)) + ")");
    }
    return String.join(", ", parts);
  }

  static String abbreviate(String s) {
    return s == null ? "null" : s.length() <= 80 ? s : s.substring(0, 77) + "...";
  }

  /** This key with the command replaced by its SHA-256: what may be shown where the command line should not be. */
  public SnapshotKey withCommandDigest() {
    Map<String, String> f = new LinkedHashMap<>(fields);
    String c = f.get(COMMAND);
    if (!c.startsWith("sha256:")) {
      try {
        f.put(COMMAND, "sha256:" + HexFormat.of().formatHex(
            MessageDigest.getInstance("SHA-256").digest(c.getBytes(StandardCharsets.UTF_8))));
      } catch (NoSuchAlgorithmException e) {
        throw new IllegalStateException("the JDK has no SHA-256", e);
      }
    }
    return new SnapshotKey(f);
  }

  /** A stable name for the key: SHA-256 over its fields in order. */
  public String digest() {
    try {
      MessageDigest md = MessageDigest.getInstance("SHA-256");
      for (String f : ORDER) {
        md.update((f + "=" + fields.get(f) + "\n").getBytes(StandardCharsets.UTF_8));
      }
      return "sha256:" + HexFormat.of().formatHex(md.digest());
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException("the JDK has no SHA-256", e);
    }
  }

  /** The first processor's fields of {@code /proc/cpuinfo}; flags sorted, so their order never matters. */
  static Map<String, String> cpuInfo(Path file) throws IOException {
    Map<String, String> m = new LinkedHashMap<>();
    for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
      if (line.isBlank()) {
        break; // the first processor is enough: every core of a node has the same model and features
      }
      int colon = line.indexOf(':');
      if (colon > 0) {
        m.put(line.substring(0, colon).strip(), line.substring(colon + 1).strip());
      }
    }
    if (m.containsKey("flags")) {
      m.put("flags", String.join(" ", new TreeSet<>(Arrays.asList(m.get("flags").split("\\s+")))));
    }
    return m;
  }

  record Gpus(String model, int count, String driver, String cuda) {
    static final Gpus NONE = new Gpus("none", 0, "none", "none");
  }

  /** From {@code nvidia-smi}; no GPUs where it is missing or finds none. */
  static Gpus gpus() {
    try {
      Process p = new ProcessBuilder("nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader")
          .redirectErrorStream(true).start();
      String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
      if (!p.waitFor(30, TimeUnit.SECONDS) || p.exitValue() != 0) {
        return Gpus.NONE;
      }
      return parseNvidiaSmi(out, cudaVersion());
    } catch (IOException e) {
      return Gpus.NONE;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return Gpus.NONE;
    }
  }

  static Gpus parseNvidiaSmi(String csv, String cuda) {
    List<String[]> rows = csv.lines().filter(l -> !l.isBlank()).map(l -> l.split(",\\s*")).toList();
    if (rows.isEmpty()) {
      return Gpus.NONE;
    }
    TreeSet<String> models = new TreeSet<>();
    rows.forEach(r -> models.add(r[0].strip()));
    return new Gpus(String.join("+", models), rows.size(), rows.getFirst().length > 1 ? rows.getFirst()[1].strip() : "unknown",
        cuda);
  }

  /** The UUIDs of this node's GPUs in nvidia-smi's order ("GPU-8f0e..."); empty without GPUs. */
  static List<String> gpuUuids() {
    try {
      Process p = new ProcessBuilder("nvidia-smi", "--query-gpu=uuid", "--format=csv,noheader")
          .redirectErrorStream(true).start();
      String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
      if (!p.waitFor(30, TimeUnit.SECONDS) || p.exitValue() != 0) {
        return List.of();
      }
      return out.lines().map(String::strip).filter(l -> l.startsWith("GPU-")).toList();
    } catch (IOException e) {
      return List.of();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return List.of();
    }
  }

  private static String cudaVersion() {
    try {
      Process p = new ProcessBuilder("nvidia-smi").redirectErrorStream(true).start();
      String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
      p.waitFor(30, TimeUnit.SECONDS);
      java.util.regex.Matcher m = java.util.regex.Pattern.compile("CUDA Version:\\s*([0-9.]+)").matcher(out);
      return m.find() ? m.group(1) : "unknown";
    } catch (IOException e) {
      return "unknown";
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return "unknown";
    }
  }
}
