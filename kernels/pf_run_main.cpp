// pf_run: runs a polyfuse artifact from the command line, through pf_model.h only.
//
//   pf_run ARTIFACT_DIR --input NAME=FILE.npy ... -o OUT_DIR [--threads N] [--bench N]
//   pf_run ARTIFACT_DIR --write-packed
//
// Inputs are .npy files (C order, the dtype and shape the manifest names). Each output is
// written to OUT_DIR/<name>.npy, the name's characters outside [A-Za-z0-9_.-] replaced by '_'
// (as `polyfuse run` does). OUT_DIR must be absent or empty; the files are written into a
// sibling folder first and renamed into place, so a failed run leaves nothing. --bench N runs
// N more times and prints the median and minimum latency. --write-packed writes the artifact's
// weights.bin.packed (the GEMM weights packed for this library's micro-kernel, which loading
// then maps): polyfuse runs it at compile time, under an emulator for a phone CPU.
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "pf_model.h"

// In the model library of a CPU target (pf_model_abi.h); weak, so pf_run also links against
// libraries that have nothing to pack (android-gpu's).
extern "C" int pf_write_packed(const char* weights_path, char* err, size_t err_len) __attribute__((weak));

namespace {

struct Dtype {
  const char* name;
  const char* descr;  // numpy's type string in a .npy header
  size_t size;
};

const Dtype kDtypes[] = {
    {"float32", "<f4", 4}, {"float64", "<f8", 8}, {"float16", "<f2", 2}, {"int64", "<i8", 8},
    {"int32", "<i4", 4},   {"int16", "<i2", 2},   {"int8", "|i1", 1},    {"uint64", "<u8", 8},
    {"uint32", "<u4", 4},  {"uint16", "<u2", 2},  {"uint8", "|u1", 1},   {"bool", "|b1", 1},
};

const Dtype* dtype_of(const char* name) {
  for (const Dtype& d : kDtypes)
    if (std::strcmp(d.name, name) == 0) return &d;
  return nullptr;
}

std::string shape_text(int rank, const int64_t* shape) {
  std::string s = "[";
  for (int k = 0; k < rank; ++k) s += (k ? ", " : "") + std::to_string(shape[k]);
  return s + "]";
}

int die(const std::string& msg) {
  std::fprintf(stderr, "pf_run: error: %s\n", msg.c_str());
  return 2;
}

// The value of `key` in a .npy header dict, as written ('descr': '<f4', 'shape': (1, 128), ...).
std::string header_field(const std::string& h, const char* key) {
  std::string k = std::string("'") + key + "'";
  size_t at = h.find(k);
  if (at == std::string::npos) return "";
  at = h.find(':', at + k.size());
  if (at == std::string::npos) return "";
  ++at;
  while (at < h.size() && h[at] == ' ') ++at;
  if (at < h.size() && h[at] == '(') return h.substr(at, h.find(')', at) - at + 1);
  if (at < h.size() && h[at] == '\'') return h.substr(at + 1, h.find('\'', at + 1) - at - 1);
  size_t end = h.find_first_of(",}", at);
  return h.substr(at, end == std::string::npos ? std::string::npos : end - at);
}

// Reads a .npy file for input `t` into `data`; on error returns the message.
std::string read_npy(const std::string& path, const pf_tensor_info& t, std::vector<char>& data) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return path + ": cannot open it";
  unsigned char pre[10];
  std::string err;
  if (std::fread(pre, 1, 10, f) != 10 || std::memcmp(pre, "\x93NUMPY", 6) != 0) {
    err = path + ": not a .npy file";
  } else {
    size_t hlen = pre[8] | (size_t(pre[9]) << 8);
    if (pre[6] >= 2) {  // version 2 and 3: a 4-byte header length
      unsigned char more[2];
      if (std::fread(more, 1, 2, f) != 2) hlen = 0;
      hlen |= (size_t(more[0]) << 16) | (size_t(more[1]) << 24);
    }
    std::string h(hlen, '\0');
    if (hlen == 0 || hlen > (1u << 20) || std::fread(&h[0], 1, hlen, f) != hlen) {
      err = path + ": truncated .npy header";
    } else {
      const Dtype* want = dtype_of(t.dtype);
      std::string descr = header_field(h, "descr"), shape = header_field(h, "shape");
      std::string expect_shape = "(";
      for (int k = 0; k < t.rank; ++k) expect_shape += (k ? ", " : "") + std::to_string(t.shape[k]);
      expect_shape += t.rank == 1 ? ",)" : ")";
      std::string got_shape = shape;
      got_shape.erase(std::remove(got_shape.begin(), got_shape.end(), ' '), got_shape.end());
      std::string want_shape = expect_shape;
      want_shape.erase(std::remove(want_shape.begin(), want_shape.end(), ' '), want_shape.end());
      if (header_field(h, "fortran_order") != "False") {
        err = path + ": Fortran-ordered array; save it in C order";
      } else if (!want || descr != want->descr) {
        err = std::string("input '") + t.name + "': " + path + " holds " + descr + ", the model takes " + t.dtype;
      } else if (got_shape != want_shape) {
        err = std::string("input '") + t.name + "': " + path + " has shape " + shape + ", the model takes " +
              shape_text(t.rank, t.shape);
      } else {
        data.resize(t.bytes);
        if (std::fread(data.data(), 1, t.bytes, f) != t.bytes) err = path + ": truncated data";
      }
    }
  }
  std::fclose(f);
  return err;
}

