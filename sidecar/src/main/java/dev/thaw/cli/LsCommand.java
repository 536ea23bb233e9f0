package dev.thaw.cli;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.thaw.store.DirectoryEntry;
import dev.thaw.store.Entry;
import dev.thaw.store.FileEntry;
import dev.thaw.store.Manifest;
import dev.thaw.store.ModelName;
import dev.thaw.store.ModelStore;
import dev.thaw.store.Origin;
import dev.thaw.store.Origins;
import dev.thaw.store.SymlinkEntry;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(name = "ls", mixinStandardHelpOptions = true,
    description = {
      "List a model's files, or with --tags the tags at an origin.",
      "MODEL is a pushed model (NAME[:TAG] at --origin, or URI#NAME[:TAG]) or, in direct mode, an s3:// prefix or "
          + "file:// directory of ordinary files."
    })
final class LsCommand implements Callable<Integer> {
  @Parameters(paramLabel = "MODEL", arity = "0..1", description = "NAME[:TAG], URI#NAME[:TAG], or s3://... / file://... (direct).")
  String model;

  @Option(names = "--tags", description = "List the tags at the origin instead.")
  boolean tags;

  @Option(names = "--json", description = "Print one JSON object on stdout.")
  boolean json;

  @Mixin StoreOptions store;

  @Override
  public Integer call() throws Exception {
    if (tags) {
      String uri = model != null ? StoreOptions.expand(model) : store.originUri();
      try (Origin o = Origins.open(uri)) {
        ObjectNode n = JsonOut.object();
        ArrayNode list = n.put("origin", o.uri()).putArray("tags");
        for (ModelName t : new ModelStore(o).tags()) {
          String digest = new ModelStore(o).digestOf(t);
          if (json) {
            list.addObject().put("name", t.toString()).put("digest", digest);
          } else {
            System.out.println(t + "  " + digest);
          }
        }
        if (json) {
          JsonOut.print(System.out, n);
        }
      }
      return 0;
    }
    if (model == null) {
      throw new IllegalArgumentException("name a model (NAME[:TAG], URI#NAME[:TAG] or a direct URI), or pass --tags");
    }
    try (StoreOptions.Resolved r = store.resolve(model)) {
      Manifest m = r.manifest();
      if (json) {
        ObjectNode n = JsonOut.object();
        n.put("model", r.display());
        n.put("digest", m.digest());
        n.put("direct", m.isDirect());
        n.put("chunk_size", m.chunkSize());
        n.put("bytes", m.totalBytes());
        ArrayNode list = n.putArray("entries");
        for (Entry e : m.entries()) {
          ObjectNode o = list.addObject().put("path", e.path());
          switch (e) {
            case FileEntry f -> o.put("type", "file").put("size", f.size()).put("mode", f.mode()).put("chunks", f.chunkCount());
            case DirectoryEntry d -> o.put("type", "dir").put("mode", d.mode());
            case SymlinkEntry s -> o.put("type", "symlink").put("target", s.target());
          }
        }
        JsonOut.print(System.out, n);
        return 0;
      }
      System.out.println(r.display() + "  " + (m.isDirect() ? "" : m.digest() + "  ") + Units.bytes(m.totalBytes()));
      for (Entry e : m.entries()) {
        String line = switch (e) {
          case FileEntry f -> String.format(Locale.ROOT, "%04o %14d  %s", f.mode(), f.size(), f.path());
          case DirectoryEntry d -> String.format(Locale.ROOT, "%04o %14s  %s/", d.mode(), "-", d.path());
          case SymlinkEntry s -> String.format(Locale.ROOT, "%4s %14s  %s -> %s", "link", "-", s.path(), s.target());
        };
        System.out.println(line);
      }
      return 0;
    }
  }
}
