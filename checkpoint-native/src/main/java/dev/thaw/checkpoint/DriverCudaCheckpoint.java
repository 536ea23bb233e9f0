package dev.thaw.checkpoint;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.time.Duration;
import java.util.List;
import java.util.Optional;

/**
 * {@link CudaCheckpoint} through libcuda's {@code cuCheckpointProcess*} functions, called with the Foreign Function
 * &amp; Memory API. The argument structs are 64 bytes each, laid out as cuda.h declares them (reserved fields zero).
 */
final class DriverCudaCheckpoint implements CudaCheckpoint {
  /** {@code CUcheckpointLockArgs}: unsigned timeoutMs, unsigned reserved0, cuuint64_t reserved1[7]. */
  static final MemoryLayout LOCK_ARGS = MemoryLayout.structLayout(ValueLayout.JAVA_INT.withName("timeoutMs"),
      ValueLayout.JAVA_INT.withName("reserved0"), MemoryLayout.sequenceLayout(7, ValueLayout.JAVA_LONG).withName("reserved1"));
  /** {@code CUcheckpointCheckpointArgs} and {@code CUcheckpointUnlockArgs}: cuuint64_t reserved[8]. */
  static final MemoryLayout RESERVED_ARGS = MemoryLayout.structLayout(
      MemoryLayout.sequenceLayout(8, ValueLayout.JAVA_LONG).withName("reserved"));
  /**
   * {@code CUcheckpointRestoreArgs}: CUcheckpointGpuPair *gpuPairs, unsigned gpuPairsCount,
   * char reserved[52 - sizeof(void *)], cuuint64_t reserved1.
   */
  static final MemoryLayout RESTORE_ARGS = MemoryLayout.structLayout(ValueLayout.ADDRESS.withName("gpuPairs"),
      ValueLayout.JAVA_INT.withName("gpuPairsCount"), MemoryLayout.sequenceLayout(44, ValueLayout.JAVA_BYTE).withName("reserved"),
      ValueLayout.JAVA_LONG.withName("reserved1"));
  /** {@code CUcheckpointGpuPair}: CUuuid oldUuid, CUuuid newUuid (16 bytes each). */
  static final MemoryLayout GPU_PAIR = MemoryLayout.structLayout(
      MemoryLayout.sequenceLayout(16, ValueLayout.JAVA_BYTE).withName("oldUuid"),
      MemoryLayout.sequenceLayout(16, ValueLayout.JAVA_BYTE).withName("newUuid"));

  private static final FunctionDescriptor PID_AND_POINTER = FunctionDescriptor.of(ValueLayout.JAVA_INT,
      ValueLayout.JAVA_INT, ValueLayout.ADDRESS);

  private final MethodHandle lock;
  private final MethodHandle checkpoint;
  private final MethodHandle restore;
  private final MethodHandle unlock;
  private final MethodHandle getState;
  private final MethodHandle getRestoreThreadId;
  private final MethodHandle getErrorName;

