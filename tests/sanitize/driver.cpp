// Runs one compiled polyfuse model (model.cpp linked in, not loaded): the sanitizer test builds it
// with -fsanitize=address,undefined, which a library dlopen'ed into Python cannot use.
//   driver WEIGHTS NTHREADS IN0 ... -- OUT0 ...     (raw little-endian tensors, sizes checked)
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "pf_model_abi.h"

static bool read_file(const char* path, std::vector<char>& data, size_t want) {
  FILE* f = std::fopen(path, "rb");
  if (!f) return false;
  data.resize(want ? want : 1);
  const size_t got = std::fread(data.data(), 1, want, f);
  const bool at_end = std::fgetc(f) == EOF;
  std::fclose(f);
  return got == want && at_end;
}

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s WEIGHTS NTHREADS IN... -- OUT...\n", argv[0]);
    return 2;
  }
  int sep = 3;
  while (sep < argc && std::strcmp(argv[sep], "--") != 0) ++sep;
  const int n_in = sep - 3, n_out = argc - sep - 1;
  if (n_in != pf_num_inputs() || n_out != pf_num_outputs()) {
    std::fprintf(stderr, "expected %d inputs and %d outputs\n", pf_num_inputs(), pf_num_outputs());
    return 2;
  }
  std::vector<std::vector<char>> ins(n_in), outs(n_out);
  std::vector<const void*> in_ptrs;
  std::vector<void*> out_ptrs;
  for (int i = 0; i < n_in; ++i) {
    if (!read_file(argv[3 + i], ins[i], pf_input_bytes(i))) {
      std::fprintf(stderr, "%s: not %zu bytes\n", argv[3 + i], pf_input_bytes(i));
      return 2;
    }
    in_ptrs.push_back(ins[i].data());
  }
  for (int i = 0; i < n_out; ++i) {
    outs[i].assign(pf_output_bytes(i) ? pf_output_bytes(i) : 1, 0);
    out_ptrs.push_back(outs[i].data());
  }
  char err[512] = {0};
  void* m = pf_create(argv[1], std::atoi(argv[2]), err, sizeof err);
  if (!m) {
    std::fprintf(stderr, "pf_create: %s\n", err);
    return 3;
  }
  const int rc = pf_run(m, in_ptrs.data(), out_ptrs.data());
  pf_destroy(m);
  if (rc != 0) return 4;
  for (int i = 0; i < n_out; ++i) {
    FILE* f = std::fopen(argv[sep + 1 + i], "wb");
    if (!f || std::fwrite(outs[i].data(), 1, pf_output_bytes(i), f) != pf_output_bytes(i)) return 5;
    std::fclose(f);
  }
  return 0;
}
