/**
 * The sidecar service (Micronaut): the REST API over mounts, cold-start timelines, metrics and health. The only
 * module that knows Micronaut; the libraries it wires (store, fuse-mount, checkpoint-native, placement) do not.
 */
package dev.thaw.sidecar;
