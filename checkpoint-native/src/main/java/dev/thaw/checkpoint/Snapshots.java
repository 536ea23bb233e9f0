package dev.thaw.checkpoint;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import dev.thaw.checkpoint.SnapshotService.Fallback;
import dev.thaw.checkpoint.SnapshotService.MountProvider;
import dev.thaw.checkpoint.SnapshotService.Restored;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
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
 * any failure kills what was restored, boots the request's {@link Fallback} instead (or nothing), and says why. The
 * images directory is trusted as this node's own: taken here, or fetched by {@link SnapshotStore#find}, which
 * authenticates what it fetches. Callers outside the package go through {@link SnapshotService}.
 */
final class Snapshots {
  static final String METADATA = "snapshot.json";
  private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

  private Snapshots() {}

  /**
   * @param readyUrl polled until it answers 200 before anything else
   * @param probe asked once ready; its answer is recorded (null: none)
   * @param expectedAnswer what the probe must answer (compared as JSON when both are JSON); null: any answer
   * @param warmTimeout how long the server may take to become ready
   */
  record TakeRequest(String readyUrl, Probe probe, String expectedAnswer, boolean leaveRunning,
      Duration warmTimeout, String modelDigest, String thawVersion, Optional<CudaCheckpoint> cuda,
      Duration cudaLockTimeout) {
    /** Without an expected answer: whatever the warm server answers is recorded. */
    TakeRequest(String readyUrl, Probe probe, boolean leaveRunning, Duration warmTimeout, String modelDigest,
        String thawVersion, Optional<CudaCheckpoint> cuda, Duration cudaLockTimeout) {
      this(readyUrl, probe, null, leaveRunning, warmTimeout, modelDigest, thawVersion, cuda, cudaLockTimeout);
    }
  }

  /** Snapshots the warm server whose tree is rooted at {@code pid} into {@code images}. */
  static SnapshotMetadata take(Criu criu, long pid, Path images, TakeRequest r) throws IOException {
    Probe.awaitReady(r.readyUrl(), r.warmTimeout(), pid);
    String answer = r.probe() == null ? null : r.probe().ask(Duration.ofMinutes(1));
    if (r.expectedAnswer() != null && !sameAnswer(answer, r.expectedAnswer())) {
      throw new IOException("the server is not warm yet or answers wrongly: the probe " + r.probe().url() + " answered "
          + SnapshotKey.abbreviate(answer) + ", expected " + SnapshotKey.abbreviate(r.expectedAnswer())
          + "; no snapshot was taken");
    }
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
    if (!r.leaveRunning()) {
      markCheckpointed(pid, images.toAbsolutePath().getParent().getFileName().toString());
    }
    try {
      criu.dump(pid, images, Criu.Options.SERVER_ELSEWHERE, r.leaveRunning());
    } catch (IOException e) {
      unmarkCheckpointed(pid);
      if (gpus != null) {
        resumeQuietly(gpus, cudaPids, e); // the dump failed: the server keeps running as it was
      }
      throw e;
    }
    if (gpus != null && r.leaveRunning()) {
      gpus.resume(cudaPids, List.of());
    }
    SnapshotMetadata m = new SnapshotMetadata(key.fields(), command, r.readyUrl(), r.probe(), answer, cudaPids,
        cudaPids.isEmpty() ? List.of() : SnapshotKey.gpuUuids());
    Path file = images.resolve(METADATA);
    JSON.writeValue(file.toFile(), m);
    return m;
  }

  private static final Path MARKS = Path.of(System.getenv().getOrDefault("TMPDIR", "/tmp"), "thaw-checkpointed");

  /**
   * Leaves word, just before CRIU dumps and stops process {@code pid}, that it is being checkpointed as {@code name},
   * so that {@code thaw run}, which sees only its server exit, says so instead of reporting a crash; {@link
   * #unmarkCheckpointed} takes it back when the dump fails.
   */
  static void markCheckpointed(long pid, String name) {
    try {
      Files.createDirectories(MARKS, java.nio.file.attribute.PosixFilePermissions.asFileAttribute(
          java.nio.file.attribute.PosixFilePermissions.fromString("rwx------")));
      Files.writeString(MARKS.resolve(Long.toString(pid)), name + "\n");
    } catch (IOException | UnsupportedOperationException e) {
      // only a message depends on it
    }
  }

