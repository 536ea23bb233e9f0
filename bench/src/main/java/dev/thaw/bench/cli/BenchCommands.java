package dev.thaw.bench.cli;

import dev.thaw.cli.CommandPlugin;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The bench module's commands in the {@code thaw} command line, found by {@link dev.thaw.cli.Main} through {@link
 * java.util.ServiceLoader} (META-INF/services) when this jar is on the class path: {@code ./thaw} puts it there for
 * {@code model}, {@code demo}, {@code bench}, {@code placement} and help, so that the class path of every other
 * command holds no benchmark-only library.
 */
public final class BenchCommands implements CommandPlugin {
  @Override
  public Map<String, Class<?>> commands() {
    Map<String, Class<?>> m = new LinkedHashMap<>();
    m.put("model", ModelCommand.class);
    m.put("demo", DemoCommand.class);
    m.put("bench", BenchCommand.class);
    m.put("placement bench", PlacementBenchCommands.Bench.class);
    m.put("placement simulate", PlacementBenchCommands.Simulate.class);
    return m;
  }
}
