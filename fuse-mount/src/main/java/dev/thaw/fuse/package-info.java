/**
 * A read-only FUSE file system over a manifest: lookups, attributes, listings and symlinks come from the manifest
 * in memory (a mount is ready in milliseconds at any model size), reads go through the store's
 * {@link dev.thaw.store.ModelReader}. {@link dev.thaw.fuse.ModelFileSystem} holds the logic and knows no FUSE
 * binding; {@code FuseSession} speaks the kernel's FUSE protocol on the descriptor libfuse mounted, through FFM: a
 * complete, verified file is read by the kernel from its whole-file copy in the cache (FUSE passthrough), other reads
 * are replied from cached chunk files by splice, or from memory while bytes arrive. Depends on {@code store} only;
 * never on Micronaut.
 */
package dev.thaw.fuse;
