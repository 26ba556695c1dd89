// save_model: a checkpoint folder written into a temporary folder and renamed into place.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "checkpoint/checkpoint_layout.hpp"
#include "qplug/core/model_io.hpp"
#include "qplug/sdk/errors.hpp"
#include "qplug/sdk/torch_interop.hpp"

namespace qplug {

namespace fs = std::filesystem;

namespace {

// Files that belong to the weights or config of the source checkpoint, not to be copied.
bool is_model_file(const std::string& name) {
  if (name == "config.json" || name == "model.safetensors.index.json" ||
      name == "pytorch_model.bin.index.json")
    return true;
  const auto ends = [&](const char* suffix) {
    const std::string s(suffix);
    return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
  };
  return ends(".safetensors") || ends(".bin") || ends(".pt") || ends(".pth");
}

void write_file(const fs::path& path, const std::string& contents) {
  std::ofstream out(path, std::ios::binary);
  out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
  out.close();
  if (!out) throw CheckpointError(path.string(), "", "cannot write the file (disk full?)");
}

// Flushes a file or directory to disk, so the rename below publishes complete data.
void sync_path(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

// What a linear's kernel or a module holds now, by local name (nothing for other modules).
std::vector<std::pair<std::string, at::Tensor>> held_tensors(nn::LinearImpl* linear,
                                                             models::TensorHolder* holder) {
  if (linear != nullptr) return linear->kernel().tensors();
  if (holder != nullptr) return holder->own_tensors();
  return {};
}

// A tensor to store: its name and form in the file, and the slot whose module gives its bytes.
struct PlannedTensor {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;  // in checkpoint layout
  uint64_t nbytes = 0;
  const TensorSlot* slot = nullptr;
};

struct SavePlan {
  std::map<std::string, TensorSlot> slots;
  std::vector<PlannedTensor> tensors;  // in the model's definition order (as a state dict is)
};

// The tensors to store, tied copies left out: names, dtypes and shapes only. A kernel may make its
// checkpoint tensors on the fly (a quantized layer that computes from another layout), so they are
// taken from its specs where those say it all (specs_describe_tensors), else each module's are
// dropped once measured; all are fetched again when written (TensorFetcher), which checks them
// against the plan.
SavePlan plan_tensors(Model& model) {
  SavePlan plan;
  plan.slots = tensor_slots(model, /*for_saving=*/true);
  for (const auto& item : model.root().named_modules("", /*include_self=*/false)) {
    auto* linear = dynamic_cast<nn::LinearImpl*>(item.value().get());
    if (linear != nullptr && specs_describe_tensors(linear->kernel())) {
      for (const auto& spec : linear->kernel().tensor_specs()) {
        PlannedTensor p;
        p.name = item.key() + "." + spec.suffix;
        p.slot = &plan.slots.at(p.name);
        if (p.slot->optional) continue;  // a tied copy is not stored again
        p.dtype = spec.dtype;
        p.shape = checkpoint_shape(*p.slot);
        p.nbytes = static_cast<uint64_t>(spec.bytes());
        plan.tensors.push_back(std::move(p));
      }
      continue;
    }
    const auto held = held_tensors(linear, dynamic_cast<models::TensorHolder*>(item.value().get()));
    for (const auto& [local, t] : held) {
      const std::string name = item.key() + "." + local;
      const TensorSlot& slot = plan.slots.at(name);
      if (slot.optional) continue;  // a tied copy is not stored again
      if (!t.defined() || t.device().is_meta())
        throw CheckpointError("", name, "holds no data (the layer was never loaded)");
      PlannedTensor p;
      p.name = name;
      p.dtype = from_scalar_type(t.scalar_type());
      p.shape = to_checkpoint_layout(slot, t).sizes().vec();
      p.nbytes = static_cast<uint64_t>(t.numel()) * t.element_size();
      p.slot = &slot;
      plan.tensors.push_back(std::move(p));
    }
  }
  return plan;
}

// Gives the bytes of one planned tensor at a time, in checkpoint layout on the CPU: it asks a
// module for its tensors when the first of them is written and keeps them until another module's
// are asked for (a file's tensors go in name order, which keeps a module's together), so at most
// one module's tensors and one converted copy are in memory beside the model.
class TensorFetcher {
 public:
  const void* bytes(const PlannedTensor& planned) {
    const TensorSlot& slot = *planned.slot;
    const void* module = slot.linear != nullptr ? static_cast<const void*>(slot.linear)
                                                : static_cast<const void*>(slot.holder);
    if (module != module_) {
      held_.clear();
      converted_ = at::Tensor();
      held_ = held_tensors(slot.linear, slot.holder);
      module_ = module;
    }
    for (const auto& [local, t] : held_) {
      if (local != slot.local) continue;
      if (!t.defined() || t.device().is_meta())
        throw CheckpointError("", planned.name, "holds no data (the layer was never loaded)");
      converted_ = to_checkpoint_layout(slot, t).to(c10::kCPU).contiguous();
      if (from_scalar_type(converted_.scalar_type()) != planned.dtype ||
          converted_.sizes().vec() != planned.shape)
        throw CheckpointError("", planned.name,
                              "is " + shape_string(converted_.sizes().vec()) + " " +
                                  safetensors_name(from_scalar_type(converted_.scalar_type())) +
                                  " in the layer but " + shape_string(planned.shape) + " " +
                                  safetensors_name(planned.dtype) +
                                  " in its kernel's tensor_specs() or when the save began");
      return converted_.data_ptr();
    }
    throw CheckpointError("", planned.name,
                          "holds no data: the layer was never loaded, or its kernel's "
                          "tensor_specs() name a tensor its tensors() do not hold");
  }

 private:
  const void* module_ = nullptr;
  std::vector<std::pair<std::string, at::Tensor>> held_;
  at::Tensor converted_;
};

void write_weights(const fs::path& dir, const SavePlan& plan, uint64_t max_shard_bytes) {
  std::vector<std::pair<std::string, uint64_t>> sizes;
  std::map<std::string, const PlannedTensor*> by_name;
  uint64_t total = 0;
  for (const auto& t : plan.tensors) {
    sizes.emplace_back(t.name, t.nbytes);
    by_name[t.name] = &t;
    total += t.nbytes;
  }
  const ShardPlan shards = plan_shards(sizes, max_shard_bytes);
  std::vector<std::pair<std::string, std::string>> weight_map;
  TensorFetcher fetcher;
  for (const auto& [file, names] : shards.shards) {
    std::vector<SafetensorsTensor> out;
    for (const auto& name : names) {
      const PlannedTensor& t = *by_name.at(name);
      out.push_back({name, t.dtype, t.shape, nullptr, t.nbytes});
      weight_map.emplace_back(name, file);
    }
    write_safetensors_streamed(
        (dir / file).string(), std::move(out),
        [&](const SafetensorsTensor& t) { return fetcher.bytes(*by_name.at(t.name)); });
  }
  if (shards.shards.size() > 1)
    write_shard_index((dir / "model.safetensors.index.json").string(), total, weight_map);
}

Value config_to_save(Model& model) {
  Value config = model.hf_config();
  config.set("torch_dtype", torch_name(model.dtype()));
  if (!model.is_quantized()) config.erase("quantization_config");
  // A quantized head is no longer the embedding: say so, or loaders would tie them again.
  const Value* tie = config.find("tie_word_embeddings");
  if (tie != nullptr && tie->is_bool() && tie->as_bool() && model.describe().tied_weights.empty())
    config.set("tie_word_embeddings", false);
  return config;
}

// Renames `staged` to `destination`, replacing an existing folder only when asked to.
void publish(const fs::path& staged, const fs::path& destination, bool overwrite) {
  std::error_code ec;
  if (!fs::exists(destination, ec)) {
    fs::rename(staged, destination, ec);
    if (ec)
      throw CheckpointError(destination.string(), "", "cannot move into place: " + ec.message());
    return;
  }
  fs::path backup = destination;
  backup += ".old-" + std::to_string(::getpid());
  fs::rename(destination, backup, ec);
  if (ec) throw CheckpointError(destination.string(), "", "cannot replace it: " + ec.message());
  fs::rename(staged, destination, ec);
  if (ec) {
    fs::rename(backup, destination);  // put the old one back
    throw CheckpointError(destination.string(), "", "cannot move into place: " + ec.message());
  }
  fs::remove_all(backup, ec);
  (void)overwrite;
}

}  // namespace

std::string config_json_text(const Value& hf_config) {
  JsonWriteOptions options;
  options.indent = 2;
  options.sort_keys = true;
  return to_json(hf_config, options) + "\n";
}

void save_model(Model& model, const std::string& folder, const SaveOptions& options) {
  const fs::path destination = fs::absolute(folder).lexically_normal();
  std::error_code ec;
  if (fs::exists(destination, ec)) {
    if (!fs::is_directory(destination, ec))
      throw CheckpointError(folder, "", "exists and is not a folder");
    if (!options.overwrite)
      throw CheckpointError(folder, "", "already exists; pass --overwrite to replace it");
  }
  fs::create_directories(destination.parent_path(), ec);
  std::string pattern =
      (destination.parent_path() / ("." + destination.filename().string() + ".tmp-XXXXXX"))
          .string();
  if (::mkdtemp(pattern.data()) == nullptr)
    throw CheckpointError(
        folder, "",
        "cannot create a temporary folder beside it: " + std::string(std::strerror(errno)));
  const fs::path staged = pattern;
  try {
    write_weights(staged, plan_tensors(model), options.max_shard_bytes);
    write_file(staged / "config.json", config_json_text(config_to_save(model)));
    for (const auto& [name, contents] : options.extra_files)
      write_file(staged / name, contents);
    if (!options.copy_files_from.empty()) {
      for (const auto& entry : fs::directory_iterator(options.copy_files_from)) {
        const std::string name = entry.path().filename().string();
        if (!entry.is_regular_file() || is_model_file(name) || fs::exists(staged / name)) continue;
        fs::copy_file(entry.path(), staged / name);
      }
    }
    for (const auto& entry : fs::directory_iterator(staged))
      sync_path(entry.path());
    sync_path(staged);
    publish(staged, destination, options.overwrite);
    sync_path(destination.parent_path());
  } catch (const fs::filesystem_error& e) {
    fs::remove_all(staged, ec);
    throw CheckpointError(folder, "", e.what());
  } catch (const CheckpointError& e) {
    fs::remove_all(staged, ec);
    // A tensor that cannot be saved is reported without a file; name the folder being written.
    if (!e.file().empty()) throw;
    throw CheckpointError(folder, e.tensor(), e.detail());
  } catch (...) {
    fs::remove_all(staged, ec);
    throw;
  }
}

}  // namespace qplug
