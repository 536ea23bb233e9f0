package dev.thaw.cli;

import com.sun.tools.attach.AgentLoadException;
import com.sun.tools.attach.VirtualMachine;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(name = "attach", mixinStandardHelpOptions = true,
    description = {
      "Load Thaw's Java agent into a running JVM (the JDK's Attach API): its model loads from then on go through Thaw "
          + "as with -javaagent:thaw-agent.jar; models it loaded before are not, and the agent says so.",
      "The JVM must run as the same user; Java 21 and later print a warning for an agent loaded this way unless the "
          + "JVM was started with -XX:+EnableDynamicAgentLoading.",
      "Example: thaw attach 4242 --options map=/models/resnet=resnet:v1"
    })
final class AttachCommand implements Callable<Integer> {
  @Parameters(paramLabel = "PID", description = "The JVM's process id.")
  long pid;

  @Option(names = "--agent", paramLabel = "JAR",
      description = "The agent's jar. Default: $THAW_AGENT_JAR, else javaagent/target/thaw-agent.jar of the checkout "
          + "this thaw runs from.")
  Path agent;

  @Option(names = "--options", paramLabel = "OPTIONS",
      description = "The agent's options, as after -javaagent:thaw-agent.jar= (sidecar=URL,map=PREFIX=SOURCE;...).")
  String options;

  @Override
  public Integer call() throws Exception {
    Path jar = agentJar();
    VirtualMachine vm;
    try {
      vm = VirtualMachine.attach(Long.toString(pid));
    } catch (com.sun.tools.attach.AttachNotSupportedException | IOException e) {
      throw new IOException("cannot attach to process " + pid + " (a JVM of this user?): " + e.getMessage(), e);
    }
    try {
      vm.loadAgent(jar.toString(), options);
    } catch (AgentLoadException e) {
      throw new IOException("process " + pid + " did not load " + jar + ": " + e.getMessage(), e);
    } finally {
      vm.detach();
    }
    System.err.println("thaw attach: the agent runs in process " + pid + " (its stderr says what it serves)");
    return 0;
  }

  private Path agentJar() throws IOException {
    Path jar = agent;
    if (jar == null && System.getenv("THAW_AGENT_JAR") != null) {
      jar = Path.of(System.getenv("THAW_AGENT_JAR"));
    }
    if (jar == null) {
      // thaw runs from sidecar/target/thaw-sidecar.jar (or sidecar/target/classes) of a checkout
      Path self = Path.of(AttachCommand.class.getProtectionDomain().getCodeSource().getLocation().getPath());
      jar = self.getParent().getParent().getParent().resolve("javaagent/target/thaw-agent.jar");
    }
    if (!Files.isRegularFile(jar)) {
      throw new IOException("no agent jar at " + jar + ": build it (./mvnw -pl javaagent -am package) or give --agent "
          + "or THAW_AGENT_JAR");
    }
    return jar.toAbsolutePath();
  }
}
