package dev.thaw.checkpoint.gputest;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/** The report's table: one row per checkpoint round, blanks ("-") for what a round did not measure. */
final class Table {
  private static final String[] HEADER = {"holder", "GiB", "lock s", "checkpoint s (GB/s)", "restore s (GB/s)",
      "unlock s", "pid MiB before/after", "GPU0 MiB before/after", "verify", "H2D floor GB/s", "restore/floor"};

  private Table() {}

  static String render(List<Map<String, Object>> rows, double floorGbps) {
    List<String[]> lines = new ArrayList<>();
    lines.add(HEADER);
    for (Map<String, Object> r : rows) {
      lines.add(new String[] {
          String.valueOf(r.get("holder")),
          String.format(Locale.ROOT, "%.2f", (Long) r.get("bytes") / (double) (1L << 30)),
          seconds(r.get("lock_s")),
          seconds(r.get("checkpoint_s")) + rate(r.get("checkpoint_gbps")),
          seconds(r.get("restore_s")) + rate(r.get("restore_gbps")),
          seconds(r.get("unlock_s")),
          r.get("pid_mib_before") + "/" + r.get("pid_mib_after"),
          r.get("gpu_mib_before") + "/" + r.get("gpu_mib_after"),
          r.get("verify") + (r.get("wrong") instanceof Long w && w != 0 ? " (" + w + " wrong)" : ""),
          Double.isNaN(floorGbps) ? "-" : GpuCheck.fmt(floorGbps),
          r.get("restore_over_floor") instanceof Double d ? GpuCheck.fmt(d) + "x" : "-"});
    }
    int[] width = new int[HEADER.length];
    for (String[] l : lines) {
      for (int i = 0; i < l.length; i++) {
        l[i] = l[i].replace("null", "-");
        width[i] = Math.max(width[i], l[i].length());
      }
    }
    StringBuilder b = new StringBuilder();
    for (int n = 0; n < lines.size(); n++) {
      String[] l = lines.get(n);
      for (int i = 0; i < l.length; i++) {
        b.append(i == 0 ? "" : " | ").append(String.format(Locale.ROOT, "%-" + width[i] + "s", l[i]));
      }
      b.append('\n');
      if (n == 0) {
        for (int i = 0; i < width.length; i++) {
          b.append(i == 0 ? "" : "-+-").append("-".repeat(width[i]));
        }
        b.append('\n');
      }
    }
    return b.toString();
  }

  private static String seconds(Object s) {
    return s instanceof Double d ? String.format(Locale.ROOT, "%.3f", d) : "-";
  }

  private static String rate(Object gbps) {
    return gbps instanceof Double d ? String.format(Locale.ROOT, " (%.1f)", d) : "";
  }
}
