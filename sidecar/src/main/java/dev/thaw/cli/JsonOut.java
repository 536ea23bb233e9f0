package dev.thaw.cli;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.PrintStream;

/**
 * Writes the single JSON object a {@code --json} command prints on stdout (public for the commands a {@link
 * CommandPlugin} adds).
 */
public final class JsonOut {
  public static final ObjectMapper MAPPER = new ObjectMapper();

  private JsonOut() {}

  public static ObjectNode object() {
    return MAPPER.createObjectNode();
  }

  public static void print(PrintStream out, ObjectNode node) {
    try {
      out.println(MAPPER.writeValueAsString(node));
      out.flush();
    } catch (JsonProcessingException e) {
      throw new IllegalStateException(e);
    }
  }
}
