// qplug: quantize LibTorch models with plugin-provided methods. See `qplug help`.
#include <iostream>
#include <string>
#include <vector>

#include "cli.hpp"
#include "qplug/core/runtime.hpp"
#include "qplug/sdk/errors.hpp"

namespace {

const char* kUsage =
    "usage: qplug <command> [options]\n"
    "\n"
    "commands:\n"
    "  demo     [--model DIR --data FILE [--windows 20]] [--workdir DIR] [--keep] [--json]\n"
    "           quantize a model (default: a synthetic Llama) with every method found, save,\n"
    "           reload and evaluate each, and print one table\n"
    "  plugins  [--json] [--plugin-dir DIR]...\n"
    "           every plugin found, and every library on the plugin path that was rejected\n"
    "  inspect  --model DIR --config FILE [--json] [--plugin-dir DIR]...\n"
    "           the quantization plan: per module, quantize or keep, the rule that decided, and\n"
    "           its size before and after (reads config.json and safetensors headers only)\n"
    "  quantize --model DIR --config FILE --out DIR [--calibration FILE] [--overwrite]\n"
    "           [--max-shard-size 5GB] [--json]\n"
    "           quantize a checkpoint and save it as transformers would\n"
    "  eval     --model DIR --data FILE [--seq-len 512] [--windows N] [--batch-size 4] [--json]\n"
    "           perplexity over non-overlapping windows (BOS + seq-len - 1 tokens each); FILE is\n"
    "           text (tokenized with the model's tokenizer.model) or a .ids file of token ids\n"
    "  generate --model DIR --prompt TEXT [--max-new-tokens 128]\n"
    "           greedy continuation of the prompt\n"
    "  help     this text\n"
    "\n"
    "exit codes: 0 success, 1 error, 2 usage error\n";

}  // namespace

int main(int argc, char** argv) {
  using namespace qplug::cli;
  qplug::restart_with_sleeping_idle_threads(argv);
  if (argc < 2) {
    std::cerr << kUsage;
    return kExitUsage;
  }
  qplug::configure_cpu_threads();
  qplug::configure_allocator();
  const std::string command = argv[1];
  const std::vector<std::string> args(argv + 2, argv + argc);
  try {
    if (command == "plugins") return run_plugins(args);
    if (command == "inspect") return run_inspect(args);
    if (command == "eval") return run_eval(args);
    if (command == "quantize") return run_quantize(args);
    if (command == "demo") return run_demo(args);
    if (command == "generate") return run_generate(args);
    if (command == "help" || command == "--help" || command == "-h") {
      std::cout << kUsage;
      return kExitOk;
    }
    throw UsageError{"unknown command '" + command + "'"};
  } catch (const UsageError& e) {
    std::cerr << "qplug: " << e.message << "\n\n" << kUsage;
    return kExitUsage;
  } catch (const qplug::Error& e) {
    std::cerr << "qplug " << command << ": " << e.kind() << ": " << e.what() << "\n";
    return kExitError;
  } catch (const std::exception& e) {
    std::cerr << "qplug " << command << ": " << e.what() << "\n";
    return kExitError;
  }
}
