package dev.thaw.checkpoint.gputest;

import dev.thaw.checkpoint.CudaCheckpoint;
import dev.thaw.checkpoint.GpuCheckpointer;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The CUDA checkpoint check, run on a machine with an NVIDIA GPU (see README.md beside this source tree). It takes
 * real CUDA processes through {@link CudaCheckpoint} as Thaw does, and shows that their GPU memory comes back exactly,
 * how fast, and what a failed lock leaves behind:
 *
 * <ol>
 *   <li>a PyTorch holder and a JCuda holder each fill a few GiB of GPU memory with values they can recompute;
 *   <li>each is locked, checkpointed (its memory must leave the GPU), restored and unlocked, each step timed, then
 *       must find every value intact;
 *   <li>both together through {@link GpuCheckpointer}, as a process tree is suspended;
 *   <li>a lock with a 1 ms timeout on the PyTorch holder while a long kernel runs must fail, leave it RUNNING and
 *       usable;
 *   <li>a plain host-to-device copy of the same bytes is the floor a restore is compared with;
 *   <li>optionally, with a CRIU in the bundle, a full snapshot of a PyTorch holder ({@link CriuRound});
 *   <li>a GPU inference server's cold boot against its restore, through the CUDA binding and through CRIU, answers
 *       compared token for token ({@link ServerRound}).
 * </ol>
 *
 * It prints a table and writes it as JSON ({@code --out}). Exit status: 0 all passed, 1 a step failed or a value was
 * wrong, 2 bad usage or nothing to check with, 3 only the speed goal missed (with {@code GPU_TEST_STRICT_GOAL=1}),
 * 4 the whole check ran past {@code --timeout-s}.
 */
public final class GpuCheck {
  static final double GOAL_RATIO = 0.8;
  private static final long START = System.nanoTime();
  /** Processes started outside {@link Holder} (the CRIU round's): killed with the holders on any way out. */
  static final Set<Long> STRAYS = ConcurrentHashMap.newKeySet();

  record Options(Path bundle, String python, Path torchHolder, double gib, double criuGib, Path out, Path pidFile,
      long timeoutSeconds, boolean torch, boolean jcuda, boolean tree, boolean criu, boolean server,
      boolean strictGoal) {}

  private final Options o;
  private final List<Map<String, Object>> steps = new ArrayList<>();
  private final List<Map<String, Object>> rows = new ArrayList<>();
  private final Map<String, Object> report = new LinkedHashMap<>();
  private boolean failed;

  GpuCheck(Options o) {
    this.o = o;
  }

  static synchronized void log(String line) {
    System.out.printf(Locale.ROOT, "[%6.1fs] %s%n", (System.nanoTime() - START) / 1e9, line);
    System.out.flush();
  }

  public static void main(String[] args) {
    Options o;
    try {
      o = parse(args);
    } catch (IllegalArgumentException e) {
      System.err.println("GpuCheck: " + e.getMessage());
      System.err.println(usage());
      System.exit(2);
      return;
    }
    if (o == null) {
      return; // --help or --selftest printed what was asked
    }
    Runtime.getRuntime().addShutdownHook(new Thread(GpuCheck::killEverything, "kill-holders"));
    Thread watchdog = new Thread(() -> {
      try {
        Thread.sleep(o.timeoutSeconds() * 1000);
      } catch (InterruptedException e) {
        return;
      }
      log("TIMEOUT: the check ran past " + o.timeoutSeconds() + " s; killing every holder");
      killEverything();
      Runtime.getRuntime().halt(4);
    }, "watchdog");
    watchdog.setDaemon(true);
    watchdog.start();
    int status;
    try {
      status = new GpuCheck(o).run(CudaCheckpoint.locate());
    } catch (RuntimeException | Error e) {
      log("FAILED with " + e);
      e.printStackTrace(System.out);
      status = 1;
    } finally {
      killEverything();
    }
    System.exit(status);
  }

  static void killEverything() {
    Holder.killAll();
    for (long pid : List.copyOf(STRAYS)) {
      ProcessHandle.of(pid).ifPresent(h -> {
        h.descendants().forEach(ProcessHandle::destroyForcibly);
        h.destroyForcibly();
      });
      STRAYS.remove(pid);
    }
  }

