// Checkpoint folders: every architecture and dtype round-trips (load -> save -> load gives the same
// tensors, the same bytes and the same logits), tied heads are neither stored nor invented, dtype
// conversion on load is exact, sharded folders, GPT-2's bare-name checkpoints, every kind of bad
// input names its file and tensor or key, and saving never leaves a half-written folder behind.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "model_test_util.hpp"
#include "qplug/core/checkpoint.hpp"
#include "qplug/core/model_io.hpp"
#include "qplug/core/models.hpp"
#include "qplug/core/safetensors.hpp"
#include "qplug/sdk/cpu_linear_kernel.hpp"
#include "qplug/sdk/errors.hpp"
#include "qplug/sdk/torch_interop.hpp"
#include "test_support.hpp"

namespace qplug {
namespace {

namespace fs = std::filesystem;
using testing::contains;
using testing::every_architecture;
using testing::folder_entries;
using testing::llama_family_config;
using testing::logits_of;
using testing::model_tensors;
using testing::random_ids;
using testing::random_model;
using testing::read_bytes;
using testing::TempDir;
using testing::with_dtype;
using Tensors = std::map<std::string, at::Tensor>;

// Every tensor of a safetensors file, copied out of the mapping.
Tensors read_file_tensors(const fs::path& path) {
  auto file = SafetensorsFile::open(path.string());
  Tensors out;
  for (const auto& e : file->entries())
    out[e.name] = at::from_blob(const_cast<uint8_t*>(file->data(e)), e.shape,
                                at::TensorOptions().dtype(to_scalar_type(e.dtype)))
                      .clone();
  return out;
}

void write_file_tensors(const fs::path& path, const Tensors& tensors) {
  std::vector<SafetensorsTensor> out;
  for (const auto& [name, t] : tensors)
    out.push_back({name, from_scalar_type(t.scalar_type()), t.sizes().vec(), t.data_ptr(),
                   static_cast<uint64_t>(t.numel() * t.element_size())});
  write_safetensors(path.string(), std::move(out));
}

// Reads folder/model.safetensors, lets `edit` change the tensors, writes it back.
void rewrite_weights(const fs::path& folder, const std::function<void(Tensors&)>& edit) {
  Tensors tensors = read_file_tensors(folder / "model.safetensors");
  edit(tensors);
  for (auto& [name, t] : tensors)
    t = t.contiguous();
  write_file_tensors(folder / "model.safetensors", tensors);
}

void rewrite_config(const fs::path& folder, const std::function<void(Value&)>& edit) {
  Value config = read_model_config(folder.string());
  edit(config);
  testing::write_bytes(folder / "config.json", config_json_text(config));
}

// Two models hold the same tensors: the same names, dtypes, shapes and values, bit for bit.
void expect_same_tensors(Model& a, Model& b) {
  const Tensors ta = model_tensors(a), tb = model_tensors(b);
  std::set<std::string> na, nb;
  for (const auto& [name, t] : ta)
    na.insert(name);
  for (const auto& [name, t] : tb)
    nb.insert(name);
  ASSERT_EQ(na, nb);
  for (const auto& [name, t] : ta) {
    const at::Tensor& u = tb.at(name);
    EXPECT_EQ(t.scalar_type(), u.scalar_type()) << name;
    EXPECT_TRUE(at::equal(t, u)) << name;
  }
}

// Two checkpoint folders hold the same files with the same bytes.
void expect_same_folders(const fs::path& a, const fs::path& b) {
  const auto names = folder_entries(a);
  ASSERT_EQ(names, folder_entries(b));
  for (const auto& name : names)
    EXPECT_EQ(read_bytes(a / name), read_bytes(b / name)) << name;
}

// The names a checkpoint of this model must hold: everything but tied copies.
std::set<std::string> required_tensor_names(Model& model) {
  std::set<std::string> out;
  for (const auto& e : expected_checkpoint_tensors(model))
    if (!e.optional) out.insert(e.name);
  return out;
}

std::set<std::string> file_tensor_names(const fs::path& folder) {
  std::set<std::string> out;
  for (const auto& name : CheckpointFiles::open(folder.string(), true).tensor_names())
    out.insert(name);
  return out;
}

bool shares_storage(const at::Tensor& a, const at::Tensor& b) {
  return a.storage().unsafeGetStorageImpl() == b.storage().unsafeGetStorageImpl();
}

// ---- round trips -------------------------------------------------------------------------------

TEST(ModelIo, EveryArchitectureAndDtypeRoundTrips) {
  for (const auto& [name, base] : every_architecture()) {
    for (const std::string dtype : {"float32", "float16", "bfloat16"}) {
      SCOPED_TRACE(name + " " + dtype);
      TempDir tmp;
      const Value config = with_dtype(base, dtype);
      auto model = random_model(config, 21);
      save_model(*model, (tmp / "a").string());

      // Stored: exactly the non-tied tensors, in the model's dtype.
      ASSERT_EQ(file_tensor_names(tmp / "a"), required_tensor_names(*model));
      for (const auto& [tensor, t] : read_file_tensors(tmp / "a/model.safetensors"))
        EXPECT_EQ(t.scalar_type(), to_scalar_type(model->dtype())) << tensor;
      EXPECT_EQ(read_model_config((tmp / "a").string()).at("torch_dtype").as_string(), dtype);

      LoadedModel loaded = load_model((tmp / "a").string());
      EXPECT_EQ(loaded.model->dtype(), model->dtype());
      EXPECT_EQ(loaded.model->device(), "cpu");
      expect_same_tensors(*model, *loaded.model);
      EXPECT_EQ(loaded.model->describe().tied_weights.size(),
                model->describe().tied_weights.size());

      // Saving what was loaded writes the same bytes: nothing was invented or lost.
      save_model(*loaded.model, (tmp / "b").string());
      expect_same_folders(tmp / "a", tmp / "b");

      if (dtype == "float16") continue;  // LibTorch 1.13 has no float16 matmul on the CPU
      const at::Tensor ids = random_ids(48, 2, 9, 5);
      EXPECT_TRUE(at::equal(logits_of(*model, ids), logits_of(*loaded.model, ids)));
    }
  }
}

// float16 models cannot run on a LibTorch 1.13 CPU. Their logits are compared in float32: the
// original model widened in memory (Module::to) against a load -> save -> load round trip
// widened while loading (LoadOptions.dtype). Widening is exact, so they must be identical.
TEST(ModelIo, Float16RoundTripGivesTheSameLogits) {
  TempDir tmp;
  auto model = random_model(with_dtype(llama_family_config("qwen2"), "float16"), 4);
  save_model(*model, (tmp / "a").string());
  save_model(*load_model((tmp / "a").string()).model, (tmp / "b").string());
  LoadOptions wide;
  wide.dtype = DType::F32;
  auto loaded = load_model((tmp / "b").string(), wide).model;
  model->root().to(at::kFloat);
  for (const auto& [name, t] : model_tensors(*model))
    ASSERT_EQ(t.scalar_type(), at::kFloat) << name;
  const at::Tensor ids = random_ids(48, 1, 12, 3);
  EXPECT_TRUE(at::equal(logits_of(*model, ids), logits_of(*loaded, ids)));
}

TEST(ModelIo, TiedCheckpointHasNoHeadAndLoadsTied) {
  TempDir tmp;
  auto model = random_model(llama_family_config("llama", 2, true), 3);
  save_model(*model, (tmp / "tied").string());
  const auto names = file_tensor_names(tmp / "tied");
  EXPECT_EQ(names.count("lm_head.weight"), 0u);
  EXPECT_EQ(names.count("model.embed_tokens.weight"), 1u);
  EXPECT_TRUE(read_model_config((tmp / "tied").string()).at("tie_word_embeddings").as_bool());

  LoadedModel loaded = load_model((tmp / "tied").string());
  const Tensors t = model_tensors(*loaded.model);
  EXPECT_TRUE(shares_storage(t.at("lm_head.weight"), t.at("model.embed_tokens.weight")));
  const ModelDescription d = loaded.model->describe();
  ASSERT_EQ(d.tied_weights.size(), 1u);
  EXPECT_EQ(d.tied_weights[0].target, "lm_head.weight");

  // An untied checkpoint stores its head and loads it as a tensor of its own.
  auto untied = random_model(llama_family_config("llama", 2, false), 3);
  save_model(*untied, (tmp / "untied").string());
  EXPECT_EQ(file_tensor_names(tmp / "untied").count("lm_head.weight"), 1u);
  const Tensors u = model_tensors(*load_model((tmp / "untied").string()).model);
  EXPECT_FALSE(shares_storage(u.at("lm_head.weight"), u.at("model.embed_tokens.weight")));
}

// A tied checkpoint that stores the head anyway (as some exporters do) loads; the head then is
// the embedding again, and a save leaves the copy out.
TEST(ModelIo, TiedCheckpointWithAStoredHeadCopyLoads) {
  TempDir tmp;
  auto model = random_model(llama_family_config("llama", 1, true), 3);
  save_model(*model, (tmp / "a").string());
  rewrite_weights(tmp / "a", [](Tensors& t) {
    t["lm_head.weight"] = t.at("model.embed_tokens.weight").clone();
  });
  LoadedModel loaded = load_model((tmp / "a").string());
  const Tensors t = model_tensors(*loaded.model);
  EXPECT_TRUE(shares_storage(t.at("lm_head.weight"), t.at("model.embed_tokens.weight")));
  save_model(*loaded.model, (tmp / "b").string());
  EXPECT_EQ(file_tensor_names(tmp / "b").count("lm_head.weight"), 0u);
}

TEST(ModelIo, LoadingConvertsDtypesExactly) {
  TempDir tmp;
  auto bf16 = random_model(with_dtype(llama_family_config("llama"), "bfloat16"), 8);
  save_model(*bf16, (tmp / "bf16").string());
  LoadOptions options;
  options.dtype = DType::F32;
  LoadedModel wide = load_model((tmp / "bf16").string(), options);
  EXPECT_EQ(wide.model->dtype(), DType::F32);
  const Tensors narrow_t = model_tensors(*bf16), wide_t = model_tensors(*wide.model);
  ASSERT_EQ(narrow_t.size(), wide_t.size());
  for (const auto& [name, t] : narrow_t) {
    EXPECT_EQ(wide_t.at(name).scalar_type(), at::kFloat) << name;
    EXPECT_TRUE(at::equal(wide_t.at(name), t.to(at::kFloat))) << name;
  }
  // The float32 model computes in float32, so it is close to but not the bfloat16 model.
  const at::Tensor ids = random_ids(48, 1, 10, 2);
  const at::Tensor a = logits_of(*bf16, ids), b = logits_of(*wide.model, ids);
  EXPECT_TRUE(at::allclose(a, b, 0, 0.05));
  // A saved float32 model says so in config.json.
  save_model(*wide.model, (tmp / "f32").string());
  EXPECT_EQ(read_model_config((tmp / "f32").string()).at("torch_dtype").as_string(), "float32");

  // And the other way: float32 to bfloat16 rounds as torch does.
  options.dtype = DType::BF16;
  LoadedModel back = load_model((tmp / "f32").string(), options);
  for (const auto& [name, t] : model_tensors(*back.model))
    EXPECT_TRUE(at::equal(t, narrow_t.at(name))) << name;
}

TEST(ModelIo, ShardedSaveWritesAnIndexAndLoadsBack) {
  TempDir tmp;
  auto model = random_model(llama_family_config("llama", 2), 12);
  SaveOptions options;
  options.max_shard_bytes = 8000;  // the 6 KB embedding and head each fill a shard
  save_model(*model, (tmp / "sharded").string(), options);

  const fs::path dir = tmp / "sharded";
  EXPECT_FALSE(fs::exists(dir / "model.safetensors"));
  ASSERT_TRUE(fs::exists(dir / "model.safetensors.index.json"));
  const Value index = parse_json(read_bytes(dir / "model.safetensors.index.json"), "index");
  const Value& weight_map = index.at("weight_map");
  std::set<std::string> shard_files, mapped;
  for (const auto& [tensor, file] : weight_map.as_map()) {
    mapped.insert(tensor);
    shard_files.insert(file.as_string());
  }
  EXPECT_EQ(mapped, required_tensor_names(*model));
  ASSERT_GT(shard_files.size(), 2u);
  char suffix[32];
  std::snprintf(suffix, sizeof(suffix), "-of-%05zu.safetensors", shard_files.size());
  uint64_t total = 0;
  for (const auto& file : shard_files) {
    EXPECT_TRUE(fs::exists(dir / file)) << file;
    EXPECT_TRUE(contains(file, suffix)) << file;
    auto header = SafetensorsFile::open_header_only((dir / file).string());
    uint64_t bytes = 0;
    for (const auto& e : header->entries())
      bytes += e.nbytes();
    // Within the limit, unless one tensor alone exceeds it (the 8 KB q_proj).
    if (header->entries().size() > 1) EXPECT_LE(bytes, 8000u) << file;
    total += bytes;
  }
  EXPECT_EQ(static_cast<uint64_t>(index.at("metadata").at("total_size").as_int()), total);

  LoadedModel loaded = load_model(dir.string());
  expect_same_tensors(*model, *loaded.model);
  const at::Tensor ids = random_ids(48, 1, 7, 1);
  EXPECT_TRUE(at::equal(logits_of(*model, ids), logits_of(*loaded.model, ids)));
  save_model(*loaded.model, (tmp / "again").string(), options);
  expect_same_folders(dir, tmp / "again");
}

// GPT-2's own checkpoints come from GPT2Model: names without "transformer.", plus the causal-mask
// buffers ("h.0.attn.bias", "h.0.attn.masked_bias") old transformers versions saved.
TEST(ModelIo, Gpt2BareNamesAndOldBuffersLoad) {
  TempDir tmp;
  auto model = random_model(testing::gpt2_config(2), 17);
  save_model(*model, (tmp / "full").string());

  // The file stores Conv1D weights [in, out]: the transpose of what the kernel computes with.
  const Tensors stored = read_file_tensors(tmp / "full/model.safetensors");
  const Tensors held = model_tensors(*model);
  EXPECT_EQ(stored.at("transformer.h.0.attn.c_attn.weight").sizes().vec(),
            (std::vector<int64_t>{32, 96}));
  EXPECT_TRUE(at::equal(stored.at("transformer.h.0.attn.c_attn.weight"),
                        held.at("transformer.h.0.attn.c_attn.weight").t()));
  EXPECT_TRUE(at::equal(stored.at("transformer.h.1.mlp.c_proj.weight"),
                        held.at("transformer.h.1.mlp.c_proj.weight").t()));

  fs::create_directory(tmp / "bare");
  fs::copy_file(tmp / "full/config.json", tmp / "bare/config.json");
  Tensors bare;
  for (const auto& [name, t] : stored) {
    ASSERT_EQ(name.rfind("transformer.", 0), 0u) << name;
    bare[name.substr(std::string("transformer.").size())] = t;
  }
  for (const char* layer : {"h.0", "h.1"}) {
    bare[std::string(layer) + ".attn.bias"] = at::ones({1, 1, 32, 32}).tril().contiguous();
    bare[std::string(layer) + ".attn.masked_bias"] = at::full({}, -1e4);
  }
  write_file_tensors(tmp / "bare/model.safetensors", bare);

  LoadedModel loaded = load_model((tmp / "bare").string());
  expect_same_tensors(*model, *loaded.model);
  const at::Tensor ids = random_ids(48, 1, 10, 4);
  EXPECT_TRUE(at::equal(logits_of(*model, ids), logits_of(*loaded.model, ids)));
  // Saved again, it has transformers' names and no buffers.
  save_model(*loaded.model, (tmp / "resaved").string());
  expect_same_folders(tmp / "full", tmp / "resaved");

  // The same tensor with and without the prefix is ambiguous.
  rewrite_weights(tmp / "bare",
                  [&](Tensors& t) { t["transformer.wpe.weight"] = t.at("wpe.weight"); });
  try {
    load_model((tmp / "bare").string());
    FAIL() << "no error for a tensor stored twice";
  } catch (const CheckpointError& e) {
    EXPECT_EQ(e.file(), (tmp / "bare/model.safetensors").string());
    EXPECT_TRUE(contains(e.what(), "wpe.weight")) << e.what();
  }
}

// ---- bad input ---------------------------------------------------------------------------------

class BadCheckpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    auto model = random_model(llama_family_config("llama", 2), 2);
    save_model(*model, folder().string());
  }
  fs::path folder() const { return tmp_ / "ckpt"; }
  std::string weights() const { return (folder() / "model.safetensors").string(); }