  static void unmarkCheckpointed(long pid) {
    try {
      Files.deleteIfExists(MARKS.resolve(Long.toString(pid)));
    } catch (IOException e) {
      // only a message depends on it
    }
  }

  /**
   * When process {@code pid}, started at {@code started} or later, ended because it was checkpointed: the snapshot's
   * name; the word is taken, once. A mark older than the process is another process's that had the same PID (marks
   * of servers never run by {@code thaw run} stay behind): it is dropped, not believed.
   */
  static Optional<String> checkpointedAs(long pid, Instant started) {
    Path mark = MARKS.resolve(Long.toString(pid));
    try {
      boolean ours = !Files.getLastModifiedTime(mark).toInstant().isBefore(started);
      String v = Files.readString(mark).strip();
      Files.deleteIfExists(mark);
      return ours ? Optional.of(v) : Optional.empty();
    } catch (IOException e) {
      return Optional.empty();
    }
  }

  /** Equal as JSON values when both are JSON (key order and spacing aside), else as strings. */
  static boolean sameAnswer(String got, String expected) {
    if (got == null) {
      return false;
    }
    try {
      return JSON.readTree(got).equals(JSON.readTree(expected));
    } catch (IOException notJson) {
      return got.strip().equals(expected.strip());
    }
  }

  /**
   * How to restore.
   *
   * @param expectedModelDigest the model manifest digest the restored server must serve; null: not compared
   * @param fallback what boots when the snapshot cannot be restored
   */
  record RestoreRequest(Path logDir, String thawVersion, Optional<CudaCheckpoint> cuda, Duration readyTimeout,
      String expectedModelDigest, Fallback fallback, MountProvider mounts) {
    RestoreRequest {
      java.util.Objects.requireNonNull(fallback, "fallback: say what boots when the restore fails (Fallback.NONE: nothing)");
      mounts = mounts == null ? MountProvider.NONE : mounts;
    }

    /** Without a way to mount models: a Thaw mount the snapshot needs must already be there. */
    RestoreRequest(Path logDir, String thawVersion, Optional<CudaCheckpoint> cuda, Duration readyTimeout,
        String expectedModelDigest, Fallback fallback) {
      this(logDir, thawVersion, cuda, readyTimeout, expectedModelDigest, fallback, MountProvider.NONE);
    }
  }

  /**
   * Restores the snapshot in {@code images} and verifies it; on any failure boots the recorded command under a new
   * PID namespace instead (its output in {@code logDir}) and reports why in {@link Restored#fallbackReason()}.
   */
  static Restored restore(Criu criu, Path images, Path logDir, String thawVersion, Optional<CudaCheckpoint> cuda,
      Duration readyTimeout) throws IOException {
    return restore(criu, images, new RestoreRequest(logDir, thawVersion, cuda, readyTimeout, null, Fallback.RECORDED));
  }