  static String usage() {
    return """
        usage: GpuCheck [options]          (run through checkpoint-native/src/gpu-test/run.sh)
          --bundle DIR          the bundle build.sh made (default checkpoint-native/target/gpu-test)
          --python CMD          the python with PyTorch (default python3)
          --torch-holder FILE   torch_holder.py (default checkpoint-native/src/gpu-test/torch_holder.py)
          --gib N               GiB each holder fills (default $GPU_TEST_GIB, else 4)
          --criu-gib N          GiB for the CRIU round (default $GPU_TEST_CRIU_GIB, else 1)
          --out FILE            write the results as JSON there
          --pids FILE           append every child pid there (run.sh kills what is left)
          --timeout-s N         kill everything and exit 4 after N s (default 420)
          --skip LIST           any of torch,jcuda,tree,criu,server (comma-separated)
          --selftest            check the bundle without a GPU: classes load, files are there
          --help
        exit: 0 passed, 1 a step failed or a value was wrong, 2 usage or setup, 3 speed goal missed
        (GPU_TEST_STRICT_GOAL=1 only), 4 timed out""";
  }

  static Options parse(String[] args) {
    Map<String, String> env = System.getenv();
    Path bundle = Path.of("checkpoint-native/target/gpu-test");
    String python = "python3";
    Path torchHolder = Path.of("checkpoint-native/src/gpu-test/torch_holder.py");
    double gib = Double.parseDouble(env.getOrDefault("GPU_TEST_GIB", "4"));
    double criuGib = Double.parseDouble(env.getOrDefault("GPU_TEST_CRIU_GIB", "1"));
    Path out = null;
    Path pids = null;
    long timeout = 420;
    String skip = "";
    boolean selftest = false;
    for (int i = 0; i < args.length; i++) {
      String a = args[i];
      if (a.equals("--help") || a.equals("-h")) {
        System.out.println(usage());
        return null;
      }
      if (a.equals("--selftest")) {
        selftest = true;
        continue;
      }
      if (i + 1 >= args.length) {
        throw new IllegalArgumentException(a + " needs a value, or is unknown");
      }
      String v = args[++i];
      switch (a) {
        case "--bundle" -> bundle = Path.of(v);
        case "--python" -> python = v;
        case "--torch-holder" -> torchHolder = Path.of(v);
        case "--gib" -> gib = Double.parseDouble(v);
        case "--criu-gib" -> criuGib = Double.parseDouble(v);
        case "--out" -> out = Path.of(v);
        case "--pids" -> pids = Path.of(v);
        case "--timeout-s" -> timeout = Long.parseLong(v);
        case "--skip" -> skip = v;
        default -> throw new IllegalArgumentException("unknown option " + a);
      }
    }
    if (gib <= 0 || criuGib <= 0) {
      throw new IllegalArgumentException("--gib and --criu-gib must be positive");
    }
    List<String> skips = List.of(skip.split(","));
    Options o = new Options(bundle, python, torchHolder, gib, criuGib, out, pids, timeout, !skips.contains("torch"),
        !skips.contains("jcuda"), !skips.contains("tree"), !skips.contains("criu"), !skips.contains("server"),
        "1".equals(env.get("GPU_TEST_STRICT_GOAL")));
    if (selftest) {
      System.exit(selftest(o));
    }
    return o;
  }