  // Loading fails with a CheckpointError naming `file` and `tensor`, both also in what().
  CheckpointError expect_checkpoint_error(const std::string& file, const std::string& tensor) {
    try {
      load_model(folder().string());
    } catch (const CheckpointError& e) {
      EXPECT_EQ(e.file(), file) << e.what();
      EXPECT_EQ(e.tensor(), tensor) << e.what();
      EXPECT_TRUE(contains(e.what(), file)) << e.what();
      EXPECT_TRUE(contains(e.what(), tensor)) << e.what();
      return e;
    }
    ADD_FAILURE() << "no CheckpointError";
    return CheckpointError(file, tensor, "<none thrown>");
  }
  ConfigError expect_config_error(const std::string& key) {
    try {
      load_model(folder().string());
    } catch (const ConfigError& e) {
      const std::string config = (folder() / "config.json").string();
      EXPECT_EQ(e.key(), key) << e.what();
      EXPECT_TRUE(e.where().known()) << e.what();
      if (e.where().known()) EXPECT_EQ(*e.where().file, config);
      EXPECT_TRUE(contains(e.what(), config)) << e.what();
      EXPECT_TRUE(contains(e.what(), key)) << e.what();
      return e;
    }
    ADD_FAILURE() << "no ConfigError for " << key;
    return ConfigError("<none thrown>");
  }

