// Progress bars on stderr for long work. Drawn in place when stderr is a terminal; otherwise (CI
// logs, pipes) one line per task when it finishes, so logs stay readable.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace qplug::cli {

class Progress {
 public:
  Progress();
  // Reports `done` of `total` for `task`; a new task name starts a new bar.
  void update(const std::string& task, int64_t done, int64_t total);
  // Ends the current bar (prints its final line).
  void finish();

 private:
  bool terminal_;
  std::string task_;
  int64_t total_ = 0;
  int64_t done_ = 0;
  std::chrono::steady_clock::time_point started_;
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace qplug::cli
