package dev.thaw.checkpoint;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Snapshots of a warm server in a local images directory, and their verified restore.
 *
 * <p>{@link #take}: waits until the server is ready and has answered the probe, checkpoints its CUDA processes,
 * dumps the tree with CRIU and writes {@code snapshot.json} beside the images: the {@link SnapshotKey}, the server's
 * command line, the probe and its answer. {@link #restore}: refuses a snapshot whose key does not match this node
 * (naming the fields), restores the tree and its CUDA state, and checks the restored server gives the recorded answer;
 * any failure kills what was restored, boots the server from its command line instead, and says why.
 */
public final class Snapshots {
  static final String METADATA = "snapshot.json";
  private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

  private Snapshots() {}

  /** What {@code snapshot.json} records. */
  public record Metadata(Map<String, String> key, List<String> command, String readyUrl, Probe probe, String answer,
      List<Long> cudaPids) {}

  /**
   * @param readyUrl polled until it answers 200 before anything else
   * @param probe asked once ready; its answer is recorded (null: none)
   * @param warmTimeout how long the server may take to become ready
   */
  public record TakeRequest(String readyUrl, Probe probe, boolean leaveRunning, Duration warmTimeout, String modelDigest,
      String thawVersion, Optional<CudaCheckpoint> cuda, Duration cudaLockTimeout) {}

  /** Snapshots the warm server whose tree is rooted at {@code pid} into {@code images}. */
  public static Metadata take(Criu criu, long pid, Path images, TakeRequest r) throws IOException {
    Probe.awaitReady(r.readyUrl(), r.warmTimeout(), pid);
    String answer = r.probe() == null ? null : r.probe().ask(Duration.ofMinutes(1));
    List<String> command = commandLine(pid);
    SnapshotKey key = SnapshotKey.ofThisNode(criu, r.modelDigest(), command, r.thawVersion());
    List<Long> cudaPids = cudaProcesses(pid);
    GpuCheckpointer gpus = null;
    if (!cudaPids.isEmpty()) {
      CudaCheckpoint cuda = r.cuda().orElseThrow(() -> new IOException("processes " + cudaPids + " use CUDA, but neither"
          + " libcuda's checkpoint API nor the cuda-checkpoint command is available"));
      gpus = new GpuCheckpointer(cuda, r.cudaLockTimeout());
      gpus.suspend(cudaPids);
    }
    try {
      criu.dump(pid, images, Criu.Options.SERVER, r.leaveRunning());
    } catch (IOException e) {
      if (gpus != null) {
        resumeQuietly(gpus, cudaPids, e); // the dump failed: the server keeps running as it was
      }
      throw e;
    }
    if (gpus != null && r.leaveRunning()) {
      gpus.resume(cudaPids, List.of());
    }
    Metadata m = new Metadata(key.fields(), command, r.readyUrl(), r.probe(), answer, cudaPids);
    Path file = images.resolve(METADATA);
    JSON.writeValue(file.toFile(), m);
    return m;
  }

  /** The result of a restore: the server's host PID, and why it was booted instead of restored (null if it was not). */
  public record Restored(long pid, String fallbackReason, PidNamespaceProcess booted) {
    public boolean fromSnapshot() {
      return fallbackReason == null;
    }
  }

  /**
   * Restores the snapshot in {@code images} and verifies it; on any failure boots the recorded command under a new
   * PID namespace instead (its output in {@code logDir}) and reports why in {@link Restored#fallbackReason()}.
   */
  public static Restored restore(Criu criu, Path images, Path logDir, String thawVersion, Optional<CudaCheckpoint> cuda,
      Duration readyTimeout) throws IOException {
    Metadata m = JSON.readValue(images.resolve(METADATA).toFile(), Metadata.class);
    long restored = -1;
    try {
      SnapshotKey recorded = new SnapshotKey(m.key());
      SnapshotKey here = SnapshotKey.ofThisNode(criu, m.key().get(SnapshotKey.MODEL), m.command(), thawVersion);
      List<String> differ = recorded.mismatches(here);
      if (!differ.isEmpty()) {
        throw new IOException("the snapshot does not match this node: " + describe(differ, recorded, here));
      }
      restored = criu.restore(images, Criu.Options.SERVER);
      if (!m.cudaPids().isEmpty()) {
        CudaCheckpoint c = cuda.orElseThrow(() -> new IOException("the snapshot holds CUDA processes, but this node has"
            + " neither libcuda's checkpoint API nor cuda-checkpoint"));
        new GpuCheckpointer(c, Duration.ofSeconds(30)).resume(m.cudaPids(), List.of());
      }
      Probe.awaitReady(m.readyUrl(), readyTimeout, restored);
      if (m.probe() != null) {
        String again = m.probe().ask(Duration.ofMinutes(1));
        if (!again.equals(m.answer())) {
          throw new IOException("the restored server answered the probe differently: " + abbreviate(again)
              + " instead of " + abbreviate(m.answer()));
        }
      }
      return new Restored(restored, null, null);
    } catch (IOException | RuntimeException e) {
      if (restored > 0) {
        kill(restored); // never leave a half-restored server running
      }
      String reason = e.getMessage();
      PidNamespaceProcess booted = PidNamespaceProcess.start(m.command(), logDir.resolve("server.out"),
          logDir.resolve("server.err"));
      return new Restored(booted.pid(), reason, booted);
    }
  }

  private static String describe(List<String> fields, SnapshotKey a, SnapshotKey b) {
    List<String> parts = new ArrayList<>();
    for (String f : fields) {
      parts.add(f + " (snapshot: " + abbreviate(a.fields().get(f)) + ", here: " + abbreviate(b.fields().get(f)) + ")");
    }
    return String.join(", ", parts);
  }

  private static String abbreviate(String s) {
    return s == null ? "null" : s.length() <= 80 ? s : s.substring(0, 77) + "...";
  }

  private static void resumeQuietly(GpuCheckpointer gpus, List<Long> pids, Exception cause) {
    try {
      gpus.resume(pids, List.of());
    } catch (IOException e) {
      cause.addSuppressed(e);
    }
  }

  static void kill(long pid) {
    ProcessHandle.of(pid).ifPresent(ProcessHandle::destroyForcibly);
    PidNamespaceProcess.awaitGone(pid, 10_000);
  }

  /** The process's command line from {@code /proc/PID/cmdline}. */
  static List<String> commandLine(long pid) throws IOException {
    byte[] raw = Files.readAllBytes(Path.of("/proc", Long.toString(pid), "cmdline"));
    String s = new String(raw, StandardCharsets.UTF_8);
    if (s.endsWith("\0")) {
      s = s.substring(0, s.length() - 1);
    }
    return Arrays.asList(s.split("\0", -1));
  }

  /** The processes of the tree rooted at {@code pid} that have NVIDIA's driver library mapped. */
  static List<Long> cudaProcesses(long pid) throws IOException {
    List<Long> out = new ArrayList<>();
    for (long p : tree(pid)) {
      try {
        if (Files.readString(Path.of("/proc", Long.toString(p), "maps")).contains("libcuda.so")) {
          out.add(p);
        }
      } catch (IOException gone) {
        // exited meanwhile
      }
    }
    return out;
  }

  /** {@code root} and its descendants, parents before children. */
  static List<Long> tree(long root) {
    List<Long> all = new ArrayList<>(List.of(root));
    for (int i = 0; i < all.size(); i++) {
      long p = all.get(i);
      try (var tasks = Files.list(Path.of("/proc", Long.toString(p), "task"))) {
        for (Path t : tasks.toList()) {
          String c = Files.readString(t.resolve("children")).strip();
          if (!c.isEmpty()) {
            for (String child : c.split(" ")) {
              long pid = Long.parseLong(child);
              if (!all.contains(pid)) {
                all.add(pid);
              }
            }
          }
        }
      } catch (IOException gone) {
        // exited meanwhile
      }
    }
    return all;
  }
}
