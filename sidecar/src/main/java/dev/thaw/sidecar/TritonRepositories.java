package dev.thaw.sidecar;

import dev.thaw.store.AccessProfile;
import dev.thaw.store.DirectoryEntry;
import dev.thaw.store.ModelReader;
import dev.thaw.triton.ModelLoads;
import java.nio.file.Path;
import java.util.Collection;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.logging.Logger;

/**
 * Triton's model repositories as Thaw serves them, one lazy mount each: a model's bytes are fetched when Triton is
 * about to load it (the part of the repository's access profile under the model's directory, prefetched while Triton
 * reads), and let go of when it is unloaded (its chunks first to evict, never before). Every read is recorded, so a
 * model loaded for the first time adds itself to its repository's profile ({@link #profileToSave}).
 *
 * <p>Both forms of the Triton adapter use it: {@code thaw triton} over its own mounts, the sidecar over its
 * {@code thaw.triton} mounts.
 */
public final class TritonRepositories implements ModelLoads.Listener {
  private static final Logger LOG = Logger.getLogger(TritonRepositories.class.getName());

  /**
   * One repository: as the user named it, where Triton reads it, the reader behind the mount (recording its reads),
   * and its recorded profile, if any.
   */
  public record Repository(String given, Path at, ModelReader reader, Optional<AccessProfile> profile) {
    public Repository {
      Objects.requireNonNull(given, "given");
      Objects.requireNonNull(at, "at");
      Objects.requireNonNull(reader, "reader");
      Objects.requireNonNull(profile, "profile");
    }

    boolean holds(String model) {
      return reader.manifest().entry(model) instanceof DirectoryEntry;
    }
  }

  private final List<Repository> repositories;

  public TritonRepositories(List<Repository> repositories) {
    this.repositories = List.copyOf(repositories);
  }

  public List<Repository> repositories() {
    return repositories;
  }

  /** The repository Triton loads {@code model} from: the first that has its directory, as Triton looks. */
  public Optional<Repository> of(String model) {
    return repositories.stream().filter(r -> r.holds(model)).findFirst();
  }

  /**
   * Prefetches the profiles of the models Triton loads at start ({@code --load-model}; {@code *}: every model):
   * all of them before the first request.
   */
  public void prefetchAtStart(Collection<String> models) {
    for (Repository r : repositories) {
      r.profile().ifPresent(p -> {
        if (models.contains("*")) {
          r.reader().prefetch(p);
        } else {
          models.stream().filter(r::holds).forEach(m -> r.reader().prefetch(p.under(m)));
        }
      });
    }
  }

  @Override
  public boolean serves(String model) {
    return of(model).isPresent();
  }

  /** Starts fetching the recorded part of {@code model}'s files, which Triton is about to read. */
  @Override
  public void loading(ModelLoads.ColdStart coldStart) {
    prefetch(coldStart.model());
  }

  /** An unloaded model's chunks go first when the cache needs room; shared ones stay. */
  @Override
  public void unloaded(String model) {
    release(model);
  }

  /**
   * Starts fetching the recorded part of {@code model}'s files; returns how many chunks were asked for (0: the
   * model has no part in its repository's profile yet, or no repository holds it).
   */
  public int prefetch(String model) {
    Optional<Repository> r = of(model);
    Optional<AccessProfile> part = r.flatMap(Repository::profile).map(p -> p.under(model))
        .filter(p -> p.chunkCount() > 0);
    if (part.isEmpty()) {
      return 0;
    }
    r.get().reader().prefetch(part.get()).exceptionally(e -> {
      LOG.warning(() -> "event=model_prefetch_failed model=" + model + " cause=" + e);
      return null;
    });
    LOG.fine(() -> "event=model_prefetch model=" + model + " chunks=" + part.get().chunkCount());
    return part.get().chunkCount();
  }

  /** Puts {@code model}'s own chunks first in line for eviction; returns how many the cache held. */
  public int release(String model) {
    return of(model).map(r -> r.reader().evictFirstUnder(model)).orElse(0);
  }

  /**
   * The profile to save for {@code r}: its recorded profile with what this run read beyond it (models loaded for the
   * first time), or empty when the run added nothing.
   */
  public static Optional<AccessProfile> profileToSave(Repository r) {
    AccessProfile recorded = r.reader().recordedProfile();
    if (r.profile().isEmpty()) {
      return recorded.chunkCount() > 0 ? Optional.of(recorded) : Optional.empty();
    }
    AccessProfile merged = r.profile().get().plus(recorded);
    return merged.chunkCount() > r.profile().get().chunkCount() ? Optional.of(merged) : Optional.empty();
  }
}