  /**
   * What can be checked without a GPU: the runtime has the modules, JCuda's classes load (not initialised: that
   * would load the natives, which need libcuda), its native library and the torch holder are where the run expects
   * them, and {@link CudaCheckpoint#locate()} answers.
   */
  static int selftest(Options o) {
    List<String> problems = new ArrayList<>();
    System.out.println("java " + Runtime.version() + " at " + ProcessHandle.current().info().command().orElse("?"));
    for (String m : List.of("java.base", "java.logging", "jdk.unsupported")) {
      if (ModuleLayer.boot().findModule(m).isEmpty()) {
        problems.add("module " + m + " missing from the runtime");
      }
    }
    for (String c : List.of("jcuda.driver.JCudaDriver", "jcuda.driver.CUdeviceptr", "jcuda.Pointer",
        "dev.thaw.checkpoint.CudaCheckpoint", "dev.thaw.checkpoint.GpuCheckpointer", "dev.thaw.checkpoint.Criu",
        "dev.thaw.checkpoint.PidNamespaceProcess", JcudaHolder.class.getName())) {
      try {
        Class.forName(c, false, GpuCheck.class.getClassLoader());
        System.out.println("class " + c + ": loads");
      } catch (ClassNotFoundException | LinkageError e) {
        problems.add("class " + c + " does not load: " + e);
      }
    }
    Path nativeLib = o.bundle().resolve("native").resolve(JCUDA_NATIVE);
    if (!Files.isRegularFile(nativeLib)) {
      problems.add("no " + nativeLib);
    } else {
      System.out.println("JCuda natives: " + nativeLib);
    }
    for (Path script : List.of(o.torchHolder(), o.torchHolder().resolveSibling("gpu_server.py"))) {
      if (!Files.isRegularFile(script)) {
        problems.add("no " + script);
      }
    }
    Optional<CudaCheckpoint> cuda = CudaCheckpoint.locate();
    System.out.println("CudaCheckpoint.locate(): "
        + cuda.map(CudaCheckpoint::describe).orElse("none (no NVIDIA driver)"));
    problems.forEach(p -> System.out.println("PROBLEM: " + p));
    System.out.println(problems.isEmpty() ? "SELFTEST OK" : "SELFTEST FAILED");
    return problems.isEmpty() ? 0 : 1;
  }

  static final String JCUDA_NATIVE = "libJCudaDriver-12.6.0-linux-x86_64.so";

  /** Where a part of the check records a step; a step not ok fails the check. */
  interface Steps {
    void step(String name, boolean ok, String detail);
  }

  private void step(String name, boolean ok, String detail) {
    log((ok ? "PASS " : "FAIL ") + name + (detail.isEmpty() ? "" : ": " + detail));
    Map<String, Object> s = new LinkedHashMap<>();
    s.put("step", name);
    s.put("ok", ok);
    s.put("detail", detail);
    steps.add(s);
    failed |= !ok;
  }

