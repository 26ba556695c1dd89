// The gptq plugin end to end through the host: planning on stories260K (whose MLP cannot be
// packed), calibration on stories3M against round-to-nearest, checkpoints laid out as GPTQModel
// writes them, loading GPTQ tensors written by AutoGPTQ, and the bad inputs.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "calibration_test_util.hpp"
#include "checkpoint_edit.hpp"
#include "qplug/core/calibration.hpp"
#include "qplug/core/checkpoint.hpp"
#include "qplug/core/config_file.hpp"
#include "qplug/core/evaluation.hpp"
#include "qplug/core/model_io.hpp"
#include "qplug/core/models.hpp"
#include "qplug/core/plugin_host.hpp"
#include "qplug/core/quantizer_choice.hpp"
#include "qplug/core/services.hpp"
#include "qplug/core/tokenizer.hpp"
#include "qplug/sdk/linear.hpp"
#include "test_support.hpp"
#include "vectors.hpp"

namespace qplug {
namespace {

namespace fs = std::filesystem;
using testing::shared_dir;
using testing::TempDir;

const fs::path kStories260K = testing::stories260k_dir();
const fs::path kStories3M = testing::stories3m_dir();
using testing::held_out_perplexity;

const PluginHost& host() {
  return testing::build_tree_host();
}

Value yaml(const std::string& text) {
  return parse_yaml(text, "gptq.yaml");
}

LoadedModel quantize(const fs::path& model, const std::string& config_text,
                     std::vector<std::string>* warnings = nullptr) {
  return testing::quantize_with_config(model, config_text, warnings);
}

TEST(GptqPlan, Stories260KMlpIsUnsupportedWithAHint) {
  ModelBuildOptions meta;
  meta.device = "meta";
  auto model = build_model(read_model_config(kStories260K.string()), meta);
  // Groups of 64 fit the 64-wide attention; the 172-wide MLP fits no GPTQ packing.
  const QuantizerHandle q = host().create_quantizer(
      host().validate_config(yaml("quant_method: gptq\ngroup_size: 64\n")), false);
  const TargetPlan plan = q.plan(model->describe());
  const TargetEntry* down = plan.find("model.layers.0.mlp.down_proj");
  ASSERT_NE(down, nullptr);
  EXPECT_EQ(down->decision, Decision::Unsupported);
  EXPECT_NE(down->rule.find("in_features 172 is not a multiple of 8"), std::string::npos)
      << down->rule;
  EXPECT_NE(down->rule.find("modules_in_block_to_quantize"), std::string::npos) << down->rule;
  EXPECT_EQ(plan.find("model.layers.0.self_attn.q_proj")->decision, Decision::Quantize);
  EXPECT_EQ(plan.find("lm_head")->decision, Decision::Keep);
  // quantize refuses, naming the layers and the fix.
  auto skeleton = build_model(read_model_config(kStories260K.string()), meta);
  CoreServices services(host());
  try {
    q.preprocess_model(*skeleton, services);
    FAIL() << "unpackable layers must be refused";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("15 layer(s) cannot be converted"), std::string::npos)
        << e.what();
  }
}

TEST(GptqPlan, Stories260KWithAttentionOnly) {
  ModelBuildOptions meta;
  meta.device = "meta";
  auto model = build_model(read_model_config(kStories260K.string()), meta);
  const QuantizerHandle q = host().create_quantizer(
      host().validate_config(yaml(
          "quant_method: gptq\ngroup_size: 64\nmodules_in_block_to_quantize:\n"
          "  - [self_attn.k_proj, self_attn.v_proj, self_attn.q_proj]\n  - [self_attn.o_proj]\n")),
      false);
  const TargetPlan plan = q.plan(model->describe());
  EXPECT_EQ(plan.quantized_modules().size(), 20u);
  EXPECT_EQ(plan.find("model.layers.3.mlp.up_proj")->rule, "not in modules_in_block_to_quantize");
  EXPECT_TRUE(plan.unsupported().empty());
}

TEST(GptqStories3M, BeatsRoundToNearestAndReloadsToTheSameModel) {
  QPLUG_SKIP_WITHOUT_SENTENCEPIECE();
  const std::string common = "quant_method: gptq\nbits: 4\ngroup_size: 128\nsym: false\n";
  LoadedModel rtn = quantize(kStories3M, common + "rtn: true\n");
  LoadedModel gptq = quantize(kStories3M, common + "nsamples: 32\nseqlen: 512\n");
  LoadOptions plain_fp;
  plain_fp.host = &host();
  LoadedModel fp = load_model(kStories3M.string(), plain_fp);
  const double fp_ppl = held_out_perplexity(*fp.model);
  const double rtn_ppl = held_out_perplexity(*rtn.model);
  const double gptq_ppl = held_out_perplexity(*gptq.model);
  EXPECT_LT(gptq_ppl, rtn_ppl) << "GPTQ " << gptq_ppl << " vs round-to-nearest " << rtn_ppl;
  EXPECT_LT(gptq_ppl - fp_ppl, 0.1) << "fp32 " << fp_ppl << ", GPTQ " << gptq_ppl;

  TempDir dir;
  SaveOptions save;
  save.copy_files_from = kStories3M.string();
  save.extra_files = gptq.quantizer->extra_files(gptq.plan);
  save_model(*gptq.model, (dir / "gptq").string(), save);
  LoadOptions plain;
  plain.host = &host();
  LoadedModel reloaded = load_model((dir / "gptq").string(), plain);
  EXPECT_DOUBLE_EQ(held_out_perplexity(*reloaded.model), gptq_ppl);

  // The layout GPTQModel writes.
  const auto tensors = testing::read_tensors(dir / "gptq");
  const std::string p = "model.layers.1.mlp.down_proj.";  // in 768, out 256, 6 groups
  auto expect = [&](const std::string& name, at::ScalarType dtype, std::vector<int64_t> shape) {
    ASSERT_TRUE(tensors.count(name)) << name;
    EXPECT_EQ(tensors.at(name).scalar_type(), dtype) << name;
    EXPECT_EQ(tensors.at(name).sizes().vec(), shape) << name;
  };
  expect(p + "qweight", at::kInt, {96, 256});
  expect(p + "qzeros", at::kInt, {6, 32});
  expect(p + "scales", at::kHalf, {6, 256});
  expect(p + "g_idx", at::kInt, {768});
  EXPECT_FALSE(tensors.count(p + "weight"));
  expect("lm_head.weight", at::kFloat, {512, 256});
  const Value config = read_model_config((dir / "gptq").string());
  const Value& q = config.at("quantization_config");
  for (const char* key : {"quant_method", "bits", "group_size", "damp_percent", "desc_act", "sym",
                          "true_sequential", "format", "checkpoint_format", "meta",
                          "block_name_to_quantize", "modules_in_block_to_quantize"})
    EXPECT_TRUE(q.contains(key)) << key;
  EXPECT_EQ(q.at("quant_method"), Value("gptq"));
  EXPECT_EQ(q.at("format"), Value("gptq"));
  const Value quantize_config =
      parse_json(read_text_file((dir / "gptq" / "quantize_config.json").string()), "qc");
  EXPECT_EQ(quantize_config.at("bits"), Value(4));
  EXPECT_EQ(quantize_config.at("pack_dtype"), Value("int32"));
  EXPECT_EQ(quantize_config.at("sym"), Value(false));
}

// A model whose k_proj holds the tensors AutoGPTQ's QuantLinear.pack wrote for the vectors: every
// width (2/3/4/8 bits), act-order g_idx, v1 zeros and GPTQModel's v2 zeros. Each dequantizes to
// the vectors' W exactly.
TEST(GptqCheckpoint, LoadsTheTensorsAutoGptqWrites) {
  TempDir dir;
  Value c = Value::map();
  c.set("model_type", "llama");
  c.set("vocab_size", 32);
  c.set("hidden_size", 256);
  c.set("intermediate_size", 256);
  c.set("num_hidden_layers", 1);
  c.set("num_attention_heads", 2);  // q_proj [128, 256], o_proj [256, 128]
  c.set("num_key_value_heads", 1);  // k_proj [64, 256]: the vectors' shape
  c.set("head_dim", 64);
  auto dense = build_model(c);
  init_random_weights(*dense, 3);
  save_model(*dense, (dir / "dense").string());
  const testing::VectorFile vectors("gptq_awq_pack.safetensors");
  struct Case {
    const char* tag;
    int bits;
    bool v2;
  };
  for (const Case& k : {Case{"gptq_b4_g128_act", 4, false}, Case{"gptq_b4_g128_noact", 4, false},
                        Case{"gptq_b4_g128_act_sym", 4, false}, Case{"gptq_b4_g128_act", 4, true},
                        Case{"gptq_b2_g128_act", 2, false}, Case{"gptq_b3_g128_act", 3, false},
                        Case{"gptq_b8_g128_noact", 8, true}}) {
    const std::string name = std::string(k.tag) + (k.v2 ? "_v2" : "_v1");
    // The other layers: round-to-nearest in the same width and format.
    LoadedModel rtn =
        quantize(dir / "dense",
                 "quant_method: gptq\nrtn: true\nsym: false\nbits: " + std::to_string(k.bits) +
                     "\nformat: " + (k.v2 ? "gptq_v2" : "gptq") + "\n");
    SaveOptions save;
    save.extra_files = rtn.quantizer->extra_files(rtn.plan);
    save_model(*rtn.model, (dir / ("ours_" + name)).string(), save);
    const fs::path theirs = dir / name;
    testing::copy_checkpoint(dir / ("ours_" + name), theirs, [&](testing::TensorMap& t) {
      const std::string p = "model.layers.0.self_attn.k_proj.";
      t[p + "qweight"] = vectors[std::string(k.tag) + ".qweight"];
      t[p + "qzeros"] = vectors[std::string(k.tag) + (k.v2 ? ".qzeros_v2" : ".qzeros")];
      t[p + "scales"] = vectors[std::string(k.tag) + ".scales"];
      t[p + "g_idx"] = vectors[std::string(k.tag) + ".g_idx"];
    });
    LoadOptions plain;
    plain.host = &host();
    LoadedModel loaded = load_model(theirs.string(), plain);
    const at::Tensor w = loaded.model->find_linear("model.layers.0.self_attn.k_proj")
                             ->kernel()
                             .dequantize(DType::F32);
    EXPECT_TRUE(at::equal(w, vectors[std::string(k.tag) + ".dequant"])) << name;
    // And it runs: the kernel's product equals x W^T.
    const at::Tensor x = at::randn({3, 256});
    const at::Tensor y = loaded.model->find_linear("model.layers.0.self_attn.k_proj")->forward(x);
    EXPECT_TRUE(at::allclose(y, at::matmul(x, w.t()), 1e-4, 1e-4)) << name;
  }
}

TEST(GptqBadInput, ConfigErrorsNameTheKey) {
  for (const char* bad : {"quant_method: gptq\nbits: 5\n", "quant_method: gptq\ngroup_size: 0\n",
                          "quant_method: gptq\ndamp_percent: 1.5\n",
                          "quant_method: gptq\nstatic_groups: true\ngroup_size: -1\n",
                          "quant_method: gptq\nformat: marlin\n"}) {
    EXPECT_THROW(host().validate_config(yaml(bad)), ConfigError) << bad;
  }
  try {
    host().validate_config(yaml("quant_method: gptq\nbits: 5\n"));
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.key(), "bits");
  }
}

