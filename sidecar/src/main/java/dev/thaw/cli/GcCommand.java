package dev.thaw.cli;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.thaw.store.GarbageCollector;
import dev.thaw.store.ObjectInfo;
import dev.thaw.store.Origin;
import dev.thaw.store.Origins;
import java.time.Clock;
import java.time.Duration;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(name = "gc", mixinStandardHelpOptions = true,
    description = {
      "Delete chunks that no manifest references and that are older than the grace period.",
      "On a file:// origin, also the temp files that killed writes left, once older than the grace period. Pushes "
          + "running meanwhile are safe as long as they take less than the grace period."
    })
final class GcCommand implements Callable<Integer> {
  @Parameters(paramLabel = "ORIGIN", arity = "0..1", description = "Default: $THAW_ORIGIN, else ~/.thaw/origin.")
  String origin;

  @Option(names = "--grace", paramLabel = "DURATION", defaultValue = "24h", converter = Units.DurationConverter.class,
      description = "Keep unreferenced chunks younger than this. Default: ${DEFAULT-VALUE}.")
  Duration grace;

  @Option(names = "--dry-run", description = "List what would be deleted; delete nothing.")
  boolean dryRun;

  @Option(names = "--json", description = "Print one JSON object on stdout.")
  boolean json;

  @Override
  public Integer call() throws Exception {
    String uri = StoreOptions.expand(origin != null ? origin : System.getenv("THAW_ORIGIN"));
    try (Origin o = Origins.open(uri)) {
      GarbageCollector.Result r = new GarbageCollector(o, Clock.systemUTC()).collect(grace, dryRun);
      String verb = dryRun ? "would delete" : "deleted";
      if (json) {
        ObjectNode n = JsonOut.object();
        n.put("origin", o.uri()).put("dry_run", dryRun).put("manifests", r.manifests()).put("chunks", r.chunks())
            .put("young_unreferenced", r.youngUnreferenced()).put("deleted_bytes", r.candidateBytes());
        var list = n.putArray(dryRun ? "would_delete" : "deleted");
        r.candidates().forEach(c -> list.add(c.key()));
        var temps = n.putArray(dryRun ? "would_delete_temporaries" : "deleted_temporaries");
        r.temporaries().forEach(t -> temps.add(t.key()));
        n.put("deleted_temporary_bytes", r.temporaryBytes());
        JsonOut.print(System.out, n);
      } else {
        for (ObjectInfo c : r.candidates()) {
          System.out.println((dryRun ? "would delete " : "deleted ") + c.key() + " (" + c.size() + " bytes, " + c.lastModified() + ")");
        }
        for (ObjectInfo t : r.temporaries()) {
          System.out.println((dryRun ? "would delete " : "deleted ") + t.key() + " (left by an interrupted write, "
              + t.size() + " bytes, " + t.lastModified() + ")");
        }
        System.out.printf("gc %s: %d manifests, %d chunks; %s %d unreferenced chunks (%s) and %d temp files of interrupted "
            + "writes (%s); kept %d younger than %s%n",
            o.uri(), r.manifests(), r.chunks(), verb, r.candidates().size(), Units.bytes(r.candidateBytes()),
            r.temporaries().size(), Units.bytes(r.temporaryBytes()), r.youngUnreferenced(), grace);
      }
      return 0;
    }
  }
}
