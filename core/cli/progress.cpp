#include "progress.hpp"

#include <unistd.h>

#include <cstdio>

namespace qplug::cli {

Progress::Progress() : terminal_(isatty(STDERR_FILENO) != 0) {}

void Progress::update(const std::string& task, int64_t done, int64_t total) {
  const auto now = std::chrono::steady_clock::now();
  if (task != task_) {
    finish();
    task_ = task;
    started_ = now;
    last_draw_ = {};
  }
  done_ = done;
  total_ = total;
  if (terminal_ && (now - last_draw_ > std::chrono::milliseconds(100) || done == total)) {
    last_draw_ = now;
    const int width = 30;
    const int filled = total > 0 ? static_cast<int>(width * done / total) : width;
    std::fprintf(stderr, "\r%-40.40s [%s%s] %lld/%lld", task_.c_str(),
                 std::string(filled, '#').c_str(), std::string(width - filled, '.').c_str(),
                 static_cast<long long>(done), static_cast<long long>(total));
    std::fflush(stderr);
  }
  if (done >= total) finish();
}

void Progress::finish() {
  if (task_.empty()) return;
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  if (terminal_)
    std::fprintf(stderr, "  %.1f s\n", seconds);
  else
    std::fprintf(stderr, "%s: %lld/%lld in %.1f s\n", task_.c_str(), static_cast<long long>(done_),
                 static_cast<long long>(total_), seconds);
  task_.clear();
}

}  // namespace qplug::cli