TEST(GptqBadInput, CalibrationTextTooShortOrMissing) {
  QPLUG_SKIP_WITHOUT_SENTENCEPIECE();
  TempDir dir;
  std::ofstream(dir / "short.txt") << "Once upon a time there was a cat.";
  std::ofstream(dir / "empty.txt") << "";
  CalibrationRequest request;
  request.samples = 128;
  request.seq_len = 512;
  try {
    load_calibration_data(request, kStories260K.string(), (dir / "short.txt").string(), 512, 1);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.key(), "nsamples");
    EXPECT_NE(std::string(e.what()).find("GPTQ: nsamples / seqlen"), std::string::npos);
  }
  EXPECT_THROW(
      load_calibration_data(request, kStories260K.string(), (dir / "empty.txt").string(), 512, 1),
      ConfigError);
  try {
    load_calibration_data(request, kStories260K.string(), std::nullopt, 512, 1);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.key(), "dataset");
  }
  request.dataset = "c4";
  try {
    load_calibration_data(request, kStories260K.string(), std::nullopt, 512, 1);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("downloads nothing"), std::string::npos);
  }
}

TEST(GptqBadInput, NanActivationsNameTheLayer) {
  TempDir dir;
  testing::copy_checkpoint(kStories3M, dir / "nan", [](testing::TensorMap& t) {
    t["model.layers.1.post_attention_layernorm.weight"][3] =
        std::numeric_limits<float>::quiet_NaN();
  });
  std::ofstream ids(dir / "calib.ids");
  for (int i = 0; i < 4 * 64; ++i)
    ids << (i * 7 % 500) + 3 << ' ';
  ids.close();
  const Value config = yaml("quant_method: gptq\nnsamples: 4\nseqlen: 32\n");
  LoadOptions load;
  load.host = &host();
  LoadedModel loaded = load_model((dir / "nan").string(), load);
  QuantizerHandle handle = choose_quantizer(host(), loaded.model->hf_config(), &config);
  CalibrationRequest request = handle.calibration_request();
  const CalibrationData data =
      load_calibration_data(request, (dir / "nan").string(), (dir / "calib.ids").string(), 512, 1);
  CoreServices services(host());
  try {
    handle.quantize_model(*loaded.model, data, services);
    FAIL();
  } catch (const KernelError& e) {
    EXPECT_NE(std::string(e.what()).find("model.layers.1.mlp"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace qplug