  TempDir tmp_;
};

TEST_F(BadCheckpoint, TheUntouchedCheckpointLoads) {
  EXPECT_NO_THROW(load_model(folder().string()));
}

TEST_F(BadCheckpoint, MissingTensor) {
  const std::string name = "model.layers.1.mlp.down_proj.weight";
  rewrite_weights(folder(), [&](Tensors& t) { ASSERT_EQ(t.erase(name), 1u); });
  // No file holds it, so the error names the folder it was looked for in.
  const CheckpointError e = expect_checkpoint_error(folder().string(), name);
  EXPECT_TRUE(contains(e.what(), "missing")) << e.what();
}

TEST_F(BadCheckpoint, UnexpectedTensor) {
  const std::string name = "model.layers.0.mlp.extra_proj.weight";
  rewrite_weights(folder(), [&](Tensors& t) { t[name] = at::zeros({4, 4}); });
  const CheckpointError e = expect_checkpoint_error(weights(), name);
  EXPECT_TRUE(contains(e.what(), "unexpected")) << e.what();
}

TEST_F(BadCheckpoint, FewerLayersInConfigThanInTheWeights) {
  rewrite_config(folder(), [](Value& c) { c.set("num_hidden_layers", 1); });
  const CheckpointError e =
      expect_checkpoint_error(weights(), "model.layers.1.input_layernorm.weight");
  EXPECT_TRUE(contains(e.what(), "unexpected")) << e.what();
}

