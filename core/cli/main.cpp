// qplug: quantize LibTorch models with plugin-provided methods. See `qplug help`.
#include <iostream>
#include <string>
#include <vector>

#include "cli.hpp"
#include "qplug/sdk/errors.hpp"

namespace {

const char* kUsage =
    "usage: qplug <command> [options]\n"
    "\n"
    "commands:\n"
    "  plugins  [--json] [--plugin-dir DIR]...\n"
    "           every plugin found, and every library on the plugin path that was rejected\n"
    "  inspect  --model DIR --config FILE [--json] [--plugin-dir DIR]...\n"
    "           the quantization plan: per module, quantize or keep, the rule that decided, and\n"
    "           its size before and after (reads config.json and safetensors headers only)\n"
    "  help     this text\n"
    "\n"
    "exit codes: 0 success, 1 error, 2 usage error\n";

}  // namespace

int main(int argc, char** argv) {
  using namespace qplug::cli;
  if (argc < 2) {
    std::cerr << kUsage;
    return kExitUsage;
  }
  const std::string command = argv[1];
  const std::vector<std::string> args(argv + 2, argv + argc);
  try {
    if (command == "plugins") return run_plugins(args);
    if (command == "inspect") return run_inspect(args);
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