  /** The check with {@code located}, which is {@link CudaCheckpoint#locate()}'s answer. */
  int run(Optional<CudaCheckpoint> located) {
    String gpu = Smi.summary();
    log("GPU 0: " + gpu);
    report.put("gpu", gpu);
    report.put("gib", o.gib());
    if (located.isEmpty()) {
      step("locate", false, "CudaCheckpoint.locate() found neither libcuda's checkpoint API nor cuda-checkpoint");
      return finish(null);
    }
    CudaCheckpoint cuda = located.get();
    boolean ffm = cuda.describe().startsWith("libcuda");
    report.put("binding", cuda.describe());
    step("locate", ffm, "CudaCheckpoint.locate() picked " + cuda.describe()
        + (ffm ? "" : " (expected the driver's API through FFM; driver 550+ has it)"));

    // both holders fill their memory at the same time: start both, then wait for each
    Holder torch = null;
    Holder jcuda = null;
    // the holders end themselves a minute after this check would have timed out, whatever happens to it
    Map<String, String> env = Map.of("GPU_TEST_GIB", Double.toString(o.gib()), "PYTHONUNBUFFERED", "1",
        "GPU_TEST_HOLDER_MAX_S", Long.toString(o.timeoutSeconds() + 60));
    if (o.torch()) {
      try {
        torch = Holder.start("torch",
            List.of(o.python(), o.torchHolder().toString(), "--gib", Double.toString(o.gib())), env, o.pidFile());
      } catch (IOException e) {
        step("torch start", false, e.getMessage());
      }
    }
    if (o.jcuda()) {
      String java = ProcessHandle.current().info().command().orElse("java");
      try {
        jcuda = Holder.start("jcuda", List.of(java, "--enable-native-access=ALL-UNNAMED", "-Xmx256m",
            "-Djava.library.path=" + o.bundle().resolve("native").toAbsolutePath(),
            "-cp", System.getProperty("java.class.path"), JcudaHolder.class.getName()), env, o.pidFile());
      } catch (IOException e) {
        step("jcuda start", false, e.getMessage());
      }
    }
    Map<String, String> torchReady = ready(torch);
    Map<String, String> jcudaReady = ready(jcuda);
    if (torchReady == null) {
      torch = closed(torch);
    }
    if (jcudaReady == null) {
      jcuda = closed(jcuda);
    }
    if (torchReady != null) {
      report.put("torch", torchReady.get("torch") + " (CUDA " + torchReady.get("cuda") + ")");
    }
    if (jcudaReady != null) {
      report.put("jcuda", "JCuda 12.6.0 on " + jcudaReady.get("device") + ", driver API " + jcudaReady.get("driver"));
    }

    if (torch != null) {
      torch = cycle(cuda, torch, Long.parseLong(torchReady.get("bytes")));
    }
    if (jcuda != null) {
      jcuda = cycle(cuda, jcuda, Long.parseLong(jcudaReady.get("bytes")));
    }
    if (o.tree() && torch != null && jcuda != null) {
      long both = Long.parseLong(torchReady.get("bytes")) + Long.parseLong(jcudaReady.get("bytes"));
      tree(cuda, List.of(torch, jcuda), both);
    }
    if (torch != null && torch.isAlive()) {
      lockFailure(cuda, torch);
    }
    Map<String, String> floor = null;
    if (torch != null && torch.isAlive()) {
      try {
        floor = kv(torch.ask("h2d", Duration.ofSeconds(120)));
        log("floor: plain copies of " + gib(Long.parseLong(floor.get("bytes"))) + ": host-to-device "
            + floor.get("pinned_gbps") + " GB/s pinned, " + floor.get("pageable_gbps") + " GB/s pageable; "
            + "device-to-host " + floor.get("d2h_pinned_gbps") + " GB/s pinned");
        Map<String, Object> numbers = new LinkedHashMap<>();
        floor.forEach((k, v) -> numbers.put(k, k.equals("bytes") ? (Object) Long.parseLong(v) : Double.parseDouble(v)));
        report.put("floor", numbers);
      } catch (IOException e) {
        step("h2d floor", false, e.getMessage());
      }
    }
    if (jcudaReady != null) {
      report.put("jcuda_fill_pageable_h2d_gbps", Double.parseDouble(jcudaReady.get("pageable_h2d_gbps")));
    }
    closeQuietly(torch);
    closeQuietly(jcuda);

    if (o.criu()) {
      Map<String, Object> criu = CriuRound.run(cuda, o, this::step);
      report.put("criu", criu);
    }
    if (o.server()) {
      report.put("server", ServerRound.run(cuda, o, this::step));
    }
    return finish(floor);
  }

  private Map<String, String> ready(Holder h) {
    if (h == null) {
      return null;
    }
    try {
      Map<String, String> r = kv(h.await("READY", Duration.ofSeconds(180)));
      log(h.name + ": READY " + r);
      return r;
    } catch (IOException e) {
      step(h.name + " ready", false, e.getMessage());
      return null;
    }
  }

  private static Holder closed(Holder h) {
    if (h != null) {
      h.kill();
    }
    return null;
  }

  private static void closeQuietly(Holder h) {
    if (h != null) {
      h.close();
    }
  }

