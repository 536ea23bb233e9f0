package dev.thaw.checkpoint.gputest;

import dev.thaw.checkpoint.Criu;
import dev.thaw.checkpoint.CriuException;
import dev.thaw.checkpoint.CudaCheckpoint;
import dev.thaw.checkpoint.GpuCheckpointer;
import dev.thaw.checkpoint.PidNamespaceProcess;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.ConnectException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A GPU inference server's cold start against its restore: {@code gpu_server.py} serves a transformers causal LM
 * (random bf16 weights written as safetensors on this machine, no download), and each start is timed from exec (or
 * from the start of the restore) to the first generated token over HTTP:
 *
 * <ol>
 *   <li><b>cold boot</b>, page cache dropped first: import torch and transformers, load the weights to the GPU, first
 *       forward. Its 32 greedy tokens are the reference every later answer must equal;
 *   <li><b>CUDA restore</b> of that warm server through {@link GpuCheckpointer}: its GPU memory goes to the host
 *       (lock, checkpoint; the GPU must be seen freed), then comes back (restore, unlock) and it answers;
 *   <li><b>CRIU restore</b>: a second server, booted again (page cache warm), suspended through the CUDA binding,
 *       dumped by {@link Criu} (which kills it), page cache dropped, restored by CRIU, resumed, and asked.
 * </ol>
 *
 * Every answer is compared token for token with the reference. Like {@link CriuRound}, a CRIU that cannot run here is
 * reported without failing the check unless {@code GPU_TEST_CRIU_REQUIRED=1}; once a process is restored, a failed
 * call or a different token fails it.
 */
final class ServerRound {
  /** A fixed prompt: token ids below the model's vocabulary of 32000. */
  static final List<Integer> PROMPT = List.of(1, 450, 4996, 17354, 1701, 29916, 432, 17204, 975, 278, 17366, 11203,
      29889, 306, 763);
  static final int NEW_TOKENS = 32;
  static final double GOAL_RATIO = 10.0;
  private static final Pattern TOKENS = Pattern.compile("\"tokens\":\\s*\\[([^\\]]*)\\]");
  private static final Pattern TIMELINE = Pattern.compile("\"timeline\":\\s*\\{([^}]*)\\}");
  private static final Pattern PAIR = Pattern.compile("\"(\\w+)\":\\s*([-0-9.eE]+)");

  private final CudaCheckpoint cuda;
  private final GpuCheck.Options o;
  private final GpuCheck.Steps steps;
  private final Map<String, Object> r = new LinkedHashMap<>();
  private final boolean criuRequired = "1".equals(System.getenv("GPU_TEST_CRIU_REQUIRED"));
  private Path work;
  private List<Integer> reference;

  private ServerRound(CudaCheckpoint cuda, GpuCheck.Options o, GpuCheck.Steps steps) {
    this.cuda = cuda;
    this.o = o;
    this.steps = steps;
  }

  static Map<String, Object> run(CudaCheckpoint cuda, GpuCheck.Options o, GpuCheck.Steps steps) {
    ServerRound round = new ServerRound(cuda, o, steps);
    try {
      round.run();
    } catch (IOException | RuntimeException e) {
      round.r.putIfAbsent("status", "failed: " + e.getMessage());
      steps.step("server round", false, String.valueOf(e.getMessage()));
    } finally {
      if (round.work != null) {
        CriuRound.delete(round.work); // the model and the images: GiBs
      }
    }
    round.summarise();
    return round.r;
  }

  private void run() throws IOException {
    Path base = Path.of(System.getenv().getOrDefault("GPU_TEST_SERVER_DIR", System.getProperty("java.io.tmpdir")));
    work = Files.createTempDirectory(base, "thaw-gpu-server-");
    r.put("work_dir", work + " (" + Files.getFileStore(work).type() + ")");
    Path model = work.resolve("model");
    makeModel(model);

    // 1. the cold boot, with the weights off the page cache as on a node that has not read them yet
    r.put("page_cache_dropped", dropPageCache());
    Server cold = Server.boot(o, model, work.resolve("cold"));
    r.put("cold_boot", cold.started);
    reference = cold.generate(NEW_TOKENS).tokens();
    r.put("reference_tokens", reference.toString());
    boolean firstMatches = cold.firstToken == reference.getFirst();
    steps.step("server cold boot", firstMatches, String.format(Locale.ROOT,
        "exec to first token %.2f s (%s); %d greedy tokens %s", cold.firstTokenSeconds, cold.timeline, NEW_TOKENS,
        firstMatches ? "start with the first token" : "do NOT start with the first token " + cold.firstToken));

    // 2. the CUDA checkpoint binding alone: the process stays, its GPU memory leaves and comes back
    try {
      cudaRound(cold);
    } finally {
      cold.close();
    }

    // 3. a full snapshot: CRIU over the CUDA binding
    if (!o.criu()) {
      r.put("criu", Map.of("status", "skipped (--skip criu)"));
    } else {
      r.put("criu", criuRound(model));
    }
  }

