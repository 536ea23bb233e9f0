package dev.thaw.checkpoint.gputest;

import java.util.List;
import java.util.Locale;
import java.util.Map;

/** Just enough JSON for the report (maps, lists, strings, numbers, booleans, null), so the bundle needs no library. */
final class Json {
  private Json() {}

  static String write(Object value) {
    StringBuilder b = new StringBuilder();
    write(value, b, "");
    return b.toString();
  }

  private static void write(Object v, StringBuilder b, String indent) {
    String inner = indent + "  ";
    switch (v) {
      case null -> b.append("null");
      case Map<?, ?> m -> {
        b.append('{');
        String sep = "\n";
        for (Map.Entry<?, ?> e : m.entrySet()) {
          b.append(sep).append(inner);
          string(String.valueOf(e.getKey()), b);
          b.append(": ");
          write(e.getValue(), b, inner);
          sep = ",\n";
        }
        b.append(m.isEmpty() ? "" : "\n" + indent).append('}');
      }
      case List<?> l -> {
        b.append('[');
        String sep = "\n";
        for (Object e : l) {
          b.append(sep).append(inner);
          write(e, b, inner);
          sep = ",\n";
        }
        b.append(l.isEmpty() ? "" : "\n" + indent).append(']');
      }
      case Double d when d.isNaN() || d.isInfinite() -> b.append("null");
      case Double d -> b.append(String.format(Locale.ROOT, "%.6g", d).replaceAll("(\\.\\d*?)0+(e|$)", "$1$2")
          .replace(".e", "e").replaceAll("\\.$", ""));
      case Number n -> b.append(n);
      case Boolean bool -> b.append(bool);
      default -> string(v.toString(), b);
    }
  }

  private static void string(String s, StringBuilder b) {
    b.append('"');
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      switch (c) {
        case '"' -> b.append("\\\"");
        case '\\' -> b.append("\\\\");
        case '\n' -> b.append("\\n");
        case '\r' -> b.append("\\r");
        case '\t' -> b.append("\\t");
        default -> {
          if (c < 0x20) {
            b.append(String.format(Locale.ROOT, "\\u%04x", (int) c));
          } else {
            b.append(c);
          }
        }
      }
    }
    b.append('"');
  }
}
