/**
 * The lazy store: manifests, chunking, origins ({@code file://}, {@code http(s)://}, {@code s3://}), the
 * verified chunk cache, the prioritised single-flight fetcher, the reader API and access profiles.
 *
 * <p>Everything else in Thaw reads model bytes through this package. It must never depend on Micronaut, FUSE or
 * any other Thaw module. Entry points: {@link dev.thaw.store.Origins}, {@link dev.thaw.store.ModelStore},
 * {@link dev.thaw.store.ChunkCache}, {@link dev.thaw.store.ModelReader}, {@link dev.thaw.store.Pusher},
 * {@link dev.thaw.store.GarbageCollector} and {@link dev.thaw.store.DirectListing}.
 */
package dev.thaw.store;
