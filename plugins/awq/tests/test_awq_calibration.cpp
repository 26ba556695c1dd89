// AWQ end to end through the host's calibration pipeline: on stories3M it must beat
// round-to-nearest with the same group size and zero point, reload to the same model, and write
// the tensors AutoAWQ writes; a model without scaling groups and short calibration text are
// clear errors.
#include <filesystem>

#include <gtest/gtest.h>

#include "calibration_test_util.hpp"
#include "checkpoint_edit.hpp"
#include "model_test_util.hpp"
#include "qplug/core/checkpoint.hpp"
#include "qplug/core/models.hpp"
#include "qplug/sdk/errors.hpp"
#include "qplug/sdk/linear.hpp"

namespace qplug {
namespace {

namespace fs = std::filesystem;
using testing::held_out_perplexity;
using testing::quantize_with_config;
using testing::TempDir;

TEST(AwqStories3M, BeatsRoundToNearestAndReloadsToTheSameModel) {
  QPLUG_SKIP_WITHOUT_SENTENCEPIECE();
  const fs::path model = testing::stories3m_dir();
  const std::string common = "quant_method: awq\nbits: 4\ngroup_size: 128\nzero_point: true\n";
  LoadedModel rtn = quantize_with_config(model, common + "rtn: true\n");
  LoadedModel awq =
      quantize_with_config(model, common + "max_calib_samples: 32\nmax_calib_seq_len: 512\n");
  LoadOptions plain;
  plain.host = &testing::build_tree_host();
  LoadedModel fp = load_model(model.string(), plain);
  const double fp_ppl = held_out_perplexity(*fp.model);
  const double rtn_ppl = held_out_perplexity(*rtn.model);
  const double awq_ppl = held_out_perplexity(*awq.model);
  EXPECT_LT(awq_ppl, rtn_ppl) << "AWQ " << awq_ppl << " vs round-to-nearest " << rtn_ppl;
  EXPECT_LT(awq_ppl - fp_ppl, 0.1) << "fp32 " << fp_ppl << ", AWQ " << awq_ppl;

  // The scales went into the norms: the dense norm weights differ from the checkpoint's.
  const auto before = testing::model_tensors(*fp.model);
  const auto after = testing::model_tensors(*awq.model);
  const std::string norm = "model.layers.0.input_layernorm.weight";
  EXPECT_FALSE(at::equal(before.at(norm), after.at(norm)));

  TempDir dir;
  SaveOptions save;
  save.copy_files_from = model.string();
  save.extra_files = awq.quantizer->extra_files(awq.plan);
  save_model(*awq.model, (dir / "awq").string(), save);
  LoadedModel reloaded = load_model((dir / "awq").string(), plain);
  EXPECT_DOUBLE_EQ(held_out_perplexity(*reloaded.model), awq_ppl);

  // AutoAWQ's GEMM layout and config.
  const auto tensors = testing::read_tensors(dir / "awq");
  const std::string p = "model.layers.1.mlp.down_proj.";  // in 768, out 256, 6 groups
  auto expect = [&](const std::string& name, at::ScalarType dtype, std::vector<int64_t> shape) {
    ASSERT_TRUE(tensors.count(name)) << name;
    EXPECT_EQ(tensors.at(name).scalar_type(), dtype) << name;
    EXPECT_EQ(tensors.at(name).sizes().vec(), shape) << name;
  };
  expect(p + "qweight", at::kInt, {768, 32});
  expect(p + "qzeros", at::kInt, {6, 32});
  expect(p + "scales", at::kHalf, {6, 256});
  EXPECT_FALSE(tensors.count(p + "weight"));
  EXPECT_FALSE(tensors.count(p + "g_idx"));
  expect(norm, at::kFloat, {256});
  const Value config = read_model_config((dir / "awq").string());
  const Value& q = config.at("quantization_config");
  EXPECT_EQ(q.at("quant_method"), Value("awq"));
  EXPECT_EQ(q.at("version"), Value("gemm"));
  EXPECT_EQ(q.at("bits"), Value(4));
  EXPECT_EQ(q.at("group_size"), Value(128));
  EXPECT_EQ(q.at("zero_point"), Value(true));
}

TEST(AwqCalibration, GemvLayoutCalibratesAndMatchesGemm) {
  QPLUG_SKIP_WITHOUT_SENTENCEPIECE();
  // The same search with the other layout: identical integers, so identical logits.
  const fs::path model = testing::stories3m_dir();
  const std::string common =
      "quant_method: awq\ngroup_size: 128\nmax_calib_samples: 4\nmax_calib_seq_len: 128\n";
  LoadedModel gemm = quantize_with_config(model, common);
  LoadedModel gemv = quantize_with_config(model, common + "version: gemv\n");
  // GEMV packs along the inputs: qweight [out, in / 8].
  std::vector<int64_t> qweight_shape;
  for (const auto& [name, tensor] :
       gemv.model->find_linear("model.layers.0.mlp.up_proj")->kernel().tensors())
    if (name == "qweight") qweight_shape = tensor.sizes().vec();
  EXPECT_EQ(qweight_shape, (std::vector<int64_t>{768, 32}));
  const at::Tensor ids = testing::random_ids(512, 2, 16, 3);
  EXPECT_TRUE(at::allclose(gemm.model->forward(ids), gemv.model->forward(ids), 1e-5, 1e-5));
}

TEST(AwqBadInput, ModelWithoutScalingGroupsIsAClearError) {
  QPLUG_SKIP_WITHOUT_SENTENCEPIECE();
  // GPT-2 declares no scaling groups (AutoAWQ does not support it either).
  TempDir dir;
  auto gpt2 = testing::random_model(testing::gpt2_config(), 1);
  save_model(*gpt2, (dir / "gpt2").string(), {});
  try {
    const Value config = parse_yaml("quant_method: awq\ngroup_size: 32\n", "awq.yaml");
    QuantizerHandle handle =
        choose_quantizer(testing::build_tree_host(), gpt2->hf_config(), &config);
    CoreServices services(testing::build_tree_host());
    const CalibrationData data(std::vector<std::vector<int64_t>>(2, std::vector<int64_t>(8, 3)));
    handle.quantize_model(*gpt2, data, services);
    FAIL() << "a model without scaling groups must be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("scaling groups"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("gpt2"), std::string::npos) << e.what();
  }
}

TEST(AwqBadInput, CalibrationTextTooShortNamesTheKey) {
  QPLUG_SKIP_WITHOUT_SENTENCEPIECE();
  const Value config = parse_yaml("quant_method: awq\nmax_calib_samples: 100000\n", "awq.yaml");
  const QuantizerHandle handle = choose_quantizer(
      testing::build_tree_host(), read_model_config(testing::stories3m_dir().string()), &config);
  try {
    load_calibration_data(handle.calibration_request(), testing::stories3m_dir().string(),
                          testing::corpus_split().calibration.string(), 512, 1);
    FAIL() << "too little text must be refused";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("max_calib_samples"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace qplug
