package dev.thaw.examples.ortserver;

import java.util.List;

/**
 * The answer to one {@link InferRequest}.
 *
 * @param modelName the model that answered
 * @param modelVersion the version that answered
 * @param id the request's id; empty when it had none
 * @param outputs the outputs in the order asked for (the configuration's order when none were named), each with its
 *     shape as the model produced it and its bytes little-endian
 */
record InferResult(String modelName, long modelVersion, String id, List<Tensor> outputs) {}
