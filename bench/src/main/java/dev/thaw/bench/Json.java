package dev.thaw.bench;

import java.util.Collection;
import java.util.Map;

/** A small JSON writer for the bench's result: maps, lists, strings, numbers and booleans. */
final class Json {
  private Json() {}

  static String write(Object o) {
    StringBuilder sb = new StringBuilder();
    write(sb, o);
    return sb.toString();
  }

  private static void write(StringBuilder sb, Object o) {
    switch (o) {
      case null -> sb.append("null");
      case Map<?, ?> m -> {
        sb.append('{');
        boolean first = true;
        for (Map.Entry<?, ?> e : m.entrySet()) {
          if (!first) {
            sb.append(',');
          }
          first = false;
          string(sb, String.valueOf(e.getKey()));
          sb.append(':');
          write(sb, e.getValue());
        }
        sb.append('}');
      }
      case Collection<?> c -> {
        sb.append('[');
        boolean first = true;
        for (Object v : c) {
          if (!first) {
            sb.append(',');
          }
          first = false;
          write(sb, v);
        }
        sb.append(']');
      }
      case Double dv when dv.isNaN() || dv.isInfinite() -> sb.append("null");
      case Number n -> sb.append(n);
      case Boolean b -> sb.append(b);
      default -> string(sb, o.toString());
    }
  }

  private static void string(StringBuilder sb, String s) {
    sb.append('"');
    for (char c : s.toCharArray()) {
      switch (c) {
        case '"' -> sb.append("\\\"");
        case '\\' -> sb.append("\\\\");
        case '\n' -> sb.append("\\n");
        case '\r' -> sb.append("\\r");
        case '\t' -> sb.append("\\t");
        default -> {
          if (c < 0x20) {
            sb.append(String.format("\\u%04x", (int) c));
          } else {
            sb.append(c);
          }
        }
      }
    }
    sb.append('"');
  }
}
