#include "qplug/sdk/model_description.hpp"

#include "qplug/sdk/targeting.hpp"

namespace qplug {

int64_t ParamInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

int64_t ModuleInfo::bytes() const {
  int64_t total = 0;
  for (const auto& p : params)
    total += p.bytes();
  return total;
}

std::string ModuleInfo::leaf() const {
  const auto dot = name.rfind('.');
  return dot == std::string::npos ? name : name.substr(dot + 1);
}

const ModuleInfo* ModelDescription::find(const std::string& name) const {
  for (const auto& m : modules)
    if (m.name == name) return &m;
  return nullptr;
}

int64_t ModelDescription::total_bytes() const {
  int64_t total = 0;
  for (const auto& m : modules)
    total += m.bytes();
  return total;
}

const char* to_string(Decision decision) {
  switch (decision) {
    case Decision::Quantize:
      return "quantize";
    case Decision::Keep:
      return "keep";
    case Decision::Unsupported:
      return "unsupported";
  }
  return "?";
}

const TargetEntry* TargetPlan::find(const std::string& module) const {
  for (const auto& e : entries)
    if (e.module == module) return &e;
  return nullptr;
}

bool TargetPlan::quantizes(const std::string& module) const {
  const TargetEntry* e = find(module);
  return e != nullptr && e->decision == Decision::Quantize;
}

std::vector<std::string> TargetPlan::quantized_modules() const {
  std::vector<std::string> out;
  for (const auto& e : entries)
    if (e.decision == Decision::Quantize) out.push_back(e.module);
  return out;
}

std::vector<std::string> TargetPlan::kept_linears() const {
  std::vector<std::string> out;
  for (const auto& e : entries)
    if (e.decision != Decision::Quantize && e.is_linear) out.push_back(e.module);
  return out;
}

std::vector<const TargetEntry*> TargetPlan::unsupported() const {
  std::vector<const TargetEntry*> out;
  for (const auto& e : entries)
    if (e.decision == Decision::Unsupported) out.push_back(&e);
  return out;
}

int64_t TargetPlan::bytes_before() const {
  int64_t total = 0;
  for (const auto& e : entries)
    total += e.bytes_before;
  return total;
}

int64_t TargetPlan::bytes_after() const {
  int64_t total = 0;
  for (const auto& e : entries)
    total += e.bytes_after;
  return total;
}

}  // namespace qplug
