package dev.thaw.placement.sim;

import dev.thaw.placement.Model;
import java.io.IOException;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The sizes of a trace's models from a side file, a CSV with the header {@code model,weights_gb[,boot_s]
 * [,snapshot_gb][,gpus]} (any column order, names case-blind, extra columns ignored): weights in GB (10^9 bytes);
 * the boot without a snapshot in seconds (default 20 s plus 0.5 s per GB); the snapshot in GB (default 1.1 x the
 * weights); GPUs per replica (default: as few 80 GB GPUs as hold 1.2 x the weights). A replica needs 1.2 x its
 * weights of GPU memory. Models the file does not name get the default distribution ({@link SyntheticCluster#model}).
 */
public final class ModelSizes {
  private ModelSizes() {}

  /** Model id to its model, in the file's order; bad lines are errors naming file, line and value. */
  public static Map<String, Model> read(Path file) throws IOException {
    Map<String, Model> out = new LinkedHashMap<>();
    Csv.read(file, "model sizes need a header model,weights_gb[,boot_s][,snapshot_gb][,gpus]", cols -> {
      int id = cols.indexOf("model");
      int weights = cols.indexOf("weights_gb");
      int boot = cols.indexOf("boot_s");
      int snapshot = cols.indexOf("snapshot_gb");
      int gpus = cols.indexOf("gpus");
      if (id < 0 || weights < 0) {
        throw new IOException(file + ": the header must name the columns model and weights_gb, not "
            + String.join(",", cols));
      }
      return (f, n) -> {
        String model = f[id].strip();
        if (model.isEmpty()) {
          throw new IOException(file + " line " + n + ": no model");
        }
        double gb = Traces.number(f[weights], file, n, "weights_gb");
        if (!(gb > 0)) {
          throw new IOException(file + " line " + n + ": weights_gb must be positive, not " + f[weights].strip());
        }
        double bootS = optional(f, boot, file, n, "boot_s", 20 + 0.5 * gb);
        double snapGb = optional(f, snapshot, file, n, "snapshot_gb", 1.1 * gb);
        double g = optional(f, gpus, file, n, "gpus", 0);
        if (g != Math.rint(g) || g > 64) {
          throw new IOException(file + " line " + n + ": gpus must be a whole number from 1 to 64, not "
              + f[gpus].strip());
        }
        if (out.put(model, SyntheticCluster.sized(model, gb, bootS, snapGb, (int) g, Model.Demand.ofReplicas(0)))
            != null) {
          throw new IOException(file + " line " + n + ": model " + model + " is listed twice");
        }
      };
    });
    return out;
  }

  private static double optional(String[] f, int col, Path file, int line, String name, double otherwise)
      throws IOException {
    if (col < 0 || f[col].isBlank()) {
      return otherwise;
    }
    double v = Traces.number(f[col], file, line, name);
    if (v < 0) {
      throw new IOException(file + " line " + line + ": " + name + " must not be negative, not " + f[col].strip());
    }
    return v;
  }
}