  /**
   * One holder through lock, checkpoint, restore and unlock, each timed, its GPU memory read before and after the
   * checkpoint, then its values verified. Returns the holder, or null once it had to be killed.
   */
  private Holder cycle(CudaCheckpoint cuda, Holder h, long bytes) {
    long pid = h.pid();
    Map<String, Object> row = new LinkedHashMap<>();
    row.put("holder", h.name);
    row.put("pid", pid);
    row.put("bytes", bytes);
    rows.add(row);
    try {
      Map<Long, Long> apps = Smi.computeApps();
      row.put("pid_mib_before", Smi.listedMiB(pid, apps));
      row.put("gpu_mib_before", Smi.gpuUsedMiB());
      expect(cuda, pid, CudaCheckpoint.State.RUNNING);
      long t0 = System.nanoTime();
      cuda.lock(pid, Duration.ofSeconds(10));
      long t1 = System.nanoTime();
      expect(cuda, pid, CudaCheckpoint.State.LOCKED);
      long t2 = System.nanoTime();
      cuda.checkpoint(pid);
      long t3 = System.nanoTime();
      expect(cuda, pid, CudaCheckpoint.State.CHECKPOINTED);
      apps = Smi.computeApps();
      row.put("pid_mib_after", Smi.remainingMiB(pid, apps));
      row.put("gpu_mib_after", Smi.gpuUsedMiB());
      long t4 = System.nanoTime();
      cuda.restore(pid, List.of());
      long t5 = System.nanoTime();
      expect(cuda, pid, CudaCheckpoint.State.LOCKED);
      long t6 = System.nanoTime();
      cuda.unlock(pid);
      long t7 = System.nanoTime();
      expect(cuda, pid, CudaCheckpoint.State.RUNNING);
      row.put("lock_s", (t1 - t0) / 1e9);
      row.put("checkpoint_s", (t3 - t2) / 1e9);
      row.put("restore_s", (t5 - t4) / 1e9);
      row.put("unlock_s", (t7 - t6) / 1e9);
      log(String.format(Locale.ROOT, "%s: lock %.3f s, checkpoint %.3f s, restore %.3f s, unlock %.3f s", h.name,
          (t1 - t0) / 1e9, (t3 - t2) / 1e9, (t5 - t4) / 1e9, (t7 - t6) / 1e9));
      releasedStep(h.name, row);
      step(h.name + " checkpoint round", true, "");
    } catch (IOException e) {
      step(h.name + " checkpoint round", false, e.getMessage());
      if (!recover(cuda, pid)) {
        row.put("verify", "not run: left " + stateOrError(cuda, pid));
        h.kill();
        return null;
      }
    }
    return verify(h, row, h.name + " verify");
  }

  /** The checkpointed process's memory must have left the GPU, where nvidia-smi can tell. */
  private void releasedStep(String name, Map<String, Object> row) {
    Long before = (Long) row.get("pid_mib_before");
    Long after = (Long) row.get("pid_mib_after");
    if (before == null) {
      log(name + ": nvidia-smi does not list this process (PIDs hidden?); GPU 0 used " + row.get("gpu_mib_before")
          + " MiB before the checkpoint, " + row.get("gpu_mib_after") + " MiB after");
      return;
    }
    boolean released = after != null && after <= Math.max(64, before / 50);
    step(name + " GPU memory released", released, "nvidia-smi: " + before + " MiB before the checkpoint, " + after
        + " MiB after (GPU 0: " + row.get("gpu_mib_before") + " -> " + row.get("gpu_mib_after") + " MiB)");
  }

  /** Sends "verify"; a holder that answers anything but OK fails the check. */
  private Holder verify(Holder h, Map<String, Object> row, String stepName) {
    try {
      String answer = h.ask("verify", Duration.ofSeconds(120));
      Map<String, String> r = kv(answer);
      row.put("verify", answer.split(" ", 2)[0]);
      row.put("wrong", Long.parseLong(r.getOrDefault("wrong", "-1")));
      step(stepName, answer.startsWith("OK"), answer);
      return h;
    } catch (IOException | NumberFormatException e) {
      row.put("verify", "ERROR");
      step(stepName, false, e.getMessage());
      h.kill();
      return null;
    }
  }

  /** Both holders at once through {@link GpuCheckpointer}, as a server's process tree is suspended and resumed. */
  private void tree(CudaCheckpoint cuda, List<Holder> holders, long bytes) {
    List<Long> pids = holders.stream().map(Holder::pid).toList();
    Map<String, Object> row = new LinkedHashMap<>();
    row.put("holder", "both (GpuCheckpointer)");
    row.put("bytes", bytes);
    rows.add(row);
    GpuCheckpointer g = new GpuCheckpointer(cuda, Duration.ofSeconds(10));
    try {
      Long gpuBefore = Smi.gpuUsedMiB();
      long t0 = System.nanoTime();
      g.suspend(pids);
      long t1 = System.nanoTime();
      Long gpuAfter = Smi.gpuUsedMiB();
      long t2 = System.nanoTime();
      g.resume(pids, List.of());
      long t3 = System.nanoTime();
      row.put("checkpoint_s", (t1 - t0) / 1e9); // lock and checkpoint of both: suspend does not split them
      row.put("restore_s", (t3 - t2) / 1e9); // restore and unlock of both
      row.put("gpu_mib_before", gpuBefore);
      row.put("gpu_mib_after", gpuAfter);
      step("both suspended and resumed", true, String.format(Locale.ROOT,
          "suspend %.3f s, resume %.3f s; GPU 0 %s -> %s MiB while suspended", (t1 - t0) / 1e9, (t3 - t2) / 1e9,
          gpuBefore, gpuAfter));
    } catch (IOException e) {
      step("both suspended and resumed", false, e.getMessage());
      pids.forEach(pid -> recover(cuda, pid));
    }
    StringBuilder verdicts = new StringBuilder();
    long wrong = 0;
    for (Holder h : holders) {
      Map<String, Object> r = new LinkedHashMap<>();
      verify(h, r, h.name + " verify after both");
      verdicts.append(verdicts.isEmpty() ? "" : "+").append(r.get("verify"));
      wrong += r.get("wrong") instanceof Long w ? Math.max(0, w) : 0;
    }
    row.put("verify", verdicts.toString());
    row.put("wrong", wrong);
  }

