package dev.thaw.placement.sim;

import java.io.BufferedReader;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalDateTime;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.time.format.DateTimeFormatterBuilder;
import java.time.format.DateTimeParseException;
import java.time.temporal.ChronoField;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.Random;

/**
 * Reads and makes {@link Trace}s.
 *
 * <ul>
 *   <li>{@link #readCsv}: a header {@code timestamp,model[,service_s][,...]} (any column order, names case-blind;
 *       other columns ignored); timestamps as epoch seconds ({@code 1700150223.98}) or
 *       {@code YYYY-MM-DD HH:MM:SS[.fraction]} (UTC); {@code service_s}, when present, the seconds a request takes.
 *   <li>{@link #readAzure}: Azure's LLM inference traces ({@code TIMESTAMP,ContextTokens,GeneratedTokens}): arrivals
 *       without models, which are assigned by a Zipf popularity; each request takes 0.2 s plus 1 ms per context token
 *       and 20 ms per generated token (a prefill and a decode of a mid-size model on one GPU).
 *   <li>{@link #synthetic}: Zipf popularity over models, Poisson arrivals, and bursts.
 * </ul>
 * Requests come out sorted by time, times counted from the first request.
 */
public final class Traces {
  private Traces() {}

  private static final DateTimeFormatter DATE_TIME = new DateTimeFormatterBuilder()
      .appendPattern("yyyy-MM-dd HH:mm:ss")
      .optionalStart().appendFraction(ChronoField.NANO_OF_SECOND, 1, 9, true).optionalEnd()
      .toFormatter(Locale.ROOT);

  /** A generic trace with model ids (see the class comment); bad lines are errors naming file, line and value. */
  public static Trace readCsv(Path file) throws IOException {
    List<Trace.Request> out = new ArrayList<>();
    List<Long> nanos = new ArrayList<>();
    Csv.read(file, "a trace needs a header timestamp,model[,...]", cols -> {
      int t = cols.indexOf("timestamp");
      int m = cols.indexOf("model");
      int s = cols.indexOf("service_s");
      if (t < 0 || m < 0) {
        throw new IOException(file + ": the header must name the columns timestamp and model, not "
            + String.join(",", cols));
      }
      return (f, n) -> {
        String model = f[m].strip();
        if (model.isEmpty()) {
          throw new IOException(file + " line " + n + ": no model");
        }
        double service = Double.NaN;
        if (s >= 0 && !f[s].isBlank()) {
          service = number(f[s], file, n, "service_s");
        }
        out.add(new Trace.Request(0, model, service));
        nanos.add(epochNanos(f[t].strip(), file, n));
      };
    });
    return new Trace(fromFirst(timed(out, nanos), file), true);
  }

  /**
   * An Azure LLM inference trace, its requests given models {@code model-0 .. model-(models-1)} by a Zipf popularity
   * ({@code model-0} the most popular) with the given exponent, from {@code seed}.
   */
  public static Trace readAzure(Path file, int models, double zipfExponent, long seed) throws IOException {
    if (models < 1) {
      throw new IllegalArgumentException("--models must be at least 1 for a trace without model ids");
    }
    Zipf zipf = new Zipf(models, zipfExponent);
    Random r = new Random(seed);
    List<Trace.Request> out = new ArrayList<>();
    List<Long> nanos = new ArrayList<>();
    String needs = "an Azure LLM trace has the header TIMESTAMP,ContextTokens,GeneratedTokens";
    Csv.read(file, needs, cols -> {
      if (cols.size() < 3 || !cols.subList(0, 3).equals(List.of("timestamp", "contexttokens", "generatedtokens"))) {
        throw new IOException(file + " is not an Azure LLM trace (" + needs + "): " + String.join(",", cols));
      }
      return (f, n) -> {
        double service = 0.2 + 0.001 * number(f[1], file, n, "ContextTokens") + 0.02 * number(f[2], file, n,
            "GeneratedTokens");
        out.add(new Trace.Request(0, "model-" + zipf.sample(r), service));
        nanos.add(epochNanos(f[0].strip(), file, n));
      };
    });
    return new Trace(fromFirst(timed(out, nanos), file), false);
  }

  /** Whichever of the two formats {@code file} is, by its header. */
  public static Trace read(Path file, int models, double zipfExponent, long seed) throws IOException {
    String header;
    try (BufferedReader in = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
      header = in.readLine();
    }
    if (header != null && header.toLowerCase(Locale.ROOT).startsWith("timestamp,contexttokens")) {
      return readAzure(file, models, zipfExponent, seed);
    }
    return readCsv(file);
  }

