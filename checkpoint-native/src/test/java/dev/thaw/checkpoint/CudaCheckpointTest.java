package dev.thaw.checkpoint;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The CUDA checkpoint code as far as a machine without a GPU can check it honestly: the argument structs match
 * cuda.h's layout, arguments are built right, the command fallback's command lines and state parsing, and the
 * rollback of a tree whose checkpoint fails part-way. The real calls run on the GPU machine
 * (checkpoint-native/src/gpu-test/run.sh).
 */
class CudaCheckpointTest {
  @Test
  void theArgumentStructsHaveCudaHsLayout() {
    assertThat(DriverCudaCheckpoint.LOCK_ARGS.byteSize()).isEqualTo(64);
    assertThat(DriverCudaCheckpoint.LOCK_ARGS.byteOffset(MemoryLayout.PathElement.groupElement("timeoutMs"))).isZero();
    assertThat(DriverCudaCheckpoint.LOCK_ARGS.byteOffset(MemoryLayout.PathElement.groupElement("reserved1"))).isEqualTo(8);
    assertThat(DriverCudaCheckpoint.RESERVED_ARGS.byteSize()).isEqualTo(64);
    assertThat(DriverCudaCheckpoint.RESTORE_ARGS.byteSize()).isEqualTo(64);
    assertThat(DriverCudaCheckpoint.RESTORE_ARGS.byteOffset(MemoryLayout.PathElement.groupElement("gpuPairsCount")))
        .isEqualTo(8);
    assertThat(DriverCudaCheckpoint.RESTORE_ARGS.byteOffset(MemoryLayout.PathElement.groupElement("reserved1")))
        .isEqualTo(56);
    assertThat(DriverCudaCheckpoint.GPU_PAIR.byteSize()).isEqualTo(32);
  }

  @Test
  void restoreArgumentsCarryTheGpuPairsAndTheirCountAndNothingElse() {
    byte[] a = uuid(1);
    byte[] b = uuid(2);
    byte[] c = uuid(3);
    byte[] d = uuid(4);
    try (Arena arena = Arena.ofConfined()) {
      MemorySegment none = DriverCudaCheckpoint.restoreArgs(arena, List.of());
      assertThat(none.toArray(ValueLayout.JAVA_BYTE)).containsOnly((byte) 0);

      MemorySegment args = DriverCudaCheckpoint.restoreArgs(arena,
          List.of(new CudaCheckpoint.GpuPair(a, b), new CudaCheckpoint.GpuPair(c, d)));
      assertThat(args.get(ValueLayout.JAVA_INT, 8)).isEqualTo(2);
      assertThat(args.asSlice(12).toArray(ValueLayout.JAVA_BYTE)).containsOnly((byte) 0);
      MemorySegment pairs = args.get(ValueLayout.ADDRESS, 0).reinterpret(64);
      assertThat(pairs.asSlice(0, 16).toArray(ValueLayout.JAVA_BYTE)).isEqualTo(a);
      assertThat(pairs.asSlice(16, 16).toArray(ValueLayout.JAVA_BYTE)).isEqualTo(b);
      assertThat(pairs.asSlice(32, 16).toArray(ValueLayout.JAVA_BYTE)).isEqualTo(c);
      assertThat(pairs.asSlice(48, 16).toArray(ValueLayout.JAVA_BYTE)).isEqualTo(d);
    }
    assertThatThrownBy(() -> new CudaCheckpoint.GpuPair(new byte[15], b)).hasMessageContaining("16 bytes");
  }

  @Test
  void processStatesMapAsCudaHNumbersThem() throws Exception {
    assertThat(DriverCudaCheckpoint.stateOf(0)).isEqualTo(CudaCheckpoint.State.RUNNING);
    assertThat(DriverCudaCheckpoint.stateOf(1)).isEqualTo(CudaCheckpoint.State.LOCKED);
    assertThat(DriverCudaCheckpoint.stateOf(2)).isEqualTo(CudaCheckpoint.State.CHECKPOINTED);
    assertThat(DriverCudaCheckpoint.stateOf(3)).isEqualTo(CudaCheckpoint.State.FAILED);
    assertThatThrownBy(() -> DriverCudaCheckpoint.stateOf(9)).hasMessageContaining("unknown CUprocessState 9");
  }

  @Test
  void theDriversApiIsBoundExactlyWhereNvidiasDriverIsInstalled() {
    // the GPU machines have driver 580 (with the API); the CPU machines have no libcuda at all
    boolean driver = Files.exists(Path.of("/usr/lib/x86_64-linux-gnu/libcuda.so.1"))
        || Files.exists(Path.of("/usr/lib64/libcuda.so.1"));
    assertThat(DriverCudaCheckpoint.load().isPresent()).isEqualTo(driver);
  }