  private void makeModel(Path model) throws IOException {
    int layers = Integer.parseInt(System.getenv().getOrDefault("GPU_TEST_SERVER_LAYERS", "24"));
    List<String> cmd = List.of(o.python(), serverScript().toString(), "make-model", model.toString(), "--layers",
        Integer.toString(layers), "--max-seconds", "300");
    GpuCheck.log("server: making the model: " + String.join(" ", cmd));
    Path log = work.resolve("make-model.log");
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
    GpuCheck.STRAYS.add(p.pid());
    try {
      if (!p.waitFor(300, TimeUnit.SECONDS)) {
        p.destroyForcibly();
        throw new IOException("making the model took over 300 s" + tail(log));
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IOException("interrupted while making the model", e);
    } finally {
      GpuCheck.STRAYS.remove(p.pid());
    }
    String line = Files.readAllLines(log).stream().filter(l -> l.startsWith("MODEL ")).findFirst()
        .orElseThrow(() -> new IOException("gpu_server.py make-model exited with " + p.exitValue()
            + " and no MODEL line" + tail(log)));
    Map<String, String> m = GpuCheck.kv(line);
    Map<String, Object> info = new LinkedHashMap<>();
    info.put("bytes", Long.parseLong(m.get("bytes")));
    info.put("params", Long.parseLong(m.get("params")));
    info.put("layers", layers);
    info.put("files", Integer.parseInt(m.get("files")));
    info.put("make_s", Double.parseDouble(m.get("seconds")));
    info.put("torch", m.get("torch"));
    info.put("transformers", m.get("transformers"));
    r.put("model", info);
    GpuCheck.log("server: " + line);
  }

  private Path serverScript() {
    return o.torchHolder().toAbsolutePath().resolveSibling("gpu_server.py");
  }

  private void cudaRound(Server s) throws IOException {
    Map<String, Object> c = new LinkedHashMap<>();
    r.put("cuda_restore", c);
    GpuCheckpointer g = new GpuCheckpointer(cuda, Duration.ofSeconds(10));
    Map<Long, Long> apps = Smi.computeApps();
    Long pidBefore = Smi.listedMiB(s.pid(), apps);
    Long gpuBefore = Smi.gpuUsedMiB();
    long t0 = System.nanoTime();
    try {
      g.suspend(List.of(s.pid()));
    } catch (IOException e) {
      c.put("status", "suspend failed: " + e.getMessage());
      steps.step("server CUDA checkpoint", false, "suspend failed: " + e.getMessage());
      return;
    }
    c.put("suspend_s", seconds(t0));
    apps = Smi.computeApps();
    Long pidAfter = Smi.remainingMiB(s.pid(), apps);
    Long gpuAfter = Smi.gpuUsedMiB();
    c.put("pid_mib_before", pidBefore);
    c.put("pid_mib_after", pidAfter);
    c.put("gpu_mib_before", gpuBefore);
    c.put("gpu_mib_after", gpuAfter);
    long modelMiB = (Long) ((Map<?, ?>) r.get("model")).get("bytes") >> 20;
    boolean released = pidBefore != null
        ? pidAfter != null && pidAfter <= Math.max(64, pidBefore / 50)
        : gpuBefore != null && gpuAfter != null && gpuBefore - gpuAfter >= modelMiB;
    steps.step("server GPU memory released", released, "nvidia-smi: process " + pidBefore + " -> " + pidAfter
        + " MiB, GPU 0 " + gpuBefore + " -> " + gpuAfter + " MiB (weights " + modelMiB + " MiB)");

    long t1 = System.nanoTime();
    g.resume(List.of(s.pid()), List.of());
    long t2 = System.nanoTime();
    Answer first = s.generate(1);
    long t3 = System.nanoTime();
    c.put("resume_s", (t2 - t1) / 1e9);
    c.put("request_s", (t3 - t2) / 1e9);
    c.put("restore_to_first_token_s", (t3 - t1) / 1e9);
    compare("server after CUDA restore", s, first, c);
  }

  private Map<String, Object> criuRound(Path model) throws IOException {
    Map<String, Object> c = new LinkedHashMap<>();
    Criu criu;
    try {
      criu = Criu.locate();
      criu.check();
    } catch (CriuException e) {
      c.put("status", "unavailable: " + e.getMessage());
      GpuCheck.log("server: CRIU cannot run here: " + e.getMessage());
      if (criuRequired) {
        steps.step("server CRIU restore", false, "CRIU cannot run here: " + e.getMessage());
      }
      return c;
    }
    Server s = Server.boot(o, model, work.resolve("criu"));
    long restored = -1;
    try {
      c.put("boot", s.started);
      c.put("boot_first_token_s", s.firstTokenSeconds);
      Answer warm = s.generate(NEW_TOKENS);
      boolean same = warm.tokens().equals(reference);
      steps.step("server second boot answers as the first", same, same ? "" : warm.tokens() + " vs " + reference);
      GpuCheckpointer g = new GpuCheckpointer(cuda, Duration.ofSeconds(10));
      long t0 = System.nanoTime();
      g.suspend(List.of(s.pid()));
      c.put("cuda_suspend_s", seconds(t0));
      Path images = work.resolve("images");
      long t1 = System.nanoTime();
      try {
        criu.dump(s.pid(), images, Criu.Options.SERVER_ELSEWHERE, false);
      } catch (CriuException e) {
        c.put("status", "criu failed at dump: " + e.getMessage());
        GpuCheck.log("server: CRIU dump failed; resuming the server: " + e.getMessage());
        g.resume(List.of(s.pid()), List.of());
        compare("server after the failed dump", s, s.generate(1), new LinkedHashMap<>());
        if (criuRequired) {
          steps.step("server CRIU restore", false, "dump failed: " + e.getMessage());
        }
        return c;
      }
      c.put("dump_s", seconds(t1));
      c.put("image_bytes", CriuRound.size(images));
      c.put("images_fs", Files.getFileStore(images).type());
      s.proc.close(); // CRIU killed it; end its unshare too and wait until its PIDs are free
      GpuCheck.STRAYS.remove(s.pid());
      c.put("page_cache_dropped", dropPageCache());
      restored = restore(criu, g, s, images, c, "server after CRIU restore");
      if (restored < 0) {
        return c;
      }
      // the same images again, now in the page cache: what of a restore is the disk's
      ProcessHandle.of(restored).ifPresent(ProcessHandle::destroyForcibly);
      PidNamespaceProcess.awaitGone(restored, 10_000);
      GpuCheck.STRAYS.remove(restored);
      Map<String, Object> again = new LinkedHashMap<>();
      c.put("again_images_in_page_cache", again);
      restored = restore(criu, g, s, images, again, "server after a second CRIU restore (images in the page cache)");
      c.putIfAbsent("status", "passed");
    } finally {
      s.close();
      if (restored > 0) {
        ProcessHandle.of(restored).ifPresent(ProcessHandle::destroyForcibly);
        PidNamespaceProcess.awaitGone(restored, 10_000);
        GpuCheck.STRAYS.remove(restored);
      }
    }
    return c;
  }

  /**
   * One CRIU restore of the dumped server, resumed through the CUDA binding and asked for its first token, each step
   * timed into {@code into}; returns the restored host PID, or -1 when CRIU failed (reported, failing the check only
   * with {@code GPU_TEST_CRIU_REQUIRED=1}).
   */
  private long restore(Criu criu, GpuCheckpointer g, Server s, Path images, Map<String, Object> into, String name)
      throws IOException {
    long t0 = System.nanoTime();
    long restored;
    try {
      restored = criu.restore(images, Criu.Options.SERVER_ELSEWHERE);
    } catch (CriuException e) {
      into.put("status", "criu failed at restore: " + e.getMessage());
      GpuCheck.log("server: CRIU restore failed: " + e.getMessage());
      if (criuRequired) {
        steps.step(name, false, "restore failed: " + e.getMessage());
      }
      return -1;
    }
    long t1 = System.nanoTime();
    GpuCheck.STRAYS.add(restored);
    into.put("state_after_criu_restore", cuda.state(restored).name());
    g.resume(List.of(restored), List.of());
    long t2 = System.nanoTime();
    Server back = s.restoredAs(restored);
    Answer first = back.generate(1);
    long t3 = System.nanoTime();
    into.put("criu_restore_s", (t1 - t0) / 1e9);
    into.put("cuda_resume_s", (t2 - t1) / 1e9);
    into.put("request_s", (t3 - t2) / 1e9);
    into.put("restore_to_first_token_s", (t3 - t0) / 1e9);
    compare(name, back, first, into);
    return restored;
  }

  /** The first token after a restore, then a whole generation, against the cold boot's answer. */
  private void compare(String name, Server s, Answer first, Map<String, Object> into) throws IOException {
    List<Integer> all = s.generate(NEW_TOKENS).tokens();
    into.put("tokens", all.toString());
    int differing = 0;
    for (int i = 0; i < NEW_TOKENS; i++) {
      differing += i < all.size() && all.get(i).equals(reference.get(i)) ? 0 : 1;
    }
    boolean ok = differing == 0 && first.tokens().getFirst().equals(reference.getFirst());
    into.put("wrong", (long) differing + (first.tokens().getFirst().equals(reference.getFirst()) ? 0 : 1));
    into.putIfAbsent("status", ok ? "passed" : "failed");
    steps.step(name + " answers token for token", ok, String.format(Locale.ROOT,
        "first token %d (cold boot %d); %d of %d tokens differ%s", first.tokens().getFirst(), reference.getFirst(),
        differing, NEW_TOKENS, into.containsKey("restore_to_first_token_s")
            ? String.format(Locale.ROOT, "; restore to first token %.3f s", into.get("restore_to_first_token_s"))
            : ""));
  }

  /** The ratios against the cold boot, and the goal line. */
  private void summarise() {
    if (!(r.get("cold_boot") instanceof Map<?, ?> cold) || !(cold.get("first_token_s") instanceof Double coldS)) {
      r.put("goal", "GOAL cold boot / restore >= " + GOAL_RATIO + " x: NOT MEASURED");
      return;
    }
    List<String> parts = new ArrayList<>();
    boolean met = false;
    for (String key : List.of("cuda_restore", "criu")) {
      if (r.get(key) instanceof Map<?, ?> m && m.get("restore_to_first_token_s") instanceof Double s
          && "passed".equals(m.get("status"))) {
        double ratio = coldS / s;
        @SuppressWarnings("unchecked")
        Map<String, Object> mm = (Map<String, Object>) m;
        mm.put("cold_over_restore", ratio);
        parts.add(String.format(Locale.ROOT, "%s %.1f x (%.2f s / %.3f s)", key.equals("criu") ? "CRIU+CUDA"
            : "CUDA only", ratio, coldS, s));
        met |= key.equals("criu") && ratio >= GOAL_RATIO;
      }
    }
    String goal = "GOAL cold boot / restore >= " + GOAL_RATIO + " x (full snapshot, CRIU): "
        + (parts.isEmpty() ? "NOT MEASURED" : (met ? "MET" : "NOT MET") + "; " + String.join(", ", parts));
    r.put("goal", goal);
    GpuCheck.log("server: " + goal);
  }

  /** {@code sync}, then {@code echo 3 > /proc/sys/vm/drop_caches}; false where that is not allowed. */
  static boolean dropPageCache() {
    try {
      new ProcessBuilder("sync").start().waitFor(120, TimeUnit.SECONDS);
      Files.writeString(Path.of("/proc/sys/vm/drop_caches"), "3\n");
      return true;
    } catch (IOException e) {
      GpuCheck.log("server: cannot drop the page cache: " + e.getMessage());
      return false;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return false;
    }
  }

  private static double seconds(long since) {
    return (System.nanoTime() - since) / 1e9;
  }

  static String tail(Path log) {
    try {
      List<String> lines = Files.readAllLines(log);
      return "; its output ends: " + String.join(" | ", lines.subList(Math.max(0, lines.size() - 8), lines.size()));
    } catch (IOException e) {
      return "";
    }
  }

  record Answer(List<Integer> tokens, String body) {}

  /** One gpu_server.py process in a PID namespace of its own, spoken to over HTTP/1.0 on a loopback port. */
  static final class Server implements AutoCloseable {
    final PidNamespaceProcess proc;
    final long pid;
    final int port;
    final Path dir;
    final Map<String, Object> started = new LinkedHashMap<>();
    double firstTokenSeconds;
    int firstToken;
    String timeline = "";

    private Server(PidNamespaceProcess proc, long pid, int port, Path dir) {
      this.proc = proc;
      this.pid = pid;
      this.port = port;
      this.dir = dir;
    }

    long pid() {
      return pid;
    }

    /** The same server after a CRIU restore: the same port and logs, another host PID. */
    Server restoredAs(long newPid) {
      return new Server(proc, newPid, port, dir);
    }

    /**
     * Starts the server and asks for one token as soon as it accepts: the time from exec to that answer is its
     * cold start.
     */
    static Server boot(GpuCheck.Options o, Path model, Path dir) throws IOException {
      Files.createDirectories(dir);
      int port;
      try (ServerSocket free = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
        port = free.getLocalPort();
      }
      Path out = dir.resolve("server.out");
      Path err = dir.resolve("server.err");
      long epochMs = System.currentTimeMillis();
      long t0 = System.nanoTime();
      PidNamespaceProcess p = PidNamespaceProcess.start(List.of(o.python(),
          o.torchHolder().toAbsolutePath().resolveSibling("gpu_server.py").toString(), "serve", model.toString(),
          "--port", Integer.toString(port), "--exec-epoch-ms", Long.toString(epochMs), "--max-seconds", "420"), out, err);
      Server s = new Server(p, p.pid(), port, dir);
      GpuCheck.STRAYS.add(p.pid());
      GpuCheck.log("server: started pid " + p.pid() + " on port " + port);
      long deadline = t0 + TimeUnit.SECONDS.toNanos(300);
      Answer first;
      while (true) {
        try {
          first = s.generate(1);
          break;
        } catch (ConnectException notYet) {
          if (!p.isAlive()) {
            s.close();
            throw new IOException("the server (pid " + s.pid + ") exited before answering" + tail(err));
          }
          if (System.nanoTime() > deadline) {
            s.close();
            throw new IOException("the server (pid " + s.pid + ") did not answer within 300 s" + tail(err));
          }
          try {
            Thread.sleep(10);
          } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            s.close();
            throw new IOException("interrupted while the server started", e);
          }
        }
      }
      s.firstTokenSeconds = (System.nanoTime() - t0) / 1e9;
      s.firstToken = first.tokens().getFirst();
      s.started.put("first_token_s", s.firstTokenSeconds);
      Matcher m = TIMELINE.matcher(first.body());
      if (m.find()) {
        Matcher pair = PAIR.matcher(m.group(1));
        StringBuilder b = new StringBuilder();
        while (pair.find()) {
          s.started.put(pair.group(1) + "_s", Double.parseDouble(pair.group(2)));
          b.append(b.isEmpty() ? "" : ", ").append(pair.group(1)).append(' ').append(pair.group(2));
        }
        s.timeline = b.toString();
      }
      GpuCheck.log(String.format(Locale.ROOT, "server: pid %d first token after %.2f s: %s", s.pid,
          s.firstTokenSeconds, s.timeline));
      return s;
    }

    Answer generate(int n) throws IOException {
      String body = "{\"input_ids\": " + PROMPT + ", \"max_new_tokens\": " + n + "}";
      String answer = post("/generate", body);
      Matcher m = TOKENS.matcher(answer);
      if (!m.find()) {
        throw new IOException("the server's answer holds no tokens: " + answer);
      }
      List<Integer> tokens = Arrays.stream(m.group(1).split(",")).map(String::strip).filter(t -> !t.isEmpty())
          .map(Integer::valueOf).toList();
      if (tokens.size() != n) {
        throw new IOException("asked for " + n + " tokens, got " + tokens.size() + ": " + answer);
      }
      return new Answer(tokens, answer);
    }

    /** One HTTP/1.0 request on a fresh connection; a refused connection is thrown as is (the server is not up). */
    private String post(String path, String json) throws IOException {
      byte[] body = json.getBytes(StandardCharsets.UTF_8);
      try (Socket socket = new Socket()) {
        socket.connect(new InetSocketAddress(InetAddress.getLoopbackAddress(), port), 2000);
        socket.setSoTimeout(120_000);
        OutputStream out = socket.getOutputStream();
        out.write(("POST " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + "Content-Length: " + body.length + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
        out.write(body);
        out.flush();
        InputStream in = socket.getInputStream();
        String response = new String(in.readAllBytes(), StandardCharsets.UTF_8);
        int split = response.indexOf("\r\n\r\n");
        String status = response.lines().findFirst().orElse("");
        if (split < 0 || !status.matches("HTTP/1\\.[01] 200.*")) {
          throw new IOException("POST " + path + " to the server (pid " + pid + ") answered '" + status + "': "
              + (split < 0 ? response : response.substring(split + 4)));
        }
        return response.substring(split + 4);
      }
    }

    @Override
    public void close() {
      proc.close();
      GpuCheck.STRAYS.remove(pid);
    }
  }
}