TEST_F(BadCheckpoint, WrongShapeForTheArchitecture) {
  const std::string name = "model.layers.0.self_attn.k_proj.weight";  // [32, 32] with 2 kv heads
  rewrite_weights(folder(), [&](Tensors& t) { t[name] = at::zeros({64, 32}); });
  const CheckpointError e = expect_checkpoint_error(weights(), name);
  EXPECT_TRUE(contains(e.what(), "[64, 32]")) << e.what();
  EXPECT_TRUE(contains(e.what(), "[32, 32]")) << e.what();
}

TEST_F(BadCheckpoint, ConfigThatDisagreesWithTheShapes) {
  rewrite_config(folder(), [](Value& c) { c.set("intermediate_size", 48); });
  // Tensors are checked in name order: the first MLP tensor of layer 0 is down_proj.
  expect_checkpoint_error(weights(), "model.layers.0.mlp.down_proj.weight");
}

TEST_F(BadCheckpoint, IntegerTensorForAFloatWeight) {
  const std::string name = "model.norm.weight";
  rewrite_weights(folder(), [&](Tensors& t) { t[name] = at::ones({32}, at::kInt); });
  const CheckpointError e = expect_checkpoint_error(weights(), name);
  EXPECT_TRUE(contains(e.what(), "I32")) << e.what();
}

