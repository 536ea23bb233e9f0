/**
 * Where replicas of models go in a cluster of GPU nodes, so that cold starts are cheap: a snapshot on local disk beats
 * weights in the local cache, which beat a peer's copy, which beats the origin.
 *
 * <p>{@link dev.thaw.placement.Cluster} holds the nodes (GPUs, zone, cache, bandwidth per tier, what each holds), the
 * models (bytes, GPUs per replica, boot time, demand) and the replicas running now. {@link dev.thaw.placement.StartCost}
 * prices a new replica of a model on a node. Every {@link dev.thaw.placement.PlacementPolicy} turns a cluster into a
 * {@link dev.thaw.placement.Plan}: {@link dev.thaw.placement.MipPlacement} solves an integer program with OR-Tools'
 * CP-SAT; {@link dev.thaw.placement.Baselines} are the published rules it is compared with. A pure library: no other
 * Thaw module, no framework.
 */
package dev.thaw.placement;
