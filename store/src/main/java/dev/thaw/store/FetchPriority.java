package dev.thaw.store;

/** Order in which queued chunk fetches run; a waiting fetch is raised when a more urgent need asks for it. */
public enum FetchPriority {
  /** A read is blocked on this chunk. */
  BLOCKING,
  /** Replaying a recorded access profile. */
  PROFILE,
  /** Sequential readahead ahead of a reader. */
  READAHEAD,
  /** Filling the cache with the rest of a model. */
  BACKGROUND
}