// bitsandbytes' bnb_4bit_quant_storage keeps packed codes' bytes under another dtype; the loader
// reads such a tensor's bytes unconverted (checked end to end in the bnb plugin's tests).
TEST(CheckpointMatch, AByteTensorMayBeStoredThroughAnotherDtypesView) {
  const auto entry = [](DType dtype, std::vector<int64_t> shape) {
    SafetensorsEntry e;
    e.dtype = dtype;
    e.shape = std::move(shape);
    return e;
  };
  EXPECT_TRUE(stores_bytes_through_view(entry(DType::BF16, {6, 1}), {12, 1}, DType::U8));
  EXPECT_TRUE(stores_bytes_through_view(entry(DType::F64, {3}), {24}, DType::U8));
  EXPECT_TRUE(stores_bytes_through_view(entry(DType::I8, {12, 1}), {12, 1}, DType::U8));
  EXPECT_TRUE(stores_bytes_through_view(entry(DType::F32, {5}), {-1}, DType::U8));
  // Not the same bytes, not a byte tensor, another shape, or already bytes (read as they are).
  EXPECT_FALSE(stores_bytes_through_view(entry(DType::BF16, {5, 1}), {12, 1}, DType::U8));
  EXPECT_FALSE(stores_bytes_through_view(entry(DType::BF16, {6, 1}), {12, 1}, DType::F32));
  EXPECT_FALSE(stores_bytes_through_view(entry(DType::BF16, {6, 2}), {12, 1}, DType::U8));
  EXPECT_FALSE(stores_bytes_through_view(entry(DType::BF16, {6}), {12, 1}, DType::U8));
  EXPECT_FALSE(stores_bytes_through_view(entry(DType::BF16, {}), {}, DType::U8));
  EXPECT_FALSE(stores_bytes_through_view(entry(DType::Bool, {12}), {12}, DType::U8));
  EXPECT_FALSE(stores_bytes_through_view(entry(DType::U8, {12}), {12}, DType::U8));
}

TEST_F(BadCheckpoint, MissingConfigKey) {
  rewrite_config(folder(), [](Value& c) { ASSERT_TRUE(c.erase("hidden_size")); });
  expect_config_error("hidden_size");
}

