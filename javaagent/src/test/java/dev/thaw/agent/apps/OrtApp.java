package dev.thaw.agent.apps;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import java.nio.FloatBuffer;
import java.util.Arrays;
import java.util.Map;

/**
 * A Java server's model load as ONNX Runtime's users write it: {@code createSession(path)} on the path it was given
 * ({@code args[0]}), then one inference of {@code args[1]} inputs of 1.0; prints the first output value.
 */
public final class OrtApp {
  private OrtApp() {}

  public static void main(String[] args) throws Exception {
    OrtEnvironment env = OrtEnvironment.getEnvironment();
    try (OrtSession session = env.createSession(args[0], new OrtSession.SessionOptions())) {
      int width = Integer.parseInt(args[1]);
      float[] input = new float[width];
      Arrays.fill(input, 1f);
      String name = session.getInputNames().iterator().next();
      try (OnnxTensor t = OnnxTensor.createTensor(env, FloatBuffer.wrap(input), new long[] {1, width});
           OrtSession.Result r = session.run(Map.of(name, t))) {
        float[][] out = (float[][]) r.get(0).getValue();
        System.out.println("first output " + out[0][0]);
      }
    }
  }
}
