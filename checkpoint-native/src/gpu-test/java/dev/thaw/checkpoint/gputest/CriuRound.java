package dev.thaw.checkpoint.gputest;

import dev.thaw.checkpoint.Criu;
import dev.thaw.checkpoint.CriuException;
import dev.thaw.checkpoint.CudaCheckpoint;
import dev.thaw.checkpoint.GpuCheckpointer;
import dev.thaw.checkpoint.PidNamespaceProcess;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import java.util.stream.Stream;

/**
 * The optional full snapshot, as Thaw takes one: a PyTorch holder started in a PID namespace of its own
 * ({@link PidNamespaceProcess}), suspended through {@link GpuCheckpointer}, dumped by {@link Criu} (which kills it),
 * restored by CRIU, resumed, and verified. The holder runs with {@code --control}: commands come as a file and
 * answers go to a file, since a pipe to this JVM could not be restored.
 *
 * <p>CRIU needs kernel support a GPU machine may lack, so a CRIU that is missing, fails {@code criu check}, or fails
 * its dump or restore is reported ("unavailable"/"criu failed") without failing the check, unless
 * {@code GPU_TEST_CRIU_REQUIRED=1}. Once CRIU has restored the process, a failing CUDA call or a wrong value fails it.
 */
final class CriuRound {
  private CriuRound() {}

  static Map<String, Object> run(CudaCheckpoint cuda, GpuCheck.Options o, GpuCheck.Steps steps) {
    Map<String, Object> r = new LinkedHashMap<>();
    boolean required = "1".equals(System.getenv("GPU_TEST_CRIU_REQUIRED"));
    if (System.getenv("THAW_CRIU") == null && !Files.isRegularFile(Path.of("/usr/local/sbin/criu"))) {
      r.put("status", "skipped: no CRIU in the bundle (THAW_CRIU unset) nor at /usr/local/sbin/criu");
      GpuCheck.log("criu: " + r.get("status"));
      return r;
    }
    Criu criu;
    try {
      criu = Criu.locate();
      criu.check();
    } catch (CriuException e) {
      r.put("status", "unavailable: " + e.getMessage());
      GpuCheck.log("criu: CRIU cannot run here: " + e.getMessage());
      if (required) {
        steps.step("criu snapshot", false, "CRIU cannot run here: " + e.getMessage());
      }
      return r;
    }
    GpuCheck.log("criu: " + criu + " passed criu check");
    Path work = null;
    PidNamespaceProcess holder = null;
    long restored = -1;
    try {
      Path base = Path.of(System.getenv().getOrDefault("GPU_TEST_CRIU_DIR", System.getProperty("java.io.tmpdir")));
      work = Files.createTempDirectory(base, "thaw-gpu-criu-");
      Path control = Files.createDirectory(work.resolve("control"));
      Path out = work.resolve("holder.out");
      Path err = work.resolve("holder.err");
      Files.createFile(out);
      holder = PidNamespaceProcess.start(List.of(o.python(), o.torchHolder().toAbsolutePath().toString(),
          "--control", control.toString(), "--gib", Double.toString(o.criuGib()), "--max-seconds", "300"), out, err);
      long pid = holder.pid();
      GpuCheck.STRAYS.add(pid);
      notePid(o, pid);
      Answers answers = new Answers(out, err);
      Map<String, String> ready = GpuCheck.kv(answers.await(pid, Duration.ofSeconds(180)));
      long bytes = Long.parseLong(ready.get("bytes"));
      r.put("bytes", bytes);
      GpuCheck.log("criu: holder pid " + pid + " READY with " + GpuCheck.gib(bytes));
      String before = ask(answers, control, pid, "verify");
      if (!before.startsWith("OK")) {
        steps.step("criu holder verify before the snapshot", false, before);
        return r;
      }

      GpuCheckpointer g = new GpuCheckpointer(cuda, Duration.ofSeconds(10));
      long t0 = System.nanoTime();
      g.suspend(List.of(pid));
      r.put("cuda_suspend_s", (System.nanoTime() - t0) / 1e9);
      Path images = work.resolve("images");
      long t1 = System.nanoTime();
      try {
        criu.dump(pid, images, Criu.Options.SERVER_ELSEWHERE, false);
      } catch (CriuException e) {
        r.put("status", "criu failed at dump: " + e.getMessage());
        GpuCheck.log("criu: dump failed; resuming the holder: " + e.getMessage());
        g.resume(List.of(pid), List.of());
        String after = ask(answers, control, pid, "verify");
        steps.step("criu holder verify after the failed dump", after.startsWith("OK"), after);
        if (required) {
          steps.step("criu snapshot", false, "dump failed: " + e.getMessage());
        }
        return r;
      }
      r.put("criu_dump_s", (System.nanoTime() - t1) / 1e9);
      r.put("image_bytes", size(images));
      holder.close(); // CRIU killed the holder; end its unshare too, and wait until the PIDs are free
      holder = null;
      GpuCheck.STRAYS.remove(pid);

      long t2 = System.nanoTime();
      try {
        restored = criu.restore(images, Criu.Options.SERVER_ELSEWHERE);
      } catch (CriuException e) {
        r.put("status", "criu failed at restore: " + e.getMessage());
        GpuCheck.log("criu: restore failed: " + e.getMessage());
        if (required) {
          steps.step("criu snapshot", false, "restore failed: " + e.getMessage());
        }
        return r;
      }
      r.put("criu_restore_s", (System.nanoTime() - t2) / 1e9);
      GpuCheck.STRAYS.add(restored);
      notePid(o, restored);
      CudaCheckpoint.State state = cuda.state(restored);
      r.put("state_after_criu_restore", state.name());
      long t3 = System.nanoTime();
      g.resume(List.of(restored), List.of());
      r.put("cuda_resume_s", (System.nanoTime() - t3) / 1e9);
      String after = ask(answers, control, restored, "verify");
      r.put("verify", after);
      r.put("wrong", Long.parseLong(GpuCheck.kv(after).getOrDefault("wrong", "-1")));
      r.put("status", after.startsWith("OK") ? "passed" : "failed");
      steps.step("criu snapshot restored and verified", after.startsWith("OK"), String.format(java.util.Locale.ROOT,
          "suspend %.2f s, dump %.2f s (%s of images), criu restore %.2f s, resume %.2f s; %s", r.get("cuda_suspend_s"),
          r.get("criu_dump_s"), GpuCheck.gib((Long) r.get("image_bytes")), r.get("criu_restore_s"),
          r.get("cuda_resume_s"), after));
      try {
        ask(answers, control, restored, "quit");
      } catch (IOException e) {
        // killed below either way
      }
    } catch (IOException | RuntimeException e) {
      r.putIfAbsent("status", "failed: " + e.getMessage());
      steps.step("criu snapshot", false, String.valueOf(e.getMessage()));
    } finally {
      if (holder != null) {
        holder.close();
      }
      if (restored > 0) {
        ProcessHandle.of(restored).ifPresent(ProcessHandle::destroyForcibly);
        PidNamespaceProcess.awaitGone(restored, 10_000);
        GpuCheck.STRAYS.remove(restored);
      }
      if (work != null) {
        delete(work); // the images hold the holder's GPU memory: GiBs
      }
    }
    GpuCheck.log("criu: " + r);
    return r;
  }