  @Test
  void theCommandFallbackBuildsCudaCheckpointsCommandLinesAndReadsItsStates() throws Exception {
    CommandCudaCheckpoint c = new CommandCudaCheckpoint(Path.of("/opt/cuda-checkpoint"));
    assertThat(c.command("lock", 42, Duration.ofSeconds(5)))
        .containsExactly("/opt/cuda-checkpoint", "--action", "lock", "--pid", "42", "--timeout", "5000");
    assertThat(c.command("checkpoint", 42, null)).containsExactly("/opt/cuda-checkpoint", "--action", "checkpoint",
        "--pid", "42");
    assertThat(CommandCudaCheckpoint.parseState("checkpointed\n")).isEqualTo(CudaCheckpoint.State.CHECKPOINTED);
    assertThat(CommandCudaCheckpoint.parseThreadId("4243\n")).isEqualTo(4243);
    assertThatThrownBy(() -> CommandCudaCheckpoint.parseThreadId("CUDA_ERROR_NOT_SUPPORTED"))
        .hasMessageContaining("not a thread id");
    assertThatThrownBy(() -> CommandCudaCheckpoint.parseState("no such process"))
        .hasMessageContaining("not a process state");
    assertThatThrownBy(() -> c.restore(42, List.of(new CudaCheckpoint.GpuPair(uuid(1), uuid(2)))))
        .hasMessageContaining("cannot remap GPUs");
  }

  @Test
  void aTreeIsLockedThenCheckpointedInStepAndResumedAfterwards() throws Exception {
    Recording cuda = new Recording(-1, null);
    GpuCheckpointer g = new GpuCheckpointer(cuda, Duration.ofSeconds(10));
    g.suspend(List.of(10L, 11L));
    g.resume(List.of(10L, 11L), List.of());
    assertThat(cuda.calls).containsExactly("lock 10 10000", "lock 11 10000", "checkpoint 10", "checkpoint 11",
        "restore 10", "unlock 10", "restore 11", "unlock 11");
  }

  @Test
  void aCheckpointFailingPartWayLeavesEveryProcessRunningAndReportsTheCause() {
    Recording cuda = new Recording(12, "checkpoint");
    GpuCheckpointer g = new GpuCheckpointer(cuda, Duration.ofSeconds(10));
    assertThatThrownBy(() -> g.suspend(List.of(10L, 11L, 12L))).hasMessageContaining("checkpoint 12 refused");
    assertThat(cuda.calls).containsExactly("lock 10 10000", "lock 11 10000", "lock 12 10000", "checkpoint 10",
        "checkpoint 11", "checkpoint 12", "restore 11", "restore 10", "unlock 12", "unlock 11", "unlock 10");
  }

  @Test
  void aLockTimingOutUnlocksTheOthers() {
    Recording cuda = new Recording(11, "lock");
    GpuCheckpointer g = new GpuCheckpointer(cuda, Duration.ofMillis(500));
    assertThatThrownBy(() -> g.suspend(List.of(10L, 11L))).hasMessageContaining("lock 11 refused");
    assertThat(cuda.calls).containsExactly("lock 10 500", "lock 11 500", "unlock 10");
  }

  private static byte[] uuid(int seed) {
    byte[] b = new byte[16];
    for (int i = 0; i < 16; i++) {
      b[i] = (byte) (seed * 16 + i);
    }
    return b;
  }

  /**
   * The checkpointer's own logic is what is under test here: this records the calls it makes and refuses one, as
   * the driver refuses a step (a lock timing out, a checkpoint out of memory).
   */
  private static final class Recording implements CudaCheckpoint {
    final List<String> calls = new ArrayList<>();
    final long failPid;
    final String failStep;

    Recording(long failPid, String failStep) {
      this.failPid = failPid;
      this.failStep = failStep;
    }

    private void step(String name, long pid, String extra) throws IOException {
      calls.add(name + " " + pid + (extra == null ? "" : " " + extra));
      if (pid == failPid && name.equals(failStep)) {
        throw new IOException(name + " " + pid + " refused");
      }
    }

    @Override
    public void lock(long pid, Duration timeout) throws IOException {
      step("lock", pid, Long.toString(timeout.toMillis()));
    }

    @Override
    public void checkpoint(long pid) throws IOException {
      step("checkpoint", pid, null);
    }

    @Override
    public void restore(long pid, List<GpuPair> pairs) throws IOException {
      step("restore", pid, null);
    }

    @Override
    public void unlock(long pid) throws IOException {
      step("unlock", pid, null);
    }

    @Override
    public State state(long pid) {
      return State.RUNNING;
    }

    @Override
    public long restoreThreadId(long pid) {
      return pid + 1; // asked before each restore; not one of the steps recorded
    }

    @Override
    public String describe() {
      return "recording";
    }
  }
}
