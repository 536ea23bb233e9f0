package dev.thaw.bench;

import static org.assertj.core.api.Assertions.assertThat;

import java.lang.management.ManagementFactory;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

class MountProcessTest {
  @Test
  void threadCpuIsSummedByThreadNameWithoutItsNumber() throws Exception {
    CountDownLatch spun = new CountDownLatch(1);
    CountDownLatch sampled = new CountDownLatch(1);
    Thread busy = Thread.ofPlatform().name("spinner-7").start(() -> {
      var threads = ManagementFactory.getThreadMXBean();
      while (threads.getCurrentThreadCpuTime() < 300_000_000L) { // 0.3 CPU-s, however loaded the machine
        Thread.onSpinWait();
      }
      spun.countDown();
      try {
        sampled.await(); // alive until sampled: /proc lists live threads only
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    });
    assertThat(spun.await(60, TimeUnit.SECONDS)).isTrue();
    Map<String, double[]> during = MountProcess.threadCpuSeconds(ProcessHandle.current().pid());
    sampled.countDown();
    busy.join();

    assertThat(during).containsKey("spinner").doesNotContainKey("spinner-7");
    assertThat(cpu(during, "spinner")).isGreaterThanOrEqualTo(0.25);
    assertThat(MountProcess.threadCpuSeconds(Long.MAX_VALUE)).as("a process that is not there").isEmpty();
  }

  private static double cpu(Map<String, double[]> byName, String name) {
    double[] t = byName.get(name);
    return t == null ? 0 : t[0] + t[1];
  }
}
