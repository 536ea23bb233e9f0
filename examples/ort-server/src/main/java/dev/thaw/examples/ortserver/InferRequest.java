package dev.thaw.examples.ortserver;

import java.util.List;

/**
 * One inference request, decoded from either protocol.
 *
 * @param id the client's request id, echoed in the response; empty when none
 * @param inputs the input tensors in request order
 * @param outputs the names of the outputs asked for, in order; empty for every output in the model configuration
 */
record InferRequest(String id, List<Tensor> inputs, List<String> outputs) {}
