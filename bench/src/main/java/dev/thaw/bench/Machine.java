package dev.thaw.bench;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/** What the bench runs on, and the system-wide knobs it needs: dropping the page cache, resource counters. */
final class Machine {
  private Machine() {}

  static int nproc() {
    return Runtime.getRuntime().availableProcessors();
  }

  static String cpuModel() {
    try {
      for (String line : Files.readAllLines(Path.of("/proc/cpuinfo"))) {
        if (line.startsWith("model name")) {
          return line.substring(line.indexOf(':') + 1).trim();
        }
      }
    } catch (IOException e) {
      // fall through
    }
    return System.getProperty("os.arch");
  }

  static long memTotalBytes() {
    try {
      for (String line : Files.readAllLines(Path.of("/proc/meminfo"))) {
        if (line.startsWith("MemTotal:")) {
          return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
        }
      }
    } catch (IOException | NumberFormatException e) {
      // fall through
    }
    return -1;
  }

  static String kernel() {
    return System.getProperty("os.name") + " " + System.getProperty("os.version");
  }

  /**
   * Writes dirty pages back and drops the page cache, dentries and inodes, so the next read comes from disk.
   *
   * @return false when that is not allowed (not root)
   */
  static boolean dropPageCache(PrintStream log) {
    try {
      Process sync = new ProcessBuilder("sync").inheritIO().start();
      sync.waitFor();
      Files.writeString(Path.of("/proc/sys/vm/drop_caches"), "3\n");
      return true;
    } catch (IOException e) {
      log.println("warning: cannot drop the page cache (" + e.getMessage() + "); 'cold' figures may come from memory");
      return false;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return false;
    }
  }

  /** Cumulative counters of the whole machine, to tell which resource a phase saturated. */
  record Counters(long nanos, long cpuBusy, long cpuIowait, long cpuTotal, long diskReadBytes, long diskWriteBytes,
      long loopbackBytes) {
    static Counters now() {
      long busy = 0;
      long iowait = 0;
      long total = 0;
      try {
        String cpu = Files.readAllLines(Path.of("/proc/stat")).getFirst();
        String[] f = cpu.trim().split("\\s+");
        // cpu user nice system idle iowait irq softirq steal
        for (int i = 1; i < Math.min(f.length, 9); i++) {
          long v = Long.parseLong(f[i]);
          total += v;
          if (i == 4) {
            continue;
          }
          if (i == 5) {
            iowait += v;
          } else {
            busy += v;
          }
        }
      } catch (IOException | RuntimeException e) {
        // leave zeros
      }
      long rd = 0;
      long wr = 0;
      try {
        for (String line : Files.readAllLines(Path.of("/proc/diskstats"))) {
          String[] f = line.trim().split("\\s+");
          String dev = f[2];
          // whole disks only (vda, sda, nvme0n1), not partitions, loop or ram devices
          if (dev.matches("(vd|sd|xvd|hd)[a-z]+|nvme\\d+n\\d+")) {
            rd += Long.parseLong(f[5]) * 512;
            wr += Long.parseLong(f[9]) * 512;
          }
        }
      } catch (IOException | RuntimeException e) {
        // leave zeros
      }
      long lo = 0;
      try {
        List<String> lines = Files.readAllLines(Path.of("/proc/net/dev"));
        for (String line : lines) {
          String t = line.trim();
          if (t.startsWith("lo:")) {
            lo = Long.parseLong(t.substring(3).trim().split("\\s+")[0]);
          }
        }
      } catch (IOException | RuntimeException e) {
        // leave zero
      }
      return new Counters(System.nanoTime(), busy, iowait, total, rd, wr, lo);
    }

    /** What happened between {@code before} and this sample. */
    Usage since(Counters before) {
      double secs = Math.max(1e-9, (nanos - before.nanos) / 1e9);
      long t = Math.max(1, cpuTotal - before.cpuTotal);
      return new Usage(
          100.0 * (cpuBusy - before.cpuBusy) / t,
          100.0 * (cpuIowait - before.cpuIowait) / t,
          (diskReadBytes - before.diskReadBytes) / 1e6 / secs,
          (diskWriteBytes - before.diskWriteBytes) / 1e6 / secs,
          (loopbackBytes - before.loopbackBytes) / 1e6 / secs);
    }
  }

  /** What a benchmark's JSON says about the machine it ran on. */
  static java.util.Map<String, Object> description() {
    java.util.Map<String, Object> machine = new java.util.LinkedHashMap<>();
    machine.put("nproc", nproc());
    machine.put("cpu_model", cpuModel());
    machine.put("mem_bytes", memTotalBytes());
    machine.put("kernel", kernel());
    machine.put("java", System.getProperty("java.version"));
    return machine;
  }

  /**
   * Machine-wide use during a phase.
   *
   * @param cpuBusyPct all cores together, 100 = every core busy (user+system+irq+softirq+steal)
   * @param iowaitPct share of CPU time idle while waiting on disk
   */
  record Usage(double cpuBusyPct, double iowaitPct, double diskReadMBps, double diskWriteMBps, double loopbackMBps) {
    /** Adds these figures to a phase's JSON object. */
    void putInto(java.util.Map<String, Object> m) {
      m.put("cpu_busy_pct", Math.round(cpuBusyPct));
      m.put("iowait_pct", Math.round(iowaitPct));
      m.put("disk_read_mbps", Math.round(diskReadMBps));
      m.put("disk_write_mbps", Math.round(diskWriteMBps));
      m.put("loopback_mbps", Math.round(loopbackMBps));
    }

    @Override
    public String toString() {
      return String.format("cpu %3.0f%% iowait %3.0f%% disk r %5.0f w %5.0f MB/s lo %5.0f MB/s",
          cpuBusyPct, iowaitPct, diskReadMBps, diskWriteMBps, loopbackMBps);
    }
  }
}