bool write_npy(const std::string& path, const pf_tensor_info& t, const void* data) {
  std::string shape = "(";
  for (int k = 0; k < t.rank; ++k) shape += (k ? ", " : "") + std::to_string(t.shape[k]);
  shape += t.rank == 1 ? ",)" : ")";
  std::string h = std::string("{'descr': '") + dtype_of(t.dtype)->descr + "', 'fortran_order': False, 'shape': " +
                  shape + ", }";
  size_t total = 10 + h.size() + 1;
  h.append((64 - total % 64) % 64, ' ');
  h += '\n';
  unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(h.size() & 0xff),
                           (unsigned char)(h.size() >> 8)};
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return false;
  bool ok = std::fwrite(pre, 1, 10, f) == 10 && std::fwrite(h.data(), 1, h.size(), f) == h.size() &&
            std::fwrite(data, 1, t.bytes, f) == t.bytes;
  return std::fclose(f) == 0 && ok;
}

std::string safe_filename(const std::string& name, std::vector<std::string>& taken) {
  std::string base;
  for (char c : name) {  // one '_' per character, as Python's re.sub on str: UTF-8 continuation bytes add none
    if ((c & 0xC0) == 0x80) continue;
    base += (c & 0x80) == 0 && (std::isalnum((unsigned char)c) || c == '_' || c == '.' || c == '-') ? c : '_';
  }
  base.erase(0, base.find_first_not_of('.'));
  if (base.empty()) base = "output";
  std::string cand = base;
  for (int k = 1; std::find(taken.begin(), taken.end(), cand) != taken.end(); ++k) cand = base + "_" + std::to_string(k);
  taken.push_back(cand);
  return cand;
}

bool empty_or_absent(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (!d) return access(dir.c_str(), F_OK) != 0;
  bool empty = true;
  while (dirent* e = readdir(d))
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) empty = false;
  closedir(d);
  return empty;
}

void remove_staged(const std::string& dir, const std::vector<std::string>& files) {
  for (const std::string& f : files) std::remove((dir + "/" + f + ".npy").c_str());
  rmdir(dir.c_str());
}

int usage() {
  std::fprintf(stderr, "usage: pf_run ARTIFACT_DIR --input NAME=FILE.npy ... -o OUT_DIR [--threads N] [--bench N]\n"
                       "       pf_run ARTIFACT_DIR --write-packed\n");
  return 2;
}

