// The awq plugin through the host: its config keys and errors, the kernel holding the tensors
// AutoAWQ writes (gemm and gemv, from the upstream vectors), its matmul on fast and fallback
// shapes, round-to-nearest checkpoints written and read back (also through the `qplug` command),
// and planning on stories260K, whose MLP no AWQ layout can hold.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <sys/wait.h>

#include <gtest/gtest.h>

#include "checkpoint_edit.hpp"
#include "packing.hpp"
#include "qplug/core/checkpoint.hpp"
#include "qplug/core/config_file.hpp"
#include "qplug/core/model_io.hpp"
#include "qplug/core/models.hpp"
#include "qplug/core/plugin_host.hpp"
#include "qplug/core/quantizer_choice.hpp"
#include "qplug/core/services.hpp"
#include "qplug/sdk/linear.hpp"
#include "test_support.hpp"
#include "vectors.hpp"

namespace qplug {
namespace {

namespace fs = std::filesystem;
using testing::same_bytes;
using testing::shared_dir;
using testing::TempDir;

const fs::path kStories260K = shared_dir() / "data" / "stories260K";
const fs::path kStories3M = shared_dir() / "data" / "stories3M";
const fs::path kPluginDir = testing::binary_dir() / "lib" / "qplug" / "plugins";

const PluginHost& host() {
  static const PluginHost h([] {
    PluginHostOptions o;
    o.plugin_dirs = {kPluginDir.string()};
    o.use_environment = false;
    return o;
  }());
  return h;
}

Value yaml(const std::string& text) {
  return parse_yaml(text, "awq.yaml");
}

QuantConfig config_of(const std::string& text) {
  return host().validate_config(yaml(text));
}

double relative_error(const at::Tensor& got, const at::Tensor& want) {
  return ((got.to(at::kDouble) - want.to(at::kDouble)).norm() / want.to(at::kDouble).norm())
      .item<double>();
}

// Runs `qplug <args>` from the build tree; returns its exit code and its stdout and stderr.
int run_qplug(const std::string& args, std::string* output) {
  TempDir dir;
  const fs::path log = dir / "log.txt";
  const std::string command = (testing::binary_dir() / "bin" / "qplug").string() + " " + args +
                              " --plugin-dir " + kPluginDir.string() + " > " + log.string() +
                              " 2>&1";
  const int status = std::system(command.c_str());
  std::ifstream in(log);
  std::stringstream text;
  text << in.rdbuf();
  *output = text.str();
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// ---- config -------------------------------------------------------------------------------

TEST(AwqConfig, ErrorsNameTheKey) {
  struct Case {
    const char* yaml;
    const char* key;
    const char* says;
  };
  for (const Case& c :
       {Case{"bits: 8\n", "bits", "only 4-bit"}, Case{"w_bit: 3\n", "bits", "only 4-bit"},
        Case{"version: foo\n", "version", "accepted: gemm, gemv"},
        Case{"format: foo\n", "version", "accepted: gemm, gemv"},
        Case{"version: GEMV_FAST\n", "version", "'gemv_fast' layout is not supported"},
        Case{"version: marlin\n", "version", "not supported"},
        Case{"zero_point: false\n", "zero_point", "store a zero point"},
        Case{"group_size: 0\n", "group_size", "positive or -1"},
        Case{"group_size: -2\n", "group_size", ">= -1"}, Case{"n_grid: 0\n", "n_grid", ">= 1"},
        Case{"gropu_size: 64\n", "gropu_size", "did you mean 'group_size'"}}) {
    try {
      config_of(std::string("quant_method: awq\n") + c.yaml);
      ADD_FAILURE() << "accepted: " << c.yaml;
    } catch (const ConfigError& e) {
      EXPECT_EQ(e.key(), c.key) << c.yaml;
      EXPECT_NE(std::string(e.what()).find(c.says), std::string::npos) << e.what();
    }
  }
}

TEST(AwqConfig, ReadsAutoAwqAndTransformersSpellings) {
  // AutoAWQ's own quant_config dict.
  const QuantConfig autoawq = config_of(
      "quant_method: awq\nzero_point: true\nq_group_size: 64\nw_bit: 4\nversion: GEMM\n"
      "modules_to_not_convert: null\n");
  EXPECT_EQ(autoawq.get_int("group_size"), 64);
  EXPECT_EQ(autoawq.get_string("version"), "gemm");
  // transformers v5 names the layout `format`; v4 wrote its fusing options.
  const QuantConfig v5 = config_of("quant_method: awq\nformat: GEMV\nbackend: auto\n");
  EXPECT_EQ(v5.get_string("version"), "gemv");
  EXPECT_NO_THROW(config_of(
      "quant_method: awq\nbits: 4\ngroup_size: 128\nversion: gemm\ndo_fuse: false\n"
      "fuse_max_seq_len: null\nmodules_to_fuse: null\nexllama_config: null\nbackend: autoawq\n"));
  // A single name is a one-rule list.
  EXPECT_EQ(config_of("quant_method: awq\nmodules_to_not_convert: mlp\n")
                .get_string_list("modules_to_not_convert"),
            std::vector<std::string>{"mlp"});
}

TEST(AwqConfig, WritesWhatAutoAwqWrites) {
  const QuantizerHandle q = host().create_quantizer(
      config_of("quant_method: awq\nversion: GEMV\ngroup_size: 64\n"), false);
  EXPECT_TRUE(q.requires_calibration());
  const Value written = q.serialized_config(TargetPlan{});
  EXPECT_EQ(to_json(written),
            R"({"quant_method": "awq", "zero_point": true, "group_size": 64, "bits": 4, )"
            R"("version": "gemv", "modules_to_not_convert": null})");
  const QuantizerHandle rtn =
      host().create_quantizer(config_of("quant_method: awq\nrtn: true\n"), false);
  EXPECT_FALSE(rtn.requires_calibration());
  const CalibrationRequest request =
      host()
          .create_quantizer(config_of("quant_method: awq\nmax_calib_samples: 16\n"
                                      "max_calib_seq_len: 64\ndataset: text.txt\n"),
                            false)
          .calibration_request();
  EXPECT_EQ(request.samples, 16);
  EXPECT_EQ(request.seq_len, 64);
  EXPECT_EQ(request.dataset, std::optional<std::string>("text.txt"));
}

// ---- the kernel on AutoAWQ's tensors ---------------------------------------------------------

struct Layer {
  QuantConfig config;
  OwnedKernel kernel;
};

// A pre-quantized AWQ kernel for one layer, from the host (as a checkpoint load makes it).
std::unique_ptr<Layer> awq_layer(const std::string& config_yaml, int64_t in, int64_t out,
                                 bool bias = false, bool pre_quantized = true) {
  auto layer = std::make_unique<Layer>();
  layer->config = config_of("quant_method: awq\n" + config_yaml);
  LinearKernelArgs args;
  args.layer = "model.layers.0.self_attn.k_proj";
  args.shape = {in, out, bias};
  args.config = &layer->config;
  args.pre_quantized = pre_quantized;
  layer->kernel = host().make_linear_kernel("awq", args);
  return layer;
}

struct VectorCase {
  std::string tag;
  int64_t group_size;
  std::string version;
};
void PrintTo(const VectorCase& c, std::ostream* os) {
  *os << c.tag << "_" << c.version;
}

class AwqVectors : public ::testing::TestWithParam<VectorCase> {
 protected:
  at::Tensor t(const std::string& suffix) const {
    static const testing::VectorFile file("gptq_awq_pack.safetensors");
    return file[GetParam().tag + "." + suffix];
  }
};

// The vectors' layer (in 256, out 64) loaded from the tensors WQLinear_GEMM / WQLinear_GEMV
// wrote: it dequantizes to their W exactly, saves the same bytes, and computes x W^T.
TEST_P(AwqVectors, LoadsTheTensorsAutoAwqWrites) {
  const VectorCase& c = GetParam();
  auto layer = awq_layer(
      "group_size: " + std::to_string(c.group_size) + "\nversion: " + c.version + "\n", 256, 64);
  LinearKernel& k = *layer->kernel.kernel;
  EXPECT_EQ(k.name(), "awq_" + c.version);
  for (const char* suffix : {"qweight", "qzeros", "scales"})
    k.load_tensor(suffix, t(c.version + "." + suffix));
  k.process_weights_after_loading();
  const at::Tensor w = k.dequantize(DType::F32);
  EXPECT_TRUE(same_bytes(w, t("dequant")));
  EXPECT_TRUE(same_bytes(w, packing::dequantize_awq_gemm(t("gemm.qweight"), t("gemm.qzeros"),
                                                         t("gemm.scales"), c.group_size)));
  const auto stored = k.tensors();
  ASSERT_EQ(stored.size(), 3u);
  for (const auto& [suffix, tensor] : stored)
    EXPECT_TRUE(same_bytes(tensor, t(c.version + "." + suffix))) << suffix;
  at::Generator gen = at::detail::createCPUGenerator(11);
  for (int64_t rows : {1, 5, 40}) {  // the int4 GEMV path and the dequantized-tile path
    const at::Tensor x = at::randn({rows, 256}, gen);
    EXPECT_LT(relative_error(k.apply(x), at::matmul(x, w.t())), 1e-5) << rows << " rows";
  }
}

INSTANTIATE_TEST_SUITE_P(AllCases, AwqVectors,
                         ::testing::Values(VectorCase{"awq_b4_g128", 128, "gemm"},
                                           VectorCase{"awq_b4_g32", 32, "gemm"},
                                           VectorCase{"awq_b4_g128", 128, "gemv"},
                                           VectorCase{"awq_b4_g32", 32, "gemv"}),
                         [](const ::testing::TestParamInfo<VectorCase>& info) {
                           return info.param.tag + "_" + info.param.version;
                         });

// ---- the kernel's matmul on random layers ----------------------------------------------------

struct Packed {
  at::Tensor weight;  // float32 [out, in], what the tensors mean
  std::vector<std::pair<std::string, at::Tensor>> tensors;
};

// Random codes, zeros and fp16 scales packed in the version's layout, with a bias.
Packed random_layer(int64_t in, int64_t out, int64_t group_size, const std::string& version,
                    uint64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  const int64_t gs = group_size == -1 ? in : group_size, groups = in / gs;
  const at::Tensor codes = at::randint(0, 16, {out, in}, gen, at::kByte);
  const at::Tensor zeros = at::randint(0, 16, {out, groups}, gen, at::kByte);
  const at::Tensor scales = (at::rand({out, groups}, gen) * 0.02 + 0.001).to(at::kHalf);
  Packed p;
  p.weight = packing::dequantize_awq_gemm(packing::pack_awq_gemm(codes),
                                          packing::pack_awq_gemm_zeros(zeros),
                                          scales.t().contiguous(), group_size);
  if (version == "gemm") {
    p.tensors = {{"qweight", packing::pack_awq_gemm(codes)},
                 {"qzeros", packing::pack_awq_gemm_zeros(zeros)},
                 {"scales", scales.t().contiguous()}};
  } else {
    p.tensors = {{"qweight", packing::pack_awq_gemv(codes)},
                 {"qzeros", packing::pack_awq_gemv_zeros(zeros, gs)},
                 {"scales", packing::awq_gemv_scales(scales, gs)}};
  }
  p.tensors.push_back({"bias", (at::randn({out}, gen) * 0.1).to(at::kHalf)});
  return p;
}

struct ShapeCase {
  const char* version;
  int64_t in, out, group_size;
  const char* why;
};

TEST(AwqKernel, MatmulOnFastAndFallbackShapes) {
  for (const ShapeCase& c : {
           ShapeCase{"gemm", 64, 32, 32, "int4: groups of 32"},
           ShapeCase{"gemm", 256, 64, -1, "int4: one group per row"},
           ShapeCase{"gemm", 100, 24, -1, "fallback: 100 inputs are not a multiple of 8"},
           ShapeCase{"gemm", 64, 16, 4, "fallback: groups of 4"},
           ShapeCase{"gemv", 64, 16, -1, "int4: gemv, one group of 64"},
           ShapeCase{"gemv", 512, 48, 64, "int4: gemv, groups of 64"},
           ShapeCase{"gemv", 264, 16, 132, "fallback: gemv, groups of 132"},
       }) {
    SCOPED_TRACE(c.why);
    const Packed p = random_layer(c.in, c.out, c.group_size, c.version, 5);
    auto layer =
        awq_layer("group_size: " + std::to_string(c.group_size) + "\nversion: " + c.version + "\n",
                  c.in, c.out, /*bias=*/true);
    LinearKernel& k = *layer->kernel.kernel;
    for (const auto& [suffix, tensor] : p.tensors)
      k.load_tensor(suffix, tensor);
    k.process_weights_after_loading();
    EXPECT_TRUE(same_bytes(k.dequantize(DType::F32), p.weight));
    const at::Tensor bias = p.tensors.back().second.to(at::kFloat);
    at::Generator gen = at::detail::createCPUGenerator(6);
    for (int64_t rows : {1, 7, 33}) {
      const at::Tensor x = at::randn({rows, c.in}, gen);
      EXPECT_LT(relative_error(k.apply(x), at::linear(x, p.weight, bias)), 1e-4) << rows;
    }
    // Any leading dimensions, and half-precision activations (computed in fp32, returned in
    // the activations' dtype).
    const at::Tensor x = at::randn({2, 3, c.in}, gen);
    const at::Tensor want = at::linear(x, p.weight, bias);
    const at::Tensor y = k.apply(x);
    EXPECT_EQ(y.sizes().vec(), (std::vector<int64_t>{2, 3, c.out}));
    EXPECT_LT(relative_error(y, want), 1e-4);
    for (at::ScalarType dtype : {at::kHalf, at::kBFloat16}) {
      const at::Tensor xh = x.to(dtype);
      const at::Tensor yh = k.apply(xh);
      EXPECT_EQ(yh.scalar_type(), dtype);
      EXPECT_LT(relative_error(yh, at::linear(xh.to(at::kFloat), p.weight, bias)),
                dtype == at::kHalf ? 1e-3 : 1e-2);
    }
  }
}

TEST(AwqKernel, RoundToNearestWhileLoading) {
  for (const char* version : {"gemm", "gemv"}) {
    auto layer = awq_layer(std::string("rtn: true\nversion: ") + version + "\n", 256, 64,
                           /*bias=*/true, /*pre_quantized=*/false);
    LinearKernel& k = *layer->kernel.kernel;
    ASSERT_EQ(k.input_tensor_specs().size(), 2u);
    EXPECT_EQ(k.input_tensor_specs()[0].suffix, "weight");
    at::Generator gen = at::detail::createCPUGenerator(8);
    const at::Tensor w = at::randn({64, 256}, gen) * 0.02;
    k.load_tensor("weight", w);
    k.load_tensor("bias", at::zeros({64}));
    k.process_weights_after_loading();
    std::vector<std::string> saved;
    for (const auto& [suffix, tensor] : k.tensors())
      saved.push_back(suffix);
    EXPECT_EQ(saved, (std::vector<std::string>{"qweight", "qzeros", "scales", "bias"}));
    EXPECT_LT(relative_error(k.dequantize(DType::F32), w), 0.12) << version;
  }
}

// ---- bad input ------------------------------------------------------------------------------

template <typename Fn>
void expect_error(Fn&& fn, const std::vector<std::string>& mentions) {
  try {
    fn();
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    for (const auto& m : mentions)
      EXPECT_NE(std::string(e.what()).find(m), std::string::npos) << e.what();
  }
}

TEST(AwqKernel, BadTensorsNameTheLayerAndTensor) {
  const std::string layer = "model.layers.0.self_attn.k_proj";
  const Packed p = random_layer(256, 64, 128, "gemm", 9);
  auto fresh = [] { return awq_layer("", 256, 64, /*bias=*/true); };
  auto l1 = fresh();
  expect_error([&] { l1->kernel.kernel->load_tensor("qweight", p.tensors[0].second.t()); },
               {layer + ".qweight", "[8, 256]", "[256, 8]"});
  expect_error(
      [&] { l1->kernel.kernel->load_tensor("qweight", p.tensors[0].second.to(at::kFloat)); },
      {layer + ".qweight", "int32"});
  expect_error(
      [&] {
        l1->kernel.kernel->load_tensor("scales", at::zeros({2, 64}, at::kInt));
      },
      {layer + ".scales", "floating"});
  expect_error([&] { l1->kernel.kernel->load_tensor("g_idx", at::zeros({256}, at::kInt)); },
               {layer + ".g_idx", "unexpected"});
  l1->kernel.kernel->load_tensor("qweight", p.tensors[0].second);
  expect_error([&] { l1->kernel.kernel->process_weights_after_loading(); },
               {layer + ".qzeros", "missing"});
  // gemv's zeros are padded to a width: a gemm-shaped qzeros is refused.
  auto l2 = awq_layer("version: gemv\n", 256, 64);
  expect_error([&] { l2->kernel.kernel->load_tensor("qzeros", p.tensors[1].second); },
               {layer + ".qzeros", "[64, 1]"});
  // Calibration is AWQ's way; the kernel does not quantize while loading without rtn.
  expect_error([] { awq_layer("", 256, 64, false, /*pre_quantized=*/false); },
               {"calibration", "rtn: true"});
  // A shape no layout holds.
  expect_error([] { awq_layer("", 256, 60); }, {"out_features 60 is not a multiple of 8"});
  expect_error([] { awq_layer("version: gemv\ngroup_size: 16\n", 256, 64); },
               {"group_size 16 has no AWQ gemv layout"});
}

// ---- planning -------------------------------------------------------------------------------

TEST(AwqPlan, Stories260KMlpShowsItsRule) {
  ModelBuildOptions meta;
  meta.device = "meta";
  auto model = build_model(read_model_config(kStories260K.string()), meta);
  // Groups of 32 fit the 64-wide attention; the 172-wide MLP fits no AWQ layout.
  const QuantizerHandle q =
      host().create_quantizer(config_of("quant_method: awq\ngroup_size: 32\n"), false);
  const TargetPlan plan = q.plan(model->describe());
  const TargetEntry* up = plan.find("model.layers.0.mlp.up_proj");
  const TargetEntry* down = plan.find("model.layers.0.mlp.down_proj");
  ASSERT_NE(up, nullptr);
  ASSERT_NE(down, nullptr);
  EXPECT_EQ(up->decision, Decision::Unsupported);
  EXPECT_NE(up->rule.find("out_features 172 is not a multiple of 8"), std::string::npos)
      << up->rule;
  EXPECT_EQ(down->decision, Decision::Unsupported);
  EXPECT_NE(down->rule.find("in_features 172 is not a multiple of group_size 32"),
            std::string::npos)
      << down->rule;
  EXPECT_NE(down->rule.find("modules_to_not_convert"), std::string::npos) << down->rule;
  EXPECT_EQ(plan.find("model.layers.0.self_attn.q_proj")->decision, Decision::Quantize);
  EXPECT_EQ(plan.find("lm_head")->decision, Decision::Keep);
  // quantize refuses, naming the layers and the fix.
  auto skeleton = build_model(read_model_config(kStories260K.string()), meta);
  CoreServices services(host());
  expect_error([&] { q.preprocess_model(*skeleton, services); },
               {"15 layer(s) cannot be converted", "model.layers.4.mlp.gate_proj"});
  // Skipping the MLP makes a plan: 20 attention projections.
  const QuantizerHandle skip = host().create_quantizer(
      config_of("quant_method: awq\ngroup_size: 32\nmodules_to_not_convert: [mlp]\n"), false);
  const TargetPlan ok = skip.plan(model->describe());
  EXPECT_TRUE(ok.unsupported().empty());
  EXPECT_EQ(ok.quantized_modules().size(), 20u);
  EXPECT_EQ(ok.find("lm_head")->decision, Decision::Keep);
}

TEST(AwqPlan, InspectCommandShowsTheMlpRule) {
  TempDir dir;
  std::ofstream(dir / "awq.yaml") << "quant_method: awq\ngroup_size: 32\n";
  std::string out;
  ASSERT_EQ(run_qplug("inspect --model " + kStories260K.string() + " --config " +
                          (dir / "awq.yaml").string(),
                      &out),
            0)
      << out;
  EXPECT_NE(out.find("out_features 172 is not a multiple of 8"), std::string::npos) << out;
  EXPECT_NE(out.find("in_features 172 is not a multiple of group_size 32"), std::string::npos);
  EXPECT_NE(out.find("15 UNSUPPORTED"), std::string::npos) << out;
}

// ---- round-to-nearest checkpoints ------------------------------------------------------------

LoadedModel load(const fs::path& folder, const Value* config = nullptr) {
  LoadOptions o;
  o.host = &host();
  o.quant_config = config;
  return load_model(folder.string(), o);
}

at::Tensor logits(Model& model) {
  const at::Tensor ids = at::arange(1, 65, at::TensorOptions().dtype(at::kLong)).unsqueeze(0);
  return model.forward(ids);
}

TEST(AwqStories3M, RoundToNearestSavesAndReloadsToTheSameModel) {
  struct Case {
    const char* version;
    std::vector<int64_t> qweight, qzeros, scales;  // of mlp.down_proj: in 768, out 256
  };
  for (const Case& c :
       {Case{"gemm", {768, 32}, {6, 32}, {6, 256}}, Case{"gemv", {256, 96}, {256, 1}, {256, 8}}}) {
    SCOPED_TRACE(c.version);
    const Value config = yaml(std::string("quant_method: awq\nrtn: true\nversion: ") + c.version);
    LoadedModel rtn = load(kStories3M, &config);
    ASSERT_TRUE(rtn.quantizer);
    EXPECT_EQ(rtn.plan.quantized_modules().size(), 28u);
    TempDir dir;
    SaveOptions save;
    save.copy_files_from = kStories3M.string();
    save.extra_files = rtn.quantizer->extra_files(rtn.plan);
    EXPECT_TRUE(save.extra_files.empty());  // AutoAWQ writes only config.json
    save_model(*rtn.model, (dir / "awq").string(), save);
    LoadedModel reloaded = load(dir / "awq");
    EXPECT_TRUE(reloaded.model->is_quantized());
    EXPECT_TRUE(at::equal(logits(*rtn.model), logits(*reloaded.model)));

    // The layout AutoAWQ writes.
    const auto tensors = testing::read_tensors(dir / "awq");
    const std::string p = "model.layers.1.mlp.down_proj.";
    auto expect = [&](const std::string& name, at::ScalarType dtype, std::vector<int64_t> shape) {
      ASSERT_TRUE(tensors.count(name)) << name;
      EXPECT_EQ(tensors.at(name).scalar_type(), dtype) << name;
      EXPECT_EQ(tensors.at(name).sizes().vec(), shape) << name;
    };
    expect(p + "qweight", at::kInt, c.qweight);
    expect(p + "qzeros", at::kInt, c.qzeros);
    expect(p + "scales", at::kHalf, c.scales);
    EXPECT_FALSE(tensors.count(p + "weight"));
    EXPECT_FALSE(tensors.count(p + "g_idx"));
    expect("lm_head.weight", at::kFloat, {512, 256});
    const Value q = read_model_config((dir / "awq").string()).at("quantization_config");
    // config.json is written with sorted keys, as transformers' to_json_string does.
    EXPECT_EQ(to_json(q), std::string(R"({"bits": 4, "group_size": 128, )") +
                              R"("modules_to_not_convert": null, "quant_method": "awq", )" +
                              R"("version": ")" + c.version + R"(", "zero_point": true})");
  }
}

TEST(AwqStories3M, KeptLinearsAreListedForOtherLoaders) {
  const Value config = yaml("quant_method: awq\nrtn: true\nmodules_to_not_convert: [down_proj]\n");
  LoadedModel rtn = load(kStories3M, &config);
  TempDir dir;
  save_model(*rtn.model, (dir / "awq").string());
  const Value q = read_model_config((dir / "awq").string()).at("quantization_config");
  // Every kept linear by full name except lm_head, which every loader skips by default.
  std::vector<std::string> want;
  for (int i = 0; i < 4; ++i)
    want.push_back("model.layers." + std::to_string(i) + ".mlp.down_proj");
  EXPECT_EQ(q.at("modules_to_not_convert").as_string_list(), want);
  LoadedModel reloaded = load(dir / "awq");
  EXPECT_FALSE(reloaded.model->find_linear("model.layers.2.mlp.down_proj")->is_quantized());
  EXPECT_TRUE(reloaded.model->find_linear("model.layers.2.mlp.up_proj")->is_quantized());
  EXPECT_TRUE(at::equal(logits(*rtn.model), logits(*reloaded.model)));
}

TEST(AwqStories3M, QuantizeCommandWritesTheSameModel) {
  TempDir dir;
  std::ofstream(dir / "awq.yaml") << "quant_method: awq\nrtn: true\n";
  std::string out;
  ASSERT_EQ(run_qplug("quantize --model " + kStories3M.string() + " --config " +
                          (dir / "awq.yaml").string() + " --out " + (dir / "awq").string(),
                      &out),
            0)
      << out;
  EXPECT_TRUE(fs::exists(dir / "awq" / "tokenizer.model"));
  const Value config = yaml("quant_method: awq\nrtn: true\n");
  LoadedModel in_process = load(kStories3M, &config);
  LoadedModel written = load(dir / "awq");
  EXPECT_TRUE(at::equal(logits(*in_process.model), logits(*written.model)));
}

// A small Llama whose k_proj (in 256, out 64) is the vectors' layer: the rest round-to-nearest,
// k_proj replaced by the tensors AutoAWQ wrote. The checkpoint loads and k_proj is their W.
TEST(AwqCheckpoint, LoadsAnAutoAwqCheckpoint) {
  TempDir dir;
  Value c = Value::map();
  c.set("model_type", "llama");
  c.set("vocab_size", 32);
  c.set("hidden_size", 256);
  c.set("intermediate_size", 256);
  c.set("num_hidden_layers", 1);
  c.set("num_attention_heads", 2);
  c.set("num_key_value_heads", 1);
  c.set("head_dim", 64);
  auto dense = build_model(c);
  init_random_weights(*dense, 3);
  save_model(*dense, (dir / "dense").string());
  const testing::VectorFile vectors("gptq_awq_pack.safetensors");
  const std::string k_proj = "model.layers.0.self_attn.k_proj";
  for (const VectorCase& v :
       {VectorCase{"awq_b4_g128", 128, "gemm"}, VectorCase{"awq_b4_g32", 32, "gemv"}}) {
    const std::string name = v.tag + "_" + v.version;
    const Value config =
        yaml("quant_method: awq\nrtn: true\ngroup_size: " + std::to_string(v.group_size) +
             "\nversion: " + v.version + "\n");
    LoadedModel rtn = load(dir / "dense", &config);
    save_model(*rtn.model, (dir / ("ours_" + name)).string());
    testing::copy_checkpoint(dir / ("ours_" + name), dir / name, [&](testing::TensorMap& t) {
      for (const char* suffix : {"qweight", "qzeros", "scales"})
        t[k_proj + "." + suffix] = vectors[v.tag + "." + v.version + "." + suffix];
    });
    LoadedModel loaded = load(dir / name);
    nn::LinearImpl* layer = loaded.model->find_linear(k_proj);
    EXPECT_TRUE(same_bytes(layer->kernel().dequantize(DType::F32), vectors[v.tag + ".dequant"]))
        << name;
    // A wrong shape names the tensor.
    testing::copy_checkpoint(dir / name, dir / ("bad_" + name), [&](testing::TensorMap& t) {
      t[k_proj + ".qweight"] = t[k_proj + ".qweight"].narrow(0, 0, 8).contiguous();
    });
    expect_error([&] { load(dir / ("bad_" + name)); }, {k_proj + ".qweight"});
  }
}

}  // namespace
}  // namespace qplug
