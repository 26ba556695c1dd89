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

#include "qplug/core/model_io.hpp"
#include "qplug/core/models.hpp"
#include "qplug/core/safetensors.hpp"
#include "qplug/sdk/linear.hpp"
#include "test_support.hpp"

extern char** environ;

namespace qplug {
namespace {

namespace fs = std::filesystem;

// A field of /proc/self/status in kB ("VmRSS", "VmHWM"), or -1.
int64_t status_kb(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field + ":", 0) == 0) return std::stoll(line.substr(field.size() + 1));
  return -1;
}

// Resets VmHWM to the current RSS (Linux >= 4.0), so the peak is the load's and not an earlier
// moment's. Returns false where the kernel refuses.
bool reset_peak() {
  std::ofstream out("/proc/self/clear_refs");
  out << "5";
  out.close();
  return static_cast<bool>(out);
}

Value synthetic_config() {
  Value c = Value::map();
  c.set("model_type", "llama");
  c.set("vocab_size", 16000);
  c.set("hidden_size", 1024);
  c.set("intermediate_size", 2816);
  c.set("num_hidden_layers", 4);
  c.set("num_attention_heads", 16);
  c.set("num_key_value_heads", 16);
  c.set("max_position_embeddings", 2048);
  c.set("rms_norm_eps", 1e-5);
  c.set("tie_word_embeddings", false);
  c.set("torch_dtype", "float32");
  return c;
}

// Writes the checkpoint without building the model: names and shapes from a meta skeleton,
// values from a cheap integer hash (not zeros, so no page could be shared or skipped). Returns
// the bytes of tensor data.
uint64_t write_synthetic_checkpoint(const fs::path& folder) {
  fs::create_directories(folder);
  const Value config = synthetic_config();
  ModelBuildOptions meta;
  meta.device = "meta";
  auto skeleton = build_model(config, meta);
  std::vector<std::vector<float>> buffers;
  std::vector<SafetensorsTensor> tensors;
  uint64_t total = 0;
  uint32_t state = 12345;
  for (const auto& e : expected_checkpoint_tensors(*skeleton)) {
    if (e.optional) continue;
    int64_t numel = 1;
    for (int64_t d : e.shape)
      numel *= d;
    buffers.emplace_back(static_cast<size_t>(numel));
    for (float& v : buffers.back()) {
      state = state * 1664525u + 1013904223u;
      v = static_cast<float>(static_cast<int32_t>(state >> 8) - (1 << 23)) * 1e-9f;
    }
    const uint64_t bytes = static_cast<uint64_t>(numel) * sizeof(float);
    tensors.push_back({e.name, DType::F32, e.shape, buffers.back().data(), bytes});
    total += bytes;
  }
  write_safetensors((folder / "model.safetensors").string(), std::move(tensors));
  std::ofstream(folder / "config.json") << config_json_text(config);
  return total;
}

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
  const uint64_t bytes = write_synthetic_checkpoint(folder);
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
