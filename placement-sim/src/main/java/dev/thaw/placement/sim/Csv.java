package dev.thaw.placement.sim;

import java.io.BufferedReader;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/** The small CSV files the simulator reads: a header of column names, then rows; no quoting. */
final class Csv {
  private Csv() {}

  /** Given the header's column names (stripped, lower case), checks them and says what to do with each row. */
  interface Header {
    Row columns(List<String> names) throws IOException;
  }

  interface Row {
    void read(String[] fields, int line) throws IOException;
  }

  /**
   * Reads {@code file}: an empty file is an error saying {@code needs}; blank lines are skipped; a row with fewer
   * fields than the header is an error naming the file and line.
   */
  static void read(Path file, String needs, Header header) throws IOException {
    try (BufferedReader in = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
      String first = in.readLine();
      if (first == null) {
        throw new IOException(file + " is empty: " + needs);
      }
      List<String> names = Arrays.stream(first.split(",", -1)).map(c -> c.strip().toLowerCase(Locale.ROOT)).toList();
      Row row = header.columns(names);
      String line;
      int n = 1;
      while ((line = in.readLine()) != null) {
        n++;
        if (line.isBlank()) {
          continue;
        }
        String[] f = line.split(",", -1);
        if (f.length < names.size()) {
          throw new IOException(file + " line " + n + ": " + f.length + " columns, the header has " + names.size());
        }
        row.read(f, n);
      }
    }
  }
}