  /**
   * As {@link #restore(Criu, Path, Path, String, Optional, Duration)}, with every choice in {@code r}.
   *
   * @throws IOException saying why, when the snapshot cannot be restored and {@code r}'s fallback boots nothing
   *     (nothing is started then)
   */
  static Restored restore(Criu criu, Path images, RestoreRequest r) throws IOException {
    SnapshotMetadata m = SnapshotMetadata.read(images);
    long restored = -1;
    Map<String, Double> steps = new java.util.LinkedHashMap<>();
    long t = System.nanoTime();
    try {
      checkKey(criu, m, r.thawVersion(), r.expectedModelDigest());
      t = step(steps, "key", t);
      List<ExternalMounts.ExternalMount> missing = ExternalMounts.missing(images);
      for (ExternalMounts.ExternalMount mount : missing) {
        if (mount.isThaw()) {
          r.mounts().mount(mount); // the model the server reads, at the same path: it streams lazily again
        }
      }
      if (!missing.isEmpty()) {
        t = step(steps, "mounts", t);
      }
      restored = criu.restore(images, Criu.Options.SERVER_ELSEWHERE);
      t = step(steps, "criu_restore", t);
      if (!m.cudaPids().isEmpty()) {
        CudaCheckpoint c = r.cuda().orElseThrow(() -> new IOException("the snapshot holds CUDA processes, but this node"
            + " has neither libcuda's checkpoint API nor cuda-checkpoint"));
        // the restored tree has new host PIDs: find its CUDA processes again
        List<Long> now = cudaProcesses(restored);
        if (now.size() != m.cudaPids().size()) {
          throw new IOException("the snapshot held " + m.cudaPids().size() + " CUDA processes, the restored tree has "
              + now.size());
        }
        new GpuCheckpointer(c, Duration.ofSeconds(30)).resume(now, gpuPairs(m.gpuUuids(), SnapshotKey.gpuUuids()));
        t = step(steps, "cuda", t);
      }
      Probe.awaitReady(m.readyUrl(), r.readyTimeout(), restored);
      t = step(steps, "ready", t);
      if (m.probe() != null) {
        String again = m.probe().ask(Duration.ofMinutes(1));
        if (!again.equals(m.answer())) {
          throw new IOException("the restored server answered the probe differently: " + SnapshotKey.abbreviate(again)
              + " instead of " + SnapshotKey.abbreviate(m.answer()));
        }
        step(steps, "probe", t);
      }
      return new Restored(restored, null, null, steps);
    } catch (IOException | RuntimeException e) {
      if (restored > 0) {
        kill(restored); // never leave a half-restored server running
      }
      List<String> boot = r.fallback().commandFor(m);
      if (boot == null) {
        throw new IOException(e.getMessage(), e);
      }
      return coldBoot(boot, r.logDir(), e.getMessage());
    }
  }

  private static long step(Map<String, Double> steps, String name, long since) {
    long now = System.nanoTime();
    steps.put(name, (now - since) / 1e6);
    return now;
  }

  /** Boots {@code command} under a new PID namespace, its output in {@code logDir}, saying why. */
  static Restored coldBoot(List<String> command, Path logDir, String reason) throws IOException {
    Files.createDirectories(logDir);
    PidNamespaceProcess booted = PidNamespaceProcess.start(command, logDir.resolve("server.out"),
        logDir.resolve("server.err"));
    return new Restored(booted.pid(), reason, booted, Map.of());
  }

  /** Refuses a snapshot taken on a different kind of node, or of another model, naming the fields that differ. */
  static void checkKey(Criu criu, SnapshotMetadata m, String thawVersion, String expectedModelDigest) throws IOException {
    SnapshotKey recorded = m.snapshotKey();
    String model = expectedModelDigest != null ? expectedModelDigest : recorded.fields().get(SnapshotKey.MODEL);
    SnapshotKey here = SnapshotKey.ofThisNode(criu, model, m.command(), thawVersion);
    String differ = recorded.describeMismatches(here, SnapshotKey.ORDER);
    if (!differ.isEmpty()) {
      throw new IOException("the snapshot does not match this node: " + differ);
    }
  }

  /**
   * How the GPUs a snapshot used map onto this node's: none when they are the same; else pairs in nvidia-smi order
   * (same model and count are already part of the key).
   */
  static List<CudaCheckpoint.GpuPair> gpuPairs(List<String> recorded, List<String> here) throws IOException {
    if (recorded.isEmpty() || recorded.equals(here)) {
      return List.of();
    }
    if (recorded.size() != here.size()) {
      throw new IOException("the snapshot used " + recorded.size() + " GPUs, this node has " + here.size());
    }
    List<CudaCheckpoint.GpuPair> pairs = new ArrayList<>();
    for (int i = 0; i < recorded.size(); i++) {
      pairs.add(new CudaCheckpoint.GpuPair(uuidBytes(recorded.get(i)), uuidBytes(here.get(i))));
    }
    return pairs;
  }

  /** "GPU-8f0e4c2a-..." as the 16 bytes of a {@code CUuuid}. */
  static byte[] uuidBytes(String uuid) throws IOException {
    String hex = uuid.strip().replaceFirst("^GPU-", "").replace("-", "");
    try {
      byte[] b = java.util.HexFormat.of().parseHex(hex);
      if (b.length == 16) {
        return b;
      }
    } catch (IllegalArgumentException e) {
      // reported below
    }
    throw new IOException("not a GPU UUID: " + uuid);
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
