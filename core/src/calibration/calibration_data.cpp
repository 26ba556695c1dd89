#include <filesystem>

#include "qplug/core/calibration.hpp"
#include "qplug/core/tokenizer.hpp"
#include "qplug/sdk/errors.hpp"

namespace qplug {

CalibrationData load_calibration_data(const CalibrationRequest& request,
                                      const std::string& model_folder,
                                      const std::optional<std::string>& file, int64_t vocab_size,
                                      int64_t bos_id) {
  const std::optional<std::string> source = file ? file : request.dataset;
  if (!source)
    throw ConfigError(
        "calibration needs text: pass --calibration FILE, or set dataset to a text "
        "file (or a .ids file of token ids)",
        {}, "dataset");
  std::error_code ec;
  if (!std::filesystem::is_regular_file(*source, ec))
    throw ConfigError("'" + *source +
                          "' is not a file; qplug downloads nothing, so give the calibration text "
                          "as a local file (a Hugging Face dataset name such as c4 cannot be used)",
                      {}, "dataset");
  std::optional<Tokenizer> tokenizer;
  const bool ids = source->size() > 4 && source->compare(source->size() - 4, 4, ".ids") == 0;
  if (!ids) tokenizer = Tokenizer::load(model_folder);
  const std::vector<int64_t> tokens =
      load_tokens(*source, tokenizer ? &*tokenizer : nullptr, vocab_size);
  return make_calibration_data(tokens, request.samples, request.seq_len,
                               tokenizer ? tokenizer->bos_id() : bos_id);
}

}  // namespace qplug
