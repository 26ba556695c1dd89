// The qplug command: shared pieces of the subcommands (arguments, output, exit codes).
//
// Exit codes: 0 success; 1 an error (bad input, failed step: the message says what and where);
// 2 a usage error (unknown command or option, missing argument).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "qplug/sdk/host_services.hpp"
#include "qplug/sdk/value.hpp"

namespace qplug::cli {

constexpr int kExitOk = 0;
constexpr int kExitError = 1;
constexpr int kExitUsage = 2;

// A usage mistake: reported with the command's usage text and exit code 2.
struct UsageError {
  std::string message;
};

// --name value / --name=value options, --flag switches, and repeated options.
class Args {
 public:
  // `flags` take no value; every other option named in `options` takes one. Anything else is a
  // UsageError.
  Args(const std::vector<std::string>& argv, const std::vector<std::string>& options,
       const std::vector<std::string>& flags);
  bool flag(const std::string& name) const;
  std::optional<std::string> get(const std::string& name) const;  // last occurrence
  std::string require(const std::string& name) const;
  std::vector<std::string> all(const std::string& name) const;  // every occurrence
  int64_t get_int(const std::string& name, int64_t fallback) const;

 private:
  std::map<std::string, std::vector<std::string>> values_;
  std::map<std::string, bool> flags_;
};

// "1.5 MiB"
std::string human_bytes(int64_t bytes);
// Prints rows as left-aligned columns (the header is the first row).
void print_table(std::ostream& out, const std::vector<std::vector<std::string>>& rows);
// Pretty JSON (indent 2) with a trailing newline.
void print_json(std::ostream& out, const Value& value);

// Prints a host's warnings (e.g. a skip rule that matches nothing) on stderr.
void print_log(LogLevel level, const std::string& message);

// Subcommands: argv excludes the program and command names. Each returns an exit code and throws
// UsageError or qplug::Error.
int run_plugins(const std::vector<std::string>& argv);
int run_inspect(const std::vector<std::string>& argv);
int run_eval(const std::vector<std::string>& argv);
int run_generate(const std::vector<std::string>& argv);
int run_quantize(const std::vector<std::string>& argv);
int run_demo(const std::vector<std::string>& argv);

}  // namespace qplug::cli