TEST_F(BadCheckpoint, ConfigKeyOfTheWrongKind) {
  rewrite_config(folder(), [](Value& c) { c.set("num_attention_heads", "four"); });
  const ConfigError e = expect_config_error("num_attention_heads");
  EXPECT_GT(e.where().line, 0);  // points at the value in config.json
}

TEST_F(BadCheckpoint, UnknownModelType) {
  rewrite_config(folder(), [](Value& c) { c.set("model_type", "falcon"); });
  try {
    load_model(folder().string());
    FAIL() << "no error for model_type falcon";
  } catch (const UnsupportedError& e) {
    const std::string what = e.what();
    EXPECT_TRUE(contains(what, (folder() / "config.json").string())) << what;
    EXPECT_TRUE(contains(what, "model_type")) << what;
    EXPECT_TRUE(contains(what, "'falcon'")) << what;
    for (const auto& type : supported_model_types())
      EXPECT_TRUE(contains(what, type)) << what;
  }
}

TEST_F(BadCheckpoint, MissingModelType) {
  rewrite_config(folder(), [](Value& c) { ASSERT_TRUE(c.erase("model_type")); });
  expect_config_error("model_type");
}

TEST_F(BadCheckpoint, ConfigJsonThatIsNotJson) {
  testing::write_bytes(folder() / "config.json", "{\n  \"model_type\": \"llama\",\n  oops\n}\n");
  try {
    load_model(folder().string());
    FAIL() << "no error for broken JSON";
  } catch (const ConfigError& e) {
    ASSERT_TRUE(e.where().known());
    EXPECT_EQ(*e.where().file, (folder() / "config.json").string());
    EXPECT_EQ(e.where().line, 3);
  }
}

TEST_F(BadCheckpoint, MissingFiles) {
  fs::remove(folder() / "model.safetensors");
  try {
    load_model(folder().string());
    FAIL() << "no error without weights";
  } catch (const CheckpointError& e) {
    EXPECT_EQ(e.file(), folder().string());
    EXPECT_TRUE(contains(e.what(), "model.safetensors")) << e.what();
  }
  fs::remove(folder() / "config.json");
  try {
    load_model(folder().string());
    FAIL() << "no error without config.json";
  } catch (const CheckpointError& e) {
    EXPECT_EQ(e.file(), (folder() / "config.json").string());
  }
  try {
    load_model((tmp_ / "nowhere").string());
    FAIL() << "no error for a missing folder";
  } catch (const CheckpointError& e) {
    EXPECT_EQ(e.file(), (tmp_ / "nowhere").string());
  }
}

// ---- saving: overwrite and clean failure -------------------------------------------------------

TEST(ModelSave, RefusesAnExistingFolderWithoutOverwrite) {
  TempDir tmp;
  const fs::path dest = tmp / "out";
  auto first = random_model(llama_family_config("llama", 1), 1);
  save_model(*first, dest.string());
  testing::write_bytes(dest / "NOTES.txt", "keep me");
  const std::string weights = read_bytes(dest / "model.safetensors");

  auto second = random_model(llama_family_config("llama", 1), 2);
  try {
    save_model(*second, dest.string());
    FAIL() << "an existing folder was overwritten without overwrite";
  } catch (const CheckpointError& e) {
    EXPECT_EQ(e.file(), dest.string());
    EXPECT_TRUE(contains(e.what(), "overwrite")) << e.what();
  }
  EXPECT_EQ(read_bytes(dest / "NOTES.txt"), "keep me");
  EXPECT_EQ(read_bytes(dest / "model.safetensors"), weights);
  EXPECT_EQ(folder_entries(tmp.path()), std::vector<std::string>{"out"});

  // With overwrite the folder is replaced as a whole: the old extra file is gone.
  SaveOptions overwrite;
  overwrite.overwrite = true;
  save_model(*second, dest.string(), overwrite);
  EXPECT_FALSE(fs::exists(dest / "NOTES.txt"));
  EXPECT_NE(read_bytes(dest / "model.safetensors"), weights);
  save_model(*second, (tmp / "fresh").string());
  EXPECT_EQ(read_bytes(dest / "model.safetensors"), read_bytes(tmp / "fresh/model.safetensors"));
  EXPECT_EQ(folder_entries(tmp.path()), (std::vector<std::string>{"fresh", "out"}));
  expect_same_tensors(*second, *load_model(dest.string()).model);

  // A file in the way is never replaced.
  testing::write_bytes(tmp / "file", "x");
  EXPECT_THROW(save_model(*second, (tmp / "file").string(), overwrite), CheckpointError);
  EXPECT_EQ(read_bytes(tmp / "file"), "x");
}

