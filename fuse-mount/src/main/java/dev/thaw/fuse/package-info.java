/**
 * A read-only FUSE file system over a manifest: lookups, attributes, listings and symlinks come from the manifest
 * in memory (a mount is ready in milliseconds at any model size), reads go through the store's
 * {@link dev.thaw.store.ModelReader}. {@link dev.thaw.fuse.ModelFileSystem} holds the logic and knows no FUSE
 * binding; {@code FuseLowLevel} binds it to libfuse 3's low-level API through FFM (inodes fixed at mount, reads of
 * cached chunks replied by splice from their files). Depends on {@code store} only; never on Micronaut.
 */
package dev.thaw.fuse;
