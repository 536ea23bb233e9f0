package dev.thaw.checkpoint.gputest;

import static jcuda.driver.JCudaDriver.cuCtxCreate;
import static jcuda.driver.JCudaDriver.cuCtxSetCurrent;
import static jcuda.driver.JCudaDriver.cuDevicePrimaryCtxRetain;
import static jcuda.driver.JCudaDriver.cuDeviceGet;
import static jcuda.driver.JCudaDriver.cuDeviceGetName;
import static jcuda.driver.JCudaDriver.cuDriverGetVersion;
import static jcuda.driver.JCudaDriver.cuInit;
import static jcuda.driver.JCudaDriver.cuMemAlloc;
import static jcuda.driver.JCudaDriver.cuMemcpyDtoH;
import static jcuda.driver.JCudaDriver.cuMemcpyHtoD;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.LongBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Locale;
import jcuda.Pointer;
import jcuda.driver.CUcontext;
import jcuda.driver.CUdevice;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.JCudaDriver;

/**
 * A Java process that holds known data on GPU 0 through JCuda's driver API, for the CUDA checkpoint check: a second
 * kind of CUDA process (a JVM, no PyTorch, its own context made with cuCtxCreate, one big cuMemAlloc) whose memory a
 * checkpoint must carry as faithfully as PyTorch's.
 *
 * <p>It allocates {@code GPU_TEST_GIB} GiB (default 4), fills it through a 64 MiB host buffer with a pattern where
 * every 8-byte word is a hash of its index (so a lost, swapped or shifted page shows), prints
 * {@code READY bytes=N ...}, then answers stdin lines: {@code verify} ({@code OK wrong=0 ...} or
 * {@code FAIL wrong=N ...}, counting wrong words) and {@code quit}. It halts when stdin closes or after
 * {@code GPU_TEST_HOLDER_MAX_S} seconds, so it never outlives a failed check.
 */
public final class JcudaHolder {
  private static final int CHUNK = 64 << 20;
  private static final long SEED = 0x7468617767707574L;

  private JcudaHolder() {}

  /** splitmix64 of the word's index: cheap, and no two neighbouring words alike. */
  static long pattern(long index) {
    long z = index + SEED + 0x9E3779B97F4A7C15L;
    z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
    z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
    return z ^ (z >>> 31);
  }

  public static void main(String[] args) throws IOException {
    double gib = Double.parseDouble(System.getenv().getOrDefault("GPU_TEST_GIB", "4"));
    long maxSeconds = Long.parseLong(System.getenv().getOrDefault("GPU_TEST_HOLDER_MAX_S", "600"));
    Thread watchdog = new Thread(() -> {
      try {
        Thread.sleep(maxSeconds * 1000);
      } catch (InterruptedException e) {
        return;
      }
      System.err.println("[jcuda_holder] still running after " + maxSeconds + " s: halting");
      Runtime.getRuntime().halt(3);
    });
    watchdog.setDaemon(true);
    watchdog.start();

    long bytes = Math.max(CHUNK, (long) (gib * (1L << 30)) / CHUNK * CHUNK);
    try {
      JCudaDriver.setExceptionsEnabled(true); // every failing call throws CudaException naming its CUresult
      cuInit(0);
      CUdevice device = new CUdevice();
      cuDeviceGet(device, 0);
      byte[] name = new byte[256];
      cuDeviceGetName(name, name.length, device);
      int[] driver = new int[1];
      cuDriverGetVersion(driver);
      CUcontext context = new CUcontext();
      if ("1".equals(System.getenv("GPU_TEST_JCUDA_PRIMARY_CTX"))) {
        // for a driver that dropped the cuCtxCreate_v2 symbol JCuda 12.6 was built against (run.sh checks)
        cuDevicePrimaryCtxRetain(context, device);
        cuCtxSetCurrent(context);
      } else {
        cuCtxCreate(context, 0, device); // current on this thread, the only one making CUDA calls
      }
      CUdeviceptr memory = new CUdeviceptr();
      cuMemAlloc(memory, bytes);

      ByteBuffer host = ByteBuffer.allocateDirect(CHUNK).order(ByteOrder.nativeOrder());
      long copyNanos = 0;
      long start = System.nanoTime();
      for (long off = 0; off < bytes; off += CHUNK) {
        fill(host.asLongBuffer(), off / Long.BYTES);
        long t = System.nanoTime();
        cuMemcpyHtoD(memory.withByteOffset(off), Pointer.to(host), CHUNK);
        copyNanos += System.nanoTime() - t;
      }
      double fillSeconds = (System.nanoTime() - start) / 1e9;
      say(String.format(Locale.ROOT, "READY bytes=%d fill_s=%.2f pageable_h2d_gbps=%.2f device=%s driver=%d pid=%d",
          bytes, fillSeconds, bytes / (copyNanos / 1e9) / 1e9, cString(name).replace(' ', '_'), driver[0],
          ProcessHandle.current().pid()));

      BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
      for (String line; (line = in.readLine()) != null; ) {
        switch (line.strip()) {
          case "verify" -> say(verify(memory, bytes, host));
          case "quit" -> {
            say("BYE");
            Runtime.getRuntime().halt(0); // no CUDA teardown needed: the driver frees a dead process's memory
          }
          case "" -> { }
          default -> say("ERROR unknown command '" + line.strip() + "'");
        }
      }
      System.err.println("[jcuda_holder] stdin closed: halting");
      Runtime.getRuntime().halt(0);
    } catch (RuntimeException | LinkageError e) {
      // CudaException, or the native library missing: one line for the driver, the trace for the log
      String first = String.valueOf(e.getMessage()).lines().findFirst().orElse("");
      say("ERROR " + e.getClass().getSimpleName() + ": " + first);
      e.printStackTrace();
      Runtime.getRuntime().halt(2);
    }
  }

  private static void fill(LongBuffer words, long firstIndex) {
    for (int i = 0; i < words.capacity(); i++) {
      words.put(i, pattern(firstIndex + i));
    }
  }

  /** Copies every chunk back and counts the words that are not what was written. */
  static String verify(CUdeviceptr memory, long bytes, ByteBuffer host) {
    long wrong = 0;
    long firstWrongAt = -1;
    LongBuffer words = host.asLongBuffer();
    for (long off = 0; off < bytes; off += CHUNK) {
      cuMemcpyDtoH(Pointer.to(host), memory.withByteOffset(off), CHUNK);
      long first = off / Long.BYTES;
      for (int i = 0; i < words.capacity(); i++) {
        if (words.get(i) != pattern(first + i)) {
          if (firstWrongAt < 0) {
            firstWrongAt = (first + i) * Long.BYTES;
          }
          wrong++;
        }
      }
    }
    return (wrong == 0 ? "OK" : "FAIL") + " wrong=" + wrong + " checked=" + bytes / Long.BYTES
        + (firstWrongAt >= 0 ? " first_wrong_byte=" + firstWrongAt : "");
  }

  private static String cString(byte[] b) {
    int n = 0;
    while (n < b.length && b[n] != 0) {
      n++;
    }
    return new String(b, 0, n, StandardCharsets.UTF_8);
  }

  private static void say(String line) {
    System.out.println(line);
    System.out.flush();
  }
}
