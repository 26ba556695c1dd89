// Loading streams a checkpoint into the model: resident memory grows by the model's size and not
// by the model plus the mapped file. Measured on a synthetic untied Llama of ~340 MB (fp32).
//
// The measurement runs in a fresh process (this program re-executed with --load-child), so that
// nothing the test did before (writing the checkpoint) is in its peak, and so that no process
// that has started LibTorch threads is ever forked: the child is started with posix_spawn, which
// execs at once.
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/nn/module.h>

#include "memory_probe.hpp"
#include "qplug/core/model_io.hpp"
#include "qplug/core/models.hpp"
#include "qplug/core/safetensors.hpp"
#include "qplug/sdk/linear.hpp"
#include "synthetic_checkpoint.hpp"
#include "test_support.hpp"

extern char** environ;

namespace qplug {
namespace {

namespace fs = std::filesystem;

using testing::reset_peak;
using testing::status_kb;

// The child: load the checkpoint and report resident memory before and at the peak.
int load_child(const std::string& folder) {
  // Start LibTorch's own machinery (allocator, thread pool) before the baseline, so the
  // difference is the load's.
  (void)(at::ones({1024}) * 2).sum().item<float>();
  const bool reset = reset_peak();
  const int64_t baseline = status_kb("VmRSS");
  LoadedModel loaded = load_model(folder);
  const int64_t peak = status_kb("VmHWM");
  const int64_t after = status_kb("VmRSS");
  int64_t held = 0;  // bytes the model holds
  for (const NamedLinear& l : loaded.model->linear_layers())
    for (const auto& [suffix, t] : l.layer->kernel().tensors())
      held += t.numel() * t.element_size();
  for (const auto& p : loaded.model->root().named_parameters())
    held += p.value().numel() * p.value().element_size();
  std::printf("reset %d\nbaseline_kb %lld\npeak_kb %lld\nafter_kb %lld\nheld_bytes %lld\n",
              reset ? 1 : 0, static_cast<long long>(baseline), static_cast<long long>(peak),
              static_cast<long long>(after), static_cast<long long>(held));
  return 0;
}

// Runs this program with the given arguments and returns its exit status and stdout.
std::pair<int, std::string> run_self(const std::vector<std::string>& args) {
  int pipe_fds[2];
  if (::pipe(pipe_fds) != 0) return {-1, "pipe failed"};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, pipe_fds[0]);
  const std::string self = fs::read_symlink("/proc/self/exe").string();
  std::vector<std::string> argv_text{self};
  argv_text.insert(argv_text.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_text)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int spawned = posix_spawn(&pid, self.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(pipe_fds[1]);
  std::string out;
  char buffer[4096];
  ssize_t n = 0;
  while ((n = ::read(pipe_fds[0], buffer, sizeof(buffer))) > 0)
    out.append(buffer, n);
  ::close(pipe_fds[0]);
  if (spawned != 0) return {-1, std::string("posix_spawn: ") + std::strerror(spawned)};
  int status = 0;
  ::waitpid(pid, &status, 0);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

std::map<std::string, int64_t> parse_report(const std::string& text) {
  std::map<std::string, int64_t> out;
  std::istringstream in(text);
  std::string key;
  int64_t value = 0;
  while (in >> key >> value)
    out[key] = value;
  return out;
}

TEST(LoadMemory, PeakStaysNearTheCheckpointSize) {
  testing::TempDir tmp;
  const fs::path folder = tmp / "synthetic";
  // ~340 MB of float32.
  const uint64_t bytes = testing::write_synthetic_checkpoint(
      folder, testing::synthetic_llama_config(1024, 2816, 4, 16000));
  ASSERT_GT(bytes, 300ull << 20);
  ASSERT_LT(bytes, 400ull << 20);

  const auto [status, out] = run_self({"--load-child", folder.string()});
  ASSERT_EQ(status, 0) << out;
  auto report = parse_report(out);
  for (const char* key : {"reset", "baseline_kb", "peak_kb", "after_kb", "held_bytes"})
    ASSERT_TRUE(report.count(key)) << "no " << key << " in:\n" << out;
  // The loaded model holds exactly the checkpoint's tensors (untied: no sharing).
  EXPECT_EQ(static_cast<uint64_t>(report["held_bytes"]), bytes);

  const double grown = static_cast<double>(report["peak_kb"] - report["baseline_kb"]) * 1024;
  const double size = static_cast<double>(bytes);
  RecordProperty("checkpoint_bytes", std::to_string(bytes));
  RecordProperty("peak_growth_bytes", std::to_string(static_cast<int64_t>(grown)));
  std::printf("checkpoint %.1f MB, resident growth at peak %.1f MB (%.3fx), after load %.1f MB\n",
              size / 1e6, grown / 1e6, grown / size,
              static_cast<double>(report["after_kb"] - report["baseline_kb"]) * 1024 / 1e6);
  // Mapped pages are released as they are copied, so the peak is the model plus little.
  EXPECT_LE(grown, 1.2 * size) << out;
  // And the load really materialised the weights (a lazy map would stay near zero).
  EXPECT_GE(grown, 0.9 * size) << out;
  if (report["reset"] == 0)
    std::printf("note: /proc/self/clear_refs refused; the peak includes start-up\n");
}

}  // namespace
}  // namespace qplug

int main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == "--load-child") return qplug::load_child(argv[2]);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
