package dev.thaw.checkpoint;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

/**
 * What a snapshot records in {@code snapshot.json} beside its images: its {@link SnapshotKey}, the server's command
 * line, its readiness URL, the probe and the answer it gave, and its CUDA processes and the GPUs they ran on.
 */
public record SnapshotMetadata(Map<String, String> key, List<String> command, String readyUrl, Probe probe,
    String answer, List<Long> cudaPids, List<String> gpuUuids) {
  private static final ObjectMapper JSON = new ObjectMapper();

  public SnapshotMetadata {
    gpuUuids = gpuUuids == null ? List.of() : gpuUuids;
  }

  public SnapshotKey snapshotKey() {
    return new SnapshotKey(key);
  }

  /** Reads {@code snapshot.json} from an images directory. */
  public static SnapshotMetadata read(Path images) throws IOException {
    return JSON.readValue(images.resolve(Snapshots.METADATA).toFile(), SnapshotMetadata.class);
  }

  /** Reads {@code snapshot.json}'s bytes. */
  public static SnapshotMetadata parse(byte[] json) throws IOException {
    return JSON.readValue(json, SnapshotMetadata.class);
  }
}