  /**
   * {@code requests} requests over {@code seconds}: Poisson arrivals whose rate switches, with probability
   * {@code burstiness} per minute, to a burst of ten times the mean rate for a minute; models by Zipf popularity.
   */
  public static Trace synthetic(int requests, double seconds, int models, double zipfExponent, double burstiness,
      long seed) {
    if (requests < 1 || !(seconds > 0) || models < 1 || burstiness < 0 || burstiness > 1) {
      throw new IllegalArgumentException("a synthetic trace needs requests >= 1, seconds > 0, models >= 1 and"
          + " burstiness in [0, 1]");
    }
    Random r = new Random(seed);
    Zipf zipf = new Zipf(models, zipfExponent);
    // the quiet rate such that, with bursts of 10x, the expected count over the duration is what was asked for
    double quiet = requests / seconds / (1 + 9 * burstiness);
    List<Trace.Request> out = new ArrayList<>(requests);
    double t = 0;
    double minuteEnd = 60;
    boolean burst = r.nextDouble() < burstiness;
    while (out.size() < requests) {
      double rate = burst ? 10 * quiet : quiet;
      double next = t + -Math.log(1 - r.nextDouble()) / rate;
      if (next > minuteEnd) {
        // no arrival before the minute ends: start the next minute afresh (arrivals are memoryless)
        t = minuteEnd;
        minuteEnd += 60;
        burst = r.nextDouble() < burstiness;
        continue;
      }
      t = next;
      out.add(new Trace.Request(t, "model-" + zipf.sample(r), Double.NaN));
    }
    return new Trace(fromFirst(out, null), false);
  }

  /** Zipf over {@code 0 .. n-1}: P(k) proportional to 1 / (k + 1)^exponent. */
  static final class Zipf {
    private final double[] cumulative;

    Zipf(int n, double exponent) {
      if (!(exponent >= 0)) {
        throw new IllegalArgumentException("a Zipf exponent must be >= 0, not " + exponent);
      }
      cumulative = new double[n];
      double sum = 0;
      for (int k = 0; k < n; k++) {
        sum += 1 / Math.pow(k + 1, exponent);
        cumulative[k] = sum;
      }
      for (int k = 0; k < n; k++) {
        cumulative[k] /= sum;
      }
    }

    int sample(Random r) {
      int i = Arrays.binarySearch(cumulative, r.nextDouble());
      return Math.min(cumulative.length - 1, i >= 0 ? i : -i - 1);
    }
  }

  private static List<Trace.Request> fromFirst(List<Trace.Request> requests, Path file) {
    if (requests.isEmpty()) {
      throw new IllegalArgumentException((file == null ? "the trace" : file.toString()) + " has no requests");
    }
    List<Trace.Request> sorted = new ArrayList<>(requests);
    sorted.sort(Comparator.comparingDouble(Trace.Request::time)); // stable: equal times keep their order
    double first = sorted.getFirst().time();
    List<Trace.Request> out = new ArrayList<>(sorted.size());
    for (Trace.Request q : sorted) {
      out.add(new Trace.Request(q.time() - first, q.model(), q.serviceSeconds()));
    }
    return out;
  }

  /**
   * Each request's time, in seconds from the earliest of {@code nanos}: exact to the nanosecond (epoch seconds as a
   * double are not: their last digits are gone at 1.7e9).
   */
  private static List<Trace.Request> timed(List<Trace.Request> requests, List<Long> nanos) {
    long first = nanos.stream().mapToLong(Long::longValue).min().orElse(0);
    List<Trace.Request> out = new ArrayList<>(requests.size());
    for (int i = 0; i < requests.size(); i++) {
      Trace.Request q = requests.get(i);
      out.add(new Trace.Request((nanos.get(i) - first) / 1e9, q.model(), q.serviceSeconds()));
    }
    return out;
  }

  /** Nanoseconds since the epoch, from epoch seconds ({@code 1700150223.98}) or {@code YYYY-MM-DD HH:MM:SS[.f]} (UTC). */
  static long epochNanos(String s, Path file, int line) throws IOException {
    if (!s.isEmpty() && Character.isDigit(s.charAt(0)) && s.indexOf('-') < 0 && s.indexOf(':') < 0) {
      try {
        return new java.math.BigDecimal(s).movePointRight(9).setScale(0, java.math.RoundingMode.HALF_EVEN)
            .longValueExact();
      } catch (NumberFormatException | ArithmeticException e) {
        throw new IOException(file + " line " + line + ": the timestamp '" + s + "' is not epoch seconds", e);
      }
    }
    try {
      LocalDateTime t = LocalDateTime.parse(s, DATE_TIME);
      return t.toEpochSecond(ZoneOffset.UTC) * 1_000_000_000L + t.getNano();
    } catch (DateTimeParseException e) {
      throw new IOException(file + " line " + line + ": the timestamp '" + s + "' is neither epoch seconds nor"
          + " YYYY-MM-DD HH:MM:SS[.fraction]", e);
    }
  }

  static double number(String s, Path file, int line, String column) throws IOException {
    try {
      double v = Double.parseDouble(s.strip());
      if (!Double.isFinite(v) || v < 0) {
        throw new NumberFormatException("not a finite non-negative number");
      }
      return v;
    } catch (NumberFormatException e) {
      throw new IOException(file + " line " + line + ": " + column + " '" + s + "' is not a number", e);
    }
  }
}