  /**
   * A lock that cannot settle must fail cleanly: the PyTorch holder runs a long kernel with a thread waiting on it,
   * and {@link GpuCheckpointer#suspend} with a 1 ms lock timeout must throw, leave it RUNNING, and usable.
   */
  private void lockFailure(CudaCheckpoint cuda, Holder h) {
    Map<String, Object> r = new LinkedHashMap<>();
    report.put("lock_failure", r);
    long pid = h.pid();
    try {
      String busy = h.ask("busy 6", Duration.ofSeconds(60));
      log("torch: " + busy);
      Thread.sleep(200); // the kernel is running and the thread is inside synchronize()
      GpuCheckpointer g = new GpuCheckpointer(cuda, Duration.ofMillis(1));
      long t0 = System.nanoTime();
      String thrown = null;
      try {
        g.suspend(List.of(pid));
      } catch (IOException e) {
        thrown = e.getMessage();
      }
      double seconds = (System.nanoTime() - t0) / 1e9;
      CudaCheckpoint.State after = cuda.state(pid);
      r.put("threw", thrown != null);
      r.put("message", thrown);
      r.put("seconds", seconds);
      r.put("state_after", after.name());
      if (thrown == null) {
        // the lock settled anyway (it waited for the kernel, or ignored the timeout): put the holder back
        log("torch: suspend with a 1 ms lock timeout succeeded after " + seconds + " s; resuming it");
        g.resume(List.of(pid), List.of());
      }
      step("lock timeout on a busy process", thrown != null && after == CudaCheckpoint.State.RUNNING,
          String.format(Locale.ROOT, "suspend %s after %.3f s (%s); state afterwards %s",
              thrown != null ? "threw" : "did NOT throw", seconds, thrown == null ? "-" : thrown, after));
    } catch (IOException e) {
      step("lock timeout on a busy process", false, e.getMessage());
      recover(cuda, pid);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      step("lock timeout on a busy process", false, "interrupted");
    }
    // waits for the kernel, then checks every value: the process must still be usable
    verify(h, r, "torch verify after the failed lock");
  }

  private static void expect(CudaCheckpoint cuda, long pid, CudaCheckpoint.State want) throws IOException {
    CudaCheckpoint.State s = cuda.state(pid);
    if (s != want) {
      throw new IOException("process " + pid + " is " + s + ", expected " + want);
    }
  }

  /** Brings a process back to RUNNING from wherever a failed step left it; false if it cannot be. */
  private static boolean recover(CudaCheckpoint cuda, long pid) {
    try {
      CudaCheckpoint.State s = cuda.state(pid);
      if (s == CudaCheckpoint.State.CHECKPOINTED) {
        cuda.restore(pid, List.of());
        s = cuda.state(pid);
      }
      if (s == CudaCheckpoint.State.LOCKED) {
        cuda.unlock(pid);
        s = cuda.state(pid);
      }
      log("process " + pid + " recovered to " + s);
      return s == CudaCheckpoint.State.RUNNING;
    } catch (IOException e) {
      log("process " + pid + " could not be recovered: " + e.getMessage());
      return false;
    }
  }

  private static String stateOrError(CudaCheckpoint cuda, long pid) {
    try {
      return cuda.state(pid).name();
    } catch (IOException e) {
      return "state unknown (" + e.getMessage() + ")";
    }
  }

