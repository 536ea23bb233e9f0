package dev.thaw.cli;

import java.time.Duration;
import java.util.Locale;
import picocli.CommandLine;

/**
 * Parses and prints sizes ("8m", "20g") and durations ("24h", "30m", "7d"), as every command's options take them
 * (public for the commands a {@link CommandPlugin} adds).
 */
public final class Units {
  private Units() {}

  static long parseSize(String s) {
    String t = s.trim().toLowerCase(Locale.ROOT).replace("ib", "").replace("b", "");
    long mult = 1;
    char last = t.isEmpty() ? ' ' : t.charAt(t.length() - 1);
    switch (last) {
      case 'k' -> mult = 1L << 10;
      case 'm' -> mult = 1L << 20;
      case 'g' -> mult = 1L << 30;
      case 't' -> mult = 1L << 40;
      default -> mult = 1;
    }
    String num = mult == 1 ? t : t.substring(0, t.length() - 1);
    try {
      double v = Double.parseDouble(num);
      if (v < 0) {
        throw new NumberFormatException();
      }
      return (long) (v * mult);
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException("not a size: '" + s + "' (examples: 8m, 512k, 20g)");
    }
  }

  static Duration parseDuration(String s) {
    String t = s.trim().toLowerCase(Locale.ROOT);
    try {
      if (t.endsWith("ms")) {
        return Duration.ofMillis(Long.parseLong(t.substring(0, t.length() - 2)));
      }
      long n = Long.parseLong(t.substring(0, t.length() - 1));
      return switch (t.charAt(t.length() - 1)) {
        case 's' -> Duration.ofSeconds(n);
        case 'm' -> Duration.ofMinutes(n);
        case 'h' -> Duration.ofHours(n);
        case 'd' -> Duration.ofDays(n);
        default -> throw new NumberFormatException();
      };
    } catch (RuntimeException e) {
      throw new IllegalArgumentException("not a duration: '" + s + "' (examples: 90s, 30m, 24h, 7d)");
    }
  }

  public static String bytes(long n) {
    if (n < 1024) {
      return n + " B";
    }
    String[] units = {"KiB", "MiB", "GiB", "TiB"};
    double v = n;
    int i = -1;
    while (v >= 1024 && i < units.length - 1) {
      v /= 1024;
      i++;
    }
    return String.format(Locale.ROOT, "%.1f %s", v, units[i]);
  }

  public static double mbps(long bytes, double seconds) {
    return bytes / 1e6 / Math.max(seconds, 1e-9);
  }

  // TypeConversionException: picocli then says "Invalid value for option '--x': <our message>", without wrapping
  // it in "cannot convert ... (java.lang.IllegalArgumentException: ...)".
  public static final class SizeConverter implements CommandLine.ITypeConverter<Long> {
    @Override
    public Long convert(String value) {
      try {
        return parseSize(value);
      } catch (IllegalArgumentException e) {
        throw new CommandLine.TypeConversionException(e.getMessage());
      }
    }
  }

  public static final class DurationConverter implements CommandLine.ITypeConverter<Duration> {
    @Override
    public Duration convert(String value) {
      try {
        return parseDuration(value);
      } catch (IllegalArgumentException e) {
        throw new CommandLine.TypeConversionException(e.getMessage());
      }
    }
  }
}