  private DriverCudaCheckpoint(SymbolLookup cuda) throws Throwable {
    Linker linker = Linker.nativeLinker();
    MethodHandle init = linker.downcallHandle(cuda.findOrThrow("cuInit"),
        FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT));
    lock = linker.downcallHandle(cuda.findOrThrow("cuCheckpointProcessLock"), PID_AND_POINTER);
    checkpoint = linker.downcallHandle(cuda.findOrThrow("cuCheckpointProcessCheckpoint"), PID_AND_POINTER);
    restore = linker.downcallHandle(cuda.findOrThrow("cuCheckpointProcessRestore"), PID_AND_POINTER);
    unlock = linker.downcallHandle(cuda.findOrThrow("cuCheckpointProcessUnlock"), PID_AND_POINTER);
    getState = linker.downcallHandle(cuda.findOrThrow("cuCheckpointProcessGetState"), PID_AND_POINTER);
    getRestoreThreadId = linker.downcallHandle(cuda.findOrThrow("cuCheckpointProcessGetRestoreThreadId"),
        PID_AND_POINTER);
    getErrorName = linker.downcallHandle(cuda.findOrThrow("cuGetErrorName"),
        FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.ADDRESS));
    int r = (int) init.invokeExact(0);
    if (r != 0) {
      throw new IOException("cuInit failed with CUresult " + r);
    }
  }

  /** Binds libcuda.so.1 when it is there and has the checkpoint functions (driver 550 or later). */
  static Optional<CudaCheckpoint> load() {
    try {
      SymbolLookup cuda = SymbolLookup.libraryLookup("libcuda.so.1", Arena.global());
      if (cuda.find("cuCheckpointProcessLock").isEmpty()) {
        return Optional.empty();
      }
      return Optional.of(new DriverCudaCheckpoint(cuda));
    } catch (IllegalArgumentException noLibrary) {
      return Optional.empty(); // no NVIDIA driver on this machine
    } catch (Throwable e) {
      // the library is there but cannot be bound or initialised: say so, then try the command
      System.getLogger(DriverCudaCheckpoint.class.getName()).log(System.Logger.Level.WARNING,
          "libcuda.so.1 has the checkpoint API but cannot be used: " + e);
      return Optional.empty();
    }
  }

  @Override
  public void lock(long pid, Duration timeout) throws IOException {
    try (Arena a = Arena.ofConfined()) {
      MemorySegment args = a.allocate(LOCK_ARGS); // zeroed: the reserved fields must be
      args.set(ValueLayout.JAVA_INT, 0, Math.toIntExact(timeout.toMillis()));
      call(lock, "cuCheckpointProcessLock", pid, args);
    }
  }

  @Override
  public void checkpoint(long pid) throws IOException {
    try (Arena a = Arena.ofConfined()) {
      call(checkpoint, "cuCheckpointProcessCheckpoint", pid, a.allocate(RESERVED_ARGS));
    }
  }

  @Override
  public void restore(long pid, List<GpuPair> pairs) throws IOException {
    try (Arena a = Arena.ofConfined()) {
      MemorySegment args = restoreArgs(a, pairs);
      call(restore, "cuCheckpointProcessRestore", pid, args);
    }
  }

  /** The restore arguments: the pairs array (when any) and its count; everything else zero. */
  static MemorySegment restoreArgs(Arena a, List<GpuPair> pairs) {
    MemorySegment args = a.allocate(RESTORE_ARGS);
    if (!pairs.isEmpty()) {
      MemorySegment array = a.allocate(GPU_PAIR, pairs.size());
      for (int i = 0; i < pairs.size(); i++) {
        MemorySegment pair = array.asSlice(i * GPU_PAIR.byteSize(), GPU_PAIR.byteSize());
        MemorySegment.copy(MemorySegment.ofArray(pairs.get(i).oldUuid()), 0, pair, 0, 16);
        MemorySegment.copy(MemorySegment.ofArray(pairs.get(i).newUuid()), 0, pair, 16, 16);
      }
      args.set(ValueLayout.ADDRESS, 0, array);
      args.set(ValueLayout.JAVA_INT, ValueLayout.ADDRESS.byteSize(), pairs.size());
    }
    return args;
  }

  @Override
  public void unlock(long pid) throws IOException {
    try (Arena a = Arena.ofConfined()) {
      call(unlock, "cuCheckpointProcessUnlock", pid, a.allocate(RESERVED_ARGS));
    }
  }

  @Override
  public State state(long pid) throws IOException {
    try (Arena a = Arena.ofConfined()) {
      MemorySegment out = a.allocate(ValueLayout.JAVA_INT);
      call(getState, "cuCheckpointProcessGetState", pid, out);
      return stateOf(out.get(ValueLayout.JAVA_INT, 0));
    }
  }

  @Override
  public long restoreThreadId(long pid) throws IOException {
    try (Arena a = Arena.ofConfined()) {
      MemorySegment out = a.allocate(ValueLayout.JAVA_INT); // int *tid
      call(getRestoreThreadId, "cuCheckpointProcessGetRestoreThreadId", pid, out);
      return out.get(ValueLayout.JAVA_INT, 0);
    }
  }

  static State stateOf(int value) throws IOException {
    State[] states = State.values();
    if (value < 0 || value >= states.length) {
      throw new IOException("unknown CUprocessState " + value);
    }
    return states[value];
  }

  @Override
  public String describe() {
    return "libcuda cuCheckpointProcess* (FFM)";
  }

  private void call(MethodHandle h, String name, long pid, MemorySegment args) throws IOException {
    int r;
    try {
      r = (int) h.invokeExact(Math.toIntExact(pid), args);
    } catch (Throwable e) {
      throw new IOException(name + "(" + pid + ") could not be called: " + e, e);
    }
    if (r != 0) {
      throw new IOException(name + "(" + pid + ") failed: " + errorName(r) + " (CUresult " + r + ")");
    }
  }

  private String errorName(int result) {
    try (Arena a = Arena.ofConfined()) {
      MemorySegment out = a.allocate(ValueLayout.ADDRESS);
      int r = (int) getErrorName.invokeExact(result, out);
      if (r == 0) {
        return out.get(ValueLayout.ADDRESS, 0).reinterpret(256).getString(0);
      }
    } catch (Throwable e) {
      // fall through to the number alone
    }
    return "CUresult " + result;
  }
}