// A model whose layer still holds meta tensors (never loaded) cannot be saved: the error names
// the tensor, and neither the destination nor a temporary folder is left behind.
TEST(ModelSave, FailedSaveLeavesNothingBehind) {
  TempDir tmp;
  auto model = random_model(llama_family_config("llama", 2), 1);
  nn::LinearImpl* up = model->find_linear("model.layers.1.mlp.up_proj");
  ASSERT_NE(up, nullptr);
  up->kernel().load_tensor("weight", at::empty({40, 32}, at::TensorOptions().device(at::kMeta)));
  try {
    save_model(*model, (tmp / "out").string());
    FAIL() << "a model with meta tensors was saved";
  } catch (const CheckpointError& e) {
    EXPECT_EQ(e.file(), (tmp / "out").string()) << e.what();
    EXPECT_EQ(e.tensor(), "model.layers.1.mlp.up_proj.weight") << e.what();
  }
  EXPECT_TRUE(folder_entries(tmp.path()).empty());

  // A whole skeleton fails on its first tensor.
  ModelBuildOptions meta;
  meta.device = "meta";
  auto skeleton = build_model(llama_family_config("llama", 1), meta);
  EXPECT_THROW(save_model(*skeleton, (tmp / "out").string()), CheckpointError);
  EXPECT_TRUE(folder_entries(tmp.path()).empty());

  // With overwrite, a failed save keeps the folder that was there.
  auto good = random_model(llama_family_config("llama", 2), 5);
  save_model(*good, (tmp / "out").string());
  const std::string before = read_bytes(tmp / "out/model.safetensors");
  SaveOptions overwrite;
  overwrite.overwrite = true;
  EXPECT_THROW(save_model(*model, (tmp / "out").string(), overwrite), CheckpointError);
  EXPECT_EQ(read_bytes(tmp / "out/model.safetensors"), before);
  EXPECT_EQ(folder_entries(tmp.path()), std::vector<std::string>{"out"});
}

// A failure after the weights and config.json were written (copying files from a folder that is
// not there) still removes the temporary folder.
// A quantized kernel whose tensor_specs() promise a 4-value qweight while tensors() hand out 5.
class MislabelledKernel final : public CpuLinearKernel {
 public:
  explicit MislabelledKernel(const LinearKernelArgs& args) : CpuLinearKernel(args, "test") {}
  std::string name() const override { return "mislabelled"; }
  std::string quant_method() const override { return "mislabelled"; }
  std::vector<TensorSpec> tensor_specs() const override { return {{"qweight", {4}, DType::I32}}; }
  std::vector<std::pair<std::string, at::Tensor>> tensors() const override {
    return {{"qweight", at::zeros({5}, at::kInt)}};
  }
  void load_tensor(const std::string&, const at::Tensor&) override {}
  void process_weights_after_loading() override {}
  at::Tensor apply(const at::Tensor& x) override { return x; }
  at::Tensor dequantize(DType) const override { return at::Tensor(); }
};

// A save plans a quantized layer from its specs and checks each tensor against them as it is
// written: a kernel that breaks its word fails the save by name, and nothing is left behind.
TEST(ModelSave, AKernelWhoseTensorsBreakItsSpecsFailsTheSave) {
  TempDir tmp;
  auto model = random_model(llama_family_config("llama", 2), 1);
  nn::LinearImpl* up = model->find_linear("model.layers.1.mlp.up_proj");
  ASSERT_NE(up, nullptr);
  LinearKernelArgs args;
  args.layer = "model.layers.1.mlp.up_proj";
  args.shape = up->shape();
  up->set_kernel({std::make_shared<MislabelledKernel>(args), "test"});
  try {
    save_model(*model, (tmp / "out").string());
    FAIL() << "a layer whose tensors disagree with its specs was saved";
  } catch (const CheckpointError& e) {
    EXPECT_EQ(e.tensor(), "model.layers.1.mlp.up_proj.qweight") << e.what();
    EXPECT_TRUE(contains(e.what(), "[5] I32 in the layer but [4] I32")) << e.what();
  }
  EXPECT_TRUE(folder_entries(tmp.path()).empty());
}

// A quantized kernel that keeps the dense weight it was given: its specs say all of its tensors,
// so a save plans it from them.
class SpecDescribedKernel final : public CpuLinearKernel {
 public:
  SpecDescribedKernel(const LinearKernelArgs& args, at::Tensor weight)
      : CpuLinearKernel(args, "test"), weight_(std::move(weight)) {}
  std::string name() const override { return "spec-described"; }
  std::string quant_method() const override { return "spec-described"; }
  std::vector<TensorSpec> tensor_specs() const override {
    return {{"weight", {weight_.size(0), weight_.size(1)}, DType::F32}};
  }
  std::vector<std::pair<std::string, at::Tensor>> tensors() const override {
    return {{"weight", weight_}};
  }
  void load_tensor(const std::string&, const at::Tensor&) override {}
  void process_weights_after_loading() override {}
  at::Tensor apply(const at::Tensor& x) override { return x; }
  at::Tensor dequantize(DType) const override { return weight_; }

