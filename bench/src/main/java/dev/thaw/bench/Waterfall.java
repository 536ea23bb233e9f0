package dev.thaw.bench;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The demo's timeline as a self-contained HTML page: one row per run, a bar per phase (each phase ends at the event
 * it is named after), a tick at the first byte from the origin. Inline SVG, no scripts, nothing fetched.
 */
final class Waterfall {
  private Waterfall() {}

  private static final Map<String, String> COLORS = Map.of(
      "downloaded", "#8c8c8c",
      "mounted", "#4e79a7",
      "server_exec", "#bab0ac",
      "model_loaded", "#f28e2b",
      "ready", "#59a14f",
      "images_fetched", "#9c755f",
      "restored_and_verified", "#b07aa1",
      "first_inference", "#e15759");
  private static final Map<String, String> PHASES = Map.of(
      "downloaded", "download",
      "mounted", "mount",
      "server_exec", "exec server",
      "model_loaded", "server start + model load",
      "ready", "ready",
      "images_fetched", "snapshot images fetched",
      "restored_and_verified", "restored (CRIU) and verified",
      "first_inference", "first inference");

  static String html(String title, List<ColdStartDemo.RunTimeline> runs) {
    double maxMs = runs.stream().mapToDouble(r -> r.events().get("first_inference")).max().orElse(1);
    int labelW = 300;
    int plotW = 760;
    int rowH = 34;
    int top = 30;
    int height = top + rowH * runs.size() + 70;
    double scale = plotW / (maxMs * 1.05);
    StringBuilder svg = new StringBuilder();
    svg.append(String.format(Locale.ROOT,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" font-size=\"12\">%n",
        labelW + plotW + 90, height));
    // time axis, a tick per second (or per 10 s for long runs)
    double step = maxMs > 20_000 ? 10_000 : maxMs > 5_000 ? 2_000 : maxMs > 2_000 ? 500 : 250;
    for (double t = 0; t <= maxMs * 1.05; t += step) {
      double x = labelW + t * scale;
      svg.append(String.format(Locale.ROOT,
          "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#ddd\"/><text x=\"%.1f\" y=\"%d\" fill=\"#666\""
              + " text-anchor=\"middle\">%.1f s</text>%n", x, top - 8, x, top + rowH * runs.size(), x, top - 12, t / 1000));
    }
    int y = top;
    for (ColdStartDemo.RunTimeline r : runs) {
      svg.append(String.format(Locale.ROOT, "<text x=\"4\" y=\"%d\">%s</text>%n", y + 21, escape(r.label())));
      List<Map.Entry<String, Double>> ev = new ArrayList<>(r.events().entrySet());
      ev.removeIf(e -> e.getKey().equals("first_byte"));
      ev.sort(Comparator.comparingDouble(Map.Entry::getValue));
      double prev = 0;
      for (Map.Entry<String, Double> e : ev) {
        if (e.getKey().equals("exec")) {
          continue;
        }
        double x0 = labelW + prev * scale;
        double w = Math.max(1, (e.getValue() - prev) * scale);
        svg.append(String.format(Locale.ROOT,
            "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"20\" fill=\"%s\"><title>%s: %.0f to %.0f ms</title></rect>%n",
            x0, y + 6, w, COLORS.getOrDefault(e.getKey(), "#76b7b2"), escape(PHASES.getOrDefault(e.getKey(), e.getKey())),
            prev, e.getValue()));
        prev = e.getValue();
      }
      Double fb = r.events().get("first_byte");
      if (fb != null) {
        double x = labelW + fb * scale;
        svg.append(String.format(Locale.ROOT,
            "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#000\" stroke-width=\"2\"><title>first byte from the"
                + " origin: %.0f ms</title></line>%n", x, y + 2, x, y + 30, fb));
      }
      svg.append(String.format(Locale.ROOT, "<text x=\"%.1f\" y=\"%d\">%.2f s</text>%n",
          labelW + prev * scale + 6, y + 21, prev / 1000));
      y += rowH;
    }
    // legend
    int lx = labelW;
    y += 20;
    for (String k : List.of("downloaded", "mounted", "model_loaded", "ready", "images_fetched", "restored_and_verified",
        "first_inference")) {
      svg.append(String.format(Locale.ROOT, "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"12\" fill=\"%s\"/>"
          + "<text x=\"%d\" y=\"%d\">%s</text>%n", lx, y, COLORS.get(k), lx + 16, y + 11, PHASES.get(k)));
      lx += 30 + PHASES.get(k).length() * 7;
    }
    svg.append(String.format(Locale.ROOT, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#000\" stroke-width=\"2\"/>"
        + "<text x=\"%d\" y=\"%d\">first byte from the origin</text>%n", lx, y - 2, lx, y + 14, lx + 6, y + 11));
    svg.append("</svg>\n");

    StringBuilder rows = new StringBuilder();
    for (ColdStartDemo.RunTimeline r : runs) {
      rows.append("<tr><td>").append(escape(r.label())).append("</td>");
      for (String k : List.of("mounted", "downloaded", "first_byte", "model_loaded", "ready", "images_fetched",
          "restored_and_verified", "first_inference")) {
        Double v = r.events().get(k);
        rows.append("<td>").append(v == null ? "" : String.format(Locale.ROOT, "%.0f", v)).append("</td>");
      }
      rows.append("<td>").append(escape(ColdStartDemo.human(r.bytesFetched()))).append("</td><td>")
          .append(escape(r.detail())).append("</td></tr>\n");
    }
    return """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"><title>%1$s</title>
        <style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;
        padding:4px 8px;text-align:right}td:first-child,td:last-child{text-align:left}</style></head>
        <body><h1>%1$s</h1>
        <p>Each run is timed from the exec of its first command (the downloader, <code>thaw mount</code>, or the
        server, or <code>thaw restore</code>) to the first correct inference answer. The page cache was dropped before every run.</p>
        %2$s
        <h2>Events (ms from exec)</h2>
        <table><tr><th>run</th><th>mounted</th><th>downloaded</th><th>first byte</th><th>model loaded</th>
        <th>ready</th><th>images fetched</th><th>restored and verified</th><th>first inference</th><th>fetched</th>
        <th>how</th></tr>
        %3$s</table></body></html>
        """.formatted(escape(title), svg, rows);
  }

  private static String escape(String s) {
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\"", "&quot;");
  }
}
