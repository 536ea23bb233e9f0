package dev.thaw.store;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * RFC 8785 (JSON Canonicalization Scheme) for the subset manifests use: objects, arrays, strings, booleans,
 * null and integers. Members are sorted by UTF-16 code units, there is no whitespace, and strings escape only
 * what the RFC requires. Fractions are refused because manifests never contain them.
 */
final class CanonicalJson {
  private CanonicalJson() {}

  static String write(JsonNode node) {
    StringBuilder out = new StringBuilder(1024);
    write(node, out);
    return out.toString();
  }

  private static void write(JsonNode node, StringBuilder out) {
    switch (node.getNodeType()) {
      case OBJECT -> {
        List<Map.Entry<String, JsonNode>> members = new ArrayList<>(node.properties());
        // String.compareTo orders by UTF-16 code units, which is what RFC 8785 section 3.2.3 asks for.
        members.sort(Map.Entry.comparingByKey());
        out.append('{');
        for (int i = 0; i < members.size(); i++) {
          if (i > 0) {
            out.append(',');
          }
          string(members.get(i).getKey(), out);
          out.append(':');
          write(members.get(i).getValue(), out);
        }
        out.append('}');
      }
      case ARRAY -> {
        out.append('[');
        for (int i = 0; i < node.size(); i++) {
          if (i > 0) {
            out.append(',');
          }
          write(node.get(i), out);
        }
        out.append(']');
      }
      case STRING -> string(node.textValue(), out);
      case BOOLEAN -> out.append(node.booleanValue());
      case NULL -> out.append("null");
      case NUMBER -> {
        if (!node.canConvertToExactIntegral() || !node.canConvertToLong()) {
          throw new IllegalArgumentException("canonical manifests hold integers only, got " + node);
        }
        long value = node.longValue();
        if (Math.abs(value) > (1L << 53)) {
          throw new IllegalArgumentException("integer beyond IEEE-754 exactness: " + value);
        }
        out.append(value);
      }
      default -> throw new IllegalArgumentException("unsupported JSON value " + node.getNodeType());
    }
  }

  private static void string(String s, StringBuilder out) {
    out.append('"');
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      switch (c) {
        case '"' -> out.append("\\\"");
        case '\\' -> out.append("\\\\");
        case '\b' -> out.append("\\b");
        case '\f' -> out.append("\\f");
        case '\n' -> out.append("\\n");
        case '\r' -> out.append("\\r");
        case '\t' -> out.append("\\t");
        default -> {
          if (c < 0x20) {
            out.append(String.format("\\u%04x", (int) c));
          } else {
            out.append(c);
          }
        }
      }
    }
    out.append('"');
  }
}