bool positive(const char* s, int& out) {
  char* end = nullptr;
  long v = std::strtol(s, &end, 10);
  if (!*s || *end || v < 1 || v > 1000000) return false;
  out = int(v);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir, out;
  std::vector<std::pair<std::string, std::string>> given;
  int threads = 0, bench = 0;
  bool write_packed = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    bool has_value = i + 1 < argc;
    if ((a == "--input" || a == "-i") && has_value) {
      std::string item = argv[++i];
      size_t eq = item.find('=');
      if (eq == std::string::npos) return die("--input " + item + ": expected NAME=FILE.npy");
      given.emplace_back(item.substr(0, eq), item.substr(eq + 1));
    } else if ((a == "-o" || a == "--output") && has_value) {
      out = argv[++i];
    } else if (a == "--threads" && has_value) {
      if (!positive(argv[++i], threads)) return die(std::string("--threads ") + argv[i] + ": expected a count >= 1");
    } else if (a == "--bench" && has_value) {
      if (!positive(argv[++i], bench)) return die(std::string("--bench ") + argv[i] + ": expected a count >= 1");
    } else if (a == "--write-packed") {
      write_packed = true;
    } else if (a == "-h" || a == "--help") {
      usage();
      return 0;
    } else if (a[0] != '-' && dir.empty()) {
      dir = a;
    } else {
      return usage();
    }
  }
  if (write_packed) {
    if (dir.empty() || !out.empty() || !given.empty() || bench) return usage();
    if (!pf_write_packed) return die("this model library has no GEMM weights to pack");
    char err[1024] = "";
    return pf_write_packed((dir + "/weights.bin").c_str(), err, sizeof err) == 0 ? 0 : die(err);
  }
  if (dir.empty() || out.empty()) return usage();
  if (!empty_or_absent(out)) return die(out + ": exists and is not empty (outputs go to a new or empty folder)");

  char err[1024] = "";
  pf_model* m = pf_model_open(dir.c_str(), threads, err, sizeof err);
  if (!m) return die(err);
  int n_in = pf_model_num_inputs(m), n_out = pf_model_num_outputs(m);
  std::vector<std::vector<char>> in_data(static_cast<size_t>(n_in)), out_data(static_cast<size_t>(n_out));
  std::vector<const void*> ins(size_t(n_in) + 1);
  std::vector<void*> outs(size_t(n_out) + 1);
  int rc = 0;
  for (auto& g : given) {
    bool known = false;
    for (int i = 0; i < n_in; ++i) known |= g.first == pf_model_input(m, i)->name;
    if (!known) { rc = die("--input " + g.first + ": the model has no input of that name"); break; }
  }
  for (int i = 0; i < n_in && rc == 0; ++i) {
    const pf_tensor_info* t = pf_model_input(m, i);
    auto it = std::find_if(given.begin(), given.end(), [&](const auto& g) { return g.first == t->name; });
    if (it == given.end()) {
      rc = die(std::string("missing input '") + t->name + "' (" + t->dtype + shape_text(t->rank, t->shape) +
               "): --input " + t->name + "=FILE.npy");
      break;
    }
    std::string e = read_npy(it->second, *t, in_data[size_t(i)]);
    if (!e.empty()) rc = die(e);
    ins[size_t(i)] = in_data[size_t(i)].data();
  }
  for (int j = 0; j < n_out && rc == 0; ++j) {
    const pf_tensor_info* t = pf_model_output(m, j);
    if (!dtype_of(t->dtype)) rc = die(std::string("output '") + t->name + "' is " + t->dtype + ", which .npy cannot hold");
    out_data[size_t(j)].resize(std::max<size_t>(t->bytes, 1));
    outs[size_t(j)] = out_data[size_t(j)].data();
  }
  if (rc == 0 && pf_model_run(m, ins.data(), outs.data(), err, sizeof err) != 0) rc = die(err);
  if (rc == 0 && bench > 0) {
    std::vector<double> ms;
    for (int r = 0; r < bench && rc == 0; ++r) {
      auto t0 = std::chrono::steady_clock::now();
      if (pf_model_run(m, ins.data(), outs.data(), err, sizeof err) != 0) rc = die(err);
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    if (rc == 0)
      std::printf("latency over %d runs: median %.3f ms, min %.3f ms\n", bench, ms[ms.size() / 2], ms.front());
  }
  if (rc == 0) {
    std::string base = out;
    while (base.size() > 1 && base.back() == '/') base.pop_back();
    std::string staged = base + ".pf_run." + std::to_string(getpid());
    std::vector<std::string> names;
    if (mkdir(staged.c_str(), 0777) != 0) {
      rc = die(staged + ": cannot create it");
    } else {
      for (int j = 0; j < n_out && rc == 0; ++j) {
        const pf_tensor_info* t = pf_model_output(m, j);
        std::string file = safe_filename(t->name, names);
        if (!write_npy(staged + "/" + file + ".npy", *t, outs[size_t(j)])) rc = die(staged + "/" + file + ".npy: write failed");
      }
      if (rc == 0 && (!empty_or_absent(base) || (access(base.c_str(), F_OK) == 0 && rmdir(base.c_str()) != 0) ||
                      rename(staged.c_str(), base.c_str()) != 0))
        rc = die(base + ": cannot move the outputs into place (it is no longer empty?)");
      if (rc != 0) {
        remove_staged(staged, names);
      } else {
        for (int j = 0; j < n_out; ++j) {
          const pf_tensor_info* t = pf_model_output(m, j);
          std::printf("%s: %s%s -> %s/%s.npy\n", t->name, t->dtype, shape_text(t->rank, t->shape).c_str(), base.c_str(),
                      names[size_t(j)].c_str());
        }
      }
    }
  }
  pf_model_close(m);
  return rc;
}
