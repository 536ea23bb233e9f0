package dev.thaw.checkpoint;

import java.io.IOException;
import java.time.Duration;
import java.util.List;
import java.util.Optional;

/**
 * NVIDIA's checkpoint API for CUDA processes (driver 550+; GPU remapping on restore from 570): a process is locked
 * (its CUDA calls held), checkpointed (GPU memory copied to host memory and the GPU released), then dumped by CRIU;
 * after CRIU's restore it is restored (memory back on a GPU) and unlocked. {@link #locate()} binds libcuda's
 * {@code cuCheckpointProcess*} functions with the Foreign Function &amp; Memory API and falls back to the
 * {@code cuda-checkpoint} command when the driver lacks them; neither exists on a machine without NVIDIA's driver.
 */
public interface CudaCheckpoint {
  /** {@code CUprocessState}. */
  enum State {
    RUNNING, LOCKED, CHECKPOINTED, FAILED
  }

  /** A GPU of the checkpointing node and the one of the restoring node that takes its place (16-byte UUIDs). */
  record GpuPair(byte[] oldUuid, byte[] newUuid) {
    public GpuPair {
      if (oldUuid.length != 16 || newUuid.length != 16) {
        throw new IllegalArgumentException("GPU UUIDs are 16 bytes");
      }
    }
  }

  /** Holds the process's CUDA calls; fails when they do not settle within {@code timeout} (zero: no timeout). */
  void lock(long pid, Duration timeout) throws IOException;

  /** Moves a locked process's GPU memory to host memory and releases its GPUs. */
  void checkpoint(long pid) throws IOException;

  /** Brings a checkpointed process's memory back onto GPUs, remapping by {@code pairs} when the GPUs differ. */
  void restore(long pid, List<GpuPair> pairs) throws IOException;

  /** Lets a locked process's CUDA calls run again. */
  void unlock(long pid) throws IOException;

  State state(long pid) throws IOException;

  /**
   * The thread of a checkpointed process that the driver restores it with; a process that is not a checkpointed CUDA
   * process has none (an error).
   */
  long restoreThreadId(long pid) throws IOException;

  /** What is used: "libcuda cuCheckpointProcess* (FFM)" or "cuda-checkpoint at PATH". */
  String describe();

  /** The driver's API where libcuda has it, else the {@code cuda-checkpoint} command, else empty. */
  static Optional<CudaCheckpoint> locate() {
    Optional<CudaCheckpoint> driver = DriverCudaCheckpoint.load();
    return driver.isPresent() ? driver : CommandCudaCheckpoint.find();
  }
}
