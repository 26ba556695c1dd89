// Test helper for runtime_env.sh: reports each start of the process, lets
// qplug::restart_with_sleeping_idle_threads do what qplug's main() does, then prints the variables
// it manages as the restarted process sees them.
#include <cstdio>
#include <cstdlib>
#include <initializer_list>

#include "qplug/core/runtime.hpp"

int main(int, char** argv) {
  std::printf("start\n");
  std::fflush(stdout);  // execv drops whatever stdio still buffers
  qplug::restart_with_sleeping_idle_threads(argv);
  for (const char* name : {"OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OPENBLAS_THREAD_TIMEOUT"}) {
    const char* value = std::getenv(name);
    std::printf("%s=%s\n", name, value ? value : "(unset)");
  }
  return 0;
}
