package dev.thaw.cli;

import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import picocli.CommandLine;
import picocli.CommandLine.Help;
import picocli.CommandLine.IHelpSectionRenderer;
import picocli.CommandLine.Model.UsageMessageSpec;

/**
 * One layout for every command's help, set once for the whole command tree: lines of at most {@link #WIDTH} columns,
 * broken only between words, each continuation under the text it continues. Picocli breaks lines where a line
 * {@code BreakIterator} allows, which splits {@code s3://bucket} after {@code s3:} and {@code ~/.local} after
 * {@code ~/.}; so picocli lays each section out unwrapped and it is wrapped here, at spaces only. Descriptions are
 * written a paragraph per string, so that a reader sees a line end only where the next word does not fit.
 */
final class HelpFormat {
  /** Columns of help text: room for options and their descriptions side by side, and still a readable measure. */
  static final int WIDTH = 100;
  /** What picocli lays out to: wide enough that it never breaks a line itself. */
  private static final int UNWRAPPED = 10_000;
  private static final Pattern ANSI = Pattern.compile("\u001B\\[[0-9;]*m");
  private static final Pattern DESCRIPTION_COLUMN = Pattern.compile("^( *\\S+(?: \\S+)*) {2,}");

  private HelpFormat() {}

  /** Lays out the help of {@code cli} and of every command below it. */
  static void applyTo(CommandLine cli) {
    cli.setUsageHelpWidth(UNWRAPPED); // picocli passes it down to every subcommand
    configure(cli);
  }

  private static void configure(CommandLine command) {
    command.getHelpSectionMap().replaceAll((key, renderer) ->
        renderer instanceof Wrapping ? renderer : new Wrapping(key, renderer));
    command.getSubcommands().values().forEach(HelpFormat::configure);
  }

  /** A section as picocli renders it unwrapped, then wrapped at spaces. */
  private record Wrapping(String key, IHelpSectionRenderer unwrapped) implements IHelpSectionRenderer {
    @Override
    public String render(Help help) {
      String text = unwrapped.render(help);
      if (text.isEmpty()) {
        return text;
      }
      StringBuilder out = new StringBuilder();
      boolean first = true;
      for (String line : text.split("\n", -1)) {
        if (!first) {
          out.append('\n');
        }
        int offset = 0;
        int keep = leadingSpaces(line);
        int indent = keep;
        switch (key) {
          case UsageMessageSpec.SECTION_KEY_SYNOPSIS -> {
            // "Usage: " is a section of its own; continuations go under the first argument, as picocli puts them.
            offset = first ? help.synopsisHeadingLength() : 0;
            String name = help.commandSpec().qualifiedName() + " ";
            keep = first && plain(line).startsWith(name) ? name.length() : keep;
            indent = help.synopsisHeadingLength() + name.length();
          }
          case UsageMessageSpec.SECTION_KEY_OPTION_LIST, UsageMessageSpec.SECTION_KEY_PARAMETER_LIST,
              UsageMessageSpec.SECTION_KEY_END_OF_OPTIONS, UsageMessageSpec.SECTION_KEY_COMMAND_LIST,
              UsageMessageSpec.SECTION_KEY_EXIT_CODE_LIST -> {
            // A row: names, then its description, which continues two columns in (picocli's own indent).
            Matcher m = DESCRIPTION_COLUMN.matcher(plain(line));
            keep = m.find() ? m.end() : keep;
            indent = keep + 2;
          }
          default -> { }
        }
        out.append(String.join("\n", wrap(line, offset, keep, indent)));
        first = false;
      }
      return out.toString();
    }
  }

  /**
   * Breaks {@code line} at spaces into lines of at most {@link #WIDTH} columns: the first {@code keep} columns stay
   * whole, the first line starts {@code offset} columns in, the others {@code indent} columns in. A word longer than
   * a line stays whole.
   */
  static List<String> wrap(String line, int offset, int keep, int indent) {
    List<String> lines = new ArrayList<>();
    if (offset + visible(line) <= WIDTH) {
      lines.add(line);
      return lines;
    }
    int split = index(line, keep);
    StringBuilder current = new StringBuilder(line.substring(0, split));
    int column = offset + visible(current);
    boolean empty = true;
    for (String word : line.substring(split).split(" ", -1)) {
      int w = visible(word);
      if (empty) {
        current.append(word);
        column += w;
        empty = false;
      } else if (column + 1 + w <= WIDTH) {
        current.append(' ').append(word);
        column += 1 + w;
      } else {
        lines.add(current.toString().stripTrailing());
        current = new StringBuilder(" ".repeat(indent)).append(word);
        column = indent + w;
      }
    }
    lines.add(current.toString().stripTrailing());
    return lines;
  }

  private static String plain(CharSequence s) {
    return ANSI.matcher(s).replaceAll("");
  }

  private static int visible(CharSequence s) {
    return plain(s).length();
  }

  private static int leadingSpaces(String s) {
    String p = plain(s);
    int i = 0;
    while (i < p.length() && p.charAt(i) == ' ') {
      i++;
    }
    return i;
  }

  /** The index in {@code s} of its {@code column}-th visible character (escape sequences take no columns). */
  private static int index(String s, int column) {
    Matcher m = ANSI.matcher(s);
    int i = 0;
    int seen = 0;
    while (i < s.length() && seen < column) {
      if (m.find(i) && m.start() == i) {
        i = m.end();
      } else {
        i++;
        seen++;
      }
    }
    return i;
  }
}