 private:
  at::Tensor weight_;
};

// A layer planned from its specs leaves a tied copy out, as a layer planned from its tensors does
// (TiedCheckpointHasNoHeadAndLoadsTied): the tied head is not stored.
TEST(ModelSave, ALayerPlannedFromItsSpecsLeavesATiedCopyOut) {
  TempDir tmp;
  auto model = random_model(llama_family_config("llama", 2, true), 3);
  nn::LinearImpl* head = model->find_linear("lm_head");
  ASSERT_NE(head, nullptr);
  LinearKernelArgs args;
  args.layer = "lm_head";
  args.shape = head->shape();
  const at::Tensor weight = model_tensors(*model).at("lm_head.weight").clone();
  head->set_kernel({std::make_shared<SpecDescribedKernel>(args, weight), "test"});
  save_model(*model, (tmp / "out").string());
  const auto names = file_tensor_names(tmp / "out");
  EXPECT_EQ(names.count("lm_head.weight"), 0u);
  EXPECT_EQ(names.count("model.embed_tokens.weight"), 1u);
}

TEST(ModelSave, FailureAfterTheWeightsWereWrittenCleansUp) {
  TempDir tmp;
  auto model = random_model(llama_family_config("llama", 1), 1);
  SaveOptions options;
  options.copy_files_from = (tmp / "no-such-folder").string();
  EXPECT_THROW(save_model(*model, (tmp / "out").string(), options), CheckpointError);
  EXPECT_TRUE(folder_entries(tmp.path()).empty());
}

TEST(ModelSave, CopiesTokenizerFilesAndWritesExtraFiles) {
  TempDir tmp;
  auto model = random_model(llama_family_config("llama", 1), 1);
  SaveOptions options;
  const fs::path source = testing::shared_dir() / "data/stories260K";
  options.copy_files_from = source.string();
  options.extra_files = {{"quantize_config.json", "{}\n"}};
  save_model(*model, (tmp / "out").string(), options);
  EXPECT_EQ(read_bytes(tmp / "out/tokenizer.model"), read_bytes(source / "tokenizer.model"));
  EXPECT_EQ(read_bytes(tmp / "out/quantize_config.json"), "{}\n");
  // The source's weights and config are not copied over ours.
  EXPECT_NE(read_bytes(tmp / "out/model.safetensors"), read_bytes(source / "model.safetensors"));
  EXPECT_EQ(read_model_config((tmp / "out").string()).at("hidden_size").as_int(), 32);
}

// ---- real checkpoints --------------------------------------------------------------------------

TEST(ModelIoReal, Stories260KLoadsDeterministically) {
  const std::string folder = (testing::shared_dir() / "data/stories260K").string();
  LoadedModel a = load_model(folder), b = load_model(folder);
  EXPECT_EQ(a.model->model_type(), "llama");
  EXPECT_EQ(a.model->num_blocks(), 5);
  EXPECT_FALSE(a.quantizer.has_value());
  const Tensors ta = model_tensors(*a.model);
  EXPECT_TRUE(shares_storage(ta.at("lm_head.weight"), ta.at("model.embed_tokens.weight")));
  // What was loaded is what the file holds.
  const Tensors file = read_file_tensors(fs::path(folder) / "model.safetensors");
  for (const auto& [name, t] : file)
    EXPECT_TRUE(at::equal(ta.at(name), t)) << name;

  const at::Tensor ids = random_ids(512, 2, 64, 7);
  EXPECT_TRUE(at::equal(logits_of(*a.model, ids), logits_of(*b.model, ids)));
}

// An untied real checkpoint written by transformers: saved by us and loaded back, the same.
TEST(ModelIoReal, Stories3MRoundTrips) {
  TempDir tmp;
  LoadedModel a = load_model((testing::shared_dir() / "data/stories3M").string());
  save_model(*a.model, (tmp / "copy").string());
  EXPECT_EQ(file_tensor_names(tmp / "copy").count("lm_head.weight"), 1u);
  LoadedModel b = load_model((tmp / "copy").string());
  expect_same_tensors(*a.model, *b.model);
  const at::Tensor ids = random_ids(512, 1, 32, 7);
  EXPECT_TRUE(at::equal(logits_of(*a.model, ids), logits_of(*b.model, ids)));
}

}  // namespace
}  // namespace qplug