  /** Prints the table and the goal, writes the JSON, and gives the exit status. */
  private int finish(Map<String, String> floor) {
    double floorGbps = floor == null ? Double.NaN : Double.parseDouble(floor.get("pinned_gbps"));
    boolean goalMissed = false;
    boolean anyWrong = false;
    for (Map<String, Object> row : rows) {
      long bytes = (Long) row.get("bytes");
      if (row.get("checkpoint_s") instanceof Double c) {
        row.put("checkpoint_gbps", bytes / c / 1e9);
      }
      if (row.get("restore_s") instanceof Double r) {
        row.put("restore_gbps", bytes / r / 1e9);
        if (!Double.isNaN(floorGbps)) {
          double ratio = bytes / r / 1e9 / floorGbps;
          row.put("restore_over_floor", ratio);
          goalMissed |= ratio < GOAL_RATIO;
        }
      }
      anyWrong |= row.get("wrong") instanceof Long w && w != 0;
    }
    System.out.println();
    System.out.println(Table.render(rows, floorGbps));
    if (report.get("criu") instanceof Map<?, ?> criu) {
      StringBuilder b = new StringBuilder("CRIU snapshot of a PyTorch holder:");
      criu.forEach((k, v) -> b.append(' ').append(k).append('=')
          .append(v instanceof Double d ? String.format(Locale.ROOT, "%.3f", d) : v));
      System.out.println(b);
      anyWrong |= criu.get("wrong") instanceof Long w && w != 0;
    }
    if (report.get("server") instanceof Map<?, ?> server) {
      System.out.println("GPU server (" + server.get("model") + "): cold boot " + server.get("cold_boot"));
      System.out.println("  CUDA restore: " + server.get("cuda_restore"));
      System.out.println("  CRIU restore: " + server.get("criu"));
      System.out.println(server.get("goal"));
      for (String round : List.of("cuda_restore", "criu")) {
        anyWrong |= server.get(round) instanceof Map<?, ?> m && m.get("wrong") instanceof Long w && w != 0;
      }
    }
    anyWrong |= report.get("lock_failure") instanceof Map<?, ?> lf && lf.get("wrong") instanceof Long w && w != 0;
    String goal;
    if (Double.isNaN(floorGbps) || rows.stream().noneMatch(r -> r.containsKey("restore_over_floor"))) {
      goal = "GOAL restore >= " + GOAL_RATIO + " x plain H2D copy: NOT MEASURED";
    } else {
      goal = "GOAL restore >= " + GOAL_RATIO + " x plain H2D copy (" + fmt(floorGbps) + " GB/s pinned): "
          + (goalMissed ? "NOT MET" : "MET");
    }
    System.out.println(goal);
    System.out.println("GOAL zero wrong values: " + (anyWrong ? "NOT MET" : "MET"));
    long failedSteps = steps.stream().filter(s -> !(Boolean) s.get("ok")).count();
    String result = failed || anyWrong ? "FAIL (" + failedSteps + " failed step(s))" : "PASS";
    System.out.println("RESULT: " + result);

    report.put("rows", rows);
    report.put("steps", steps);
    report.put("goal", goal);
    report.put("result", result);
    if (o.out() != null) {
      try {
        Files.createDirectories(o.out().toAbsolutePath().getParent());
        Files.writeString(o.out(), Json.write(report) + "\n");
        log("wrote " + o.out());
      } catch (IOException e) {
        log("could not write " + o.out() + ": " + e.getMessage());
      }
    }
    if (failed || anyWrong) {
      return 1;
    }
    return goalMissed && o.strictGoal() ? 3 : 0;
  }

  /** "WORD k=v k=v ..." to a map. */
  static Map<String, String> kv(String line) {
    Map<String, String> m = new LinkedHashMap<>();
    for (String part : line.split(" ")) {
      int eq = part.indexOf('=');
      if (eq > 0) {
        m.put(part.substring(0, eq), part.substring(eq + 1));
      }
    }
    return m;
  }

  static String fmt(double d) {
    return String.format(Locale.ROOT, "%.2f", d);
  }

  static String gib(long bytes) {
    return String.format(Locale.ROOT, "%.2f GiB", bytes / (double) (1L << 30));
  }
}
