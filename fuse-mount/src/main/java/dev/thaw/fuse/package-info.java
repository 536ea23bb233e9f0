/**
 * A read-only FUSE file system over a manifest: lookups, attributes, listings and symlinks come from the manifest
 * in memory (a mount is ready in milliseconds at any model size), reads go through the store's
 * {@link dev.thaw.store.ModelReader}. {@link dev.thaw.fuse.ModelFileSystem} holds the logic and knows no FUSE
 * binding; {@code JfuseOperations} adapts it to jfuse (libfuse 3 through the FFM API), so another binding is one
 * more thin adapter. Depends on {@code store} only; never on Micronaut.
 */
package dev.thaw.fuse;