  /** Writes the command whole (a rename), so the holder never reads half of it, then waits for the answer. */
  private static String ask(Answers answers, Path control, long pid, String command) throws IOException {
    Path tmp = control.resolve("cmd.tmp");
    Files.writeString(tmp, command + "\n");
    Files.move(tmp, control.resolve("cmd"), StandardCopyOption.ATOMIC_MOVE);
    return answers.await(pid, Duration.ofSeconds(120));
  }

  private static void notePid(GpuCheck.Options o, long pid) throws IOException {
    if (o.pidFile() != null) {
      Files.writeString(o.pidFile(), pid + "\n", java.nio.file.StandardOpenOption.CREATE,
          java.nio.file.StandardOpenOption.APPEND);
    }
  }

  static long size(Path dir) throws IOException {
    try (Stream<Path> s = Files.walk(dir)) {
      return s.filter(Files::isRegularFile).mapToLong(p -> p.toFile().length()).sum();
    }
  }

  static void delete(Path dir) {
    try (Stream<Path> s = Files.walk(dir)) {
      s.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
    } catch (IOException e) {
      GpuCheck.log("could not delete " + dir + ": " + e.getMessage());
    }
  }

  /** The holder's answer lines, read from the file its stdout goes to, from where the last read stopped. */
  private static final class Answers {
    private final Path out;
    private final Path err;
    private long offset;
    private final List<String> pending = new ArrayList<>();

    Answers(Path out, Path err) {
      this.out = out;
      this.err = err;
    }

    String await(long pid, Duration timeout) throws IOException {
      long deadline = System.nanoTime() + timeout.toNanos();
      while (true) {
        readNew();
        while (!pending.isEmpty()) {
          String line = pending.removeFirst();
          if (line.startsWith("ERROR")) {
            throw new IOException("the criu holder answered: " + line + errTail());
          }
          if (List.of("READY", "OK", "FAIL", "BUSY", "H2D", "BYE").contains(line.split(" ", 2)[0])) {
            return line;
          }
        }
        if (!Files.exists(Path.of("/proc", Long.toString(pid)))) {
          throw new IOException("the criu holder (pid " + pid + ") is gone" + errTail());
        }
        if (System.nanoTime() > deadline) {
          throw new IOException("the criu holder (pid " + pid + ") gave no answer within " + timeout.toSeconds() + " s"
              + errTail());
        }
        LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(20));
      }
    }

    /** Complete lines added since the last read; a line still being written waits for its newline. */
    private void readNew() throws IOException {
      try (RandomAccessFile f = new RandomAccessFile(out.toFile(), "r")) {
        if (f.length() <= offset) {
          return;
        }
        byte[] b = new byte[(int) (f.length() - offset)];
        f.seek(offset);
        f.readFully(b);
        String s = new String(b, StandardCharsets.UTF_8);
        int end = s.lastIndexOf('\n');
        if (end < 0) {
          return;
        }
        offset += s.substring(0, end + 1).getBytes(StandardCharsets.UTF_8).length;
        pending.addAll(s.substring(0, end).lines().toList());
      }
    }

    private String errTail() {
      try {
        List<String> lines = Files.readAllLines(err);
        return "; its stderr ends: " + String.join(" | ", lines.subList(Math.max(0, lines.size() - 6), lines.size()));
      } catch (IOException e) {
        return "";
      }
    }
  }
}
