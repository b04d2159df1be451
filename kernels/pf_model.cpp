// pf_model.h over the model ABI (pf_model_abi.h): reads the artifact's manifest.json (tensor
// names, dtypes, shapes, target), checks it against the library, then pf_create / pf_run.
#include "pf_model.h"

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "pf_model_abi.h"

namespace {

// A JSON value: enough of JSON for polyfuse's own manifest (objects, arrays, strings with
// escapes, numbers, true/false/null). Malformed text is an error, never undefined behaviour.
struct Json {
  enum Kind { Null, Bool, Number, String, Array, Object } kind = Null;
  double number = 0;
  std::string text;
  std::vector<Json> items;
  std::vector<std::pair<std::string, Json>> members;

  const Json* get(const char* key) const {
    for (const auto& kv : members)
      if (kv.first == key) return &kv.second;
    return nullptr;
  }
};

class Parser {
 public:
  Parser(const std::string& s) : s_(s) {}
  bool parse(Json& out) {
    if (!value(out, 0)) return false;
    ws();
    return i_ == s_.size();
  }

 private:
  const std::string& s_;
  size_t i_ = 0;

  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\r' || s_[i_] == '\t')) ++i_;
  }
  bool lit(const char* w) {
    size_t n = std::strlen(w);
    if (s_.compare(i_, n, w) != 0) return false;
    i_ += n;
    return true;
  }
  bool value(Json& v, int depth) {
    if (depth > 64) return false;
    ws();
    if (i_ >= s_.size()) return false;
    char c = s_[i_];
    if (c == '{') return object(v, depth);
    if (c == '[') return array(v, depth);
    if (c == '"') { v.kind = Json::String; return string(v.text); }
    if (lit("true")) { v.kind = Json::Bool; v.number = 1; return true; }
    if (lit("false")) { v.kind = Json::Bool; return true; }
    if (lit("null")) return true;
    const char* start = s_.c_str() + i_;
    char* end = nullptr;
    v.number = std::strtod(start, &end);
    if (end == start) return false;
    v.kind = Json::Number;
    i_ += size_t(end - start);
    return true;
  }
  bool object(Json& v, int depth) {
    v.kind = Json::Object;
    ++i_;
    ws();
    if (i_ < s_.size() && s_[i_] == '}') { ++i_; return true; }
    for (;;) {
      ws();
      std::string key;
      if (i_ >= s_.size() || s_[i_] != '"' || !string(key)) return false;
      ws();
      if (i_ >= s_.size() || s_[i_++] != ':') return false;
      v.members.emplace_back(key, Json());
      if (!value(v.members.back().second, depth + 1)) return false;
      ws();
      if (i_ >= s_.size()) return false;
      if (s_[i_] == ',') { ++i_; continue; }
      if (s_[i_] == '}') { ++i_; return true; }
      return false;
    }
  }
  bool array(Json& v, int depth) {
    v.kind = Json::Array;
    ++i_;
    ws();
    if (i_ < s_.size() && s_[i_] == ']') { ++i_; return true; }
    for (;;) {
      v.items.emplace_back();
      if (!value(v.items.back(), depth + 1)) return false;
      ws();
      if (i_ >= s_.size()) return false;
      if (s_[i_] == ',') { ++i_; continue; }
      if (s_[i_] == ']') { ++i_; return true; }
      return false;
    }
  }
  bool hex4(unsigned& u) {
    if (i_ + 4 > s_.size()) return false;
    u = 0;
    for (int k = 0; k < 4; ++k) {
      char c = s_[i_++];
      u = u * 16 + unsigned(c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                            : c >= 'A' && c <= 'F' ? c - 'A' + 10 : 99);
      if (u >= 0x10000u) return false;
    }
    return true;
  }
  static void utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) { out += char(cp); return; }
    if (cp < 0x800) { out += char(0xC0 | (cp >> 6)); out += char(0x80 | (cp & 0x3F)); return; }
    if (cp < 0x10000) {
      out += char(0xE0 | (cp >> 12)); out += char(0x80 | ((cp >> 6) & 0x3F)); out += char(0x80 | (cp & 0x3F));
      return;
    }
    out += char(0xF0 | (cp >> 18)); out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F)); out += char(0x80 | (cp & 0x3F));
  }
  bool string(std::string& out) {
    ++i_;  // the opening quote
    while (i_ < s_.size()) {
      char c = s_[i_++];
      if (c == '"') return true;
      if (c != '\\') { out += c; continue; }
      if (i_ >= s_.size()) return false;
      char e = s_[i_++];
      switch (e) {
        case '"': case '\\': case '/': out += e; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          unsigned u;
          if (!hex4(u)) return false;
          if (u >= 0xD800 && u < 0xDC00) {  // a surrogate pair: \uD83D\uDE00
            unsigned lo;
            if (!lit("\\u") || !hex4(lo) || lo < 0xDC00 || lo >= 0xE000) return false;
            u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
          }
          utf8(out, u);
          break;
        }
        default: return false;
      }
    }
    return false;
  }
};

void fail(char* err, size_t len, const char* fmt, ...) {
  if (!err || !len) return;
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(err, len, fmt, ap);
  va_end(ap);
}

struct Tensor {
  std::string name, dtype;
  std::vector<int64_t> shape;
  pf_tensor_info info;
};

bool read_file(const std::string& path, std::string& out) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return false;
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  bool ok = !std::ferror(f);
  std::fclose(f);
  return ok;
}

// Reads manifest["inputs"] or ["outputs"] into `out`, each checked against the library's sizes.
bool tensors(const Json& manifest, const char* key, std::vector<Tensor>& out, int count, size_t (*bytes)(int),
             const std::string& where, char* err, size_t len) {
  const Json* list = manifest.get(key);
  if (!list || list->kind != Json::Array) {
    fail(err, len, "%s: no \"%s\" list", where.c_str(), key);
    return false;
  }
  if (int(list->items.size()) != count) {
    fail(err, len, "%s: %zu %s, but the library has %d (a library of another model?)", where.c_str(),
         list->items.size(), key, count);
    return false;
  }
  out.resize(list->items.size());
  for (size_t i = 0; i < out.size(); ++i) {
    const Json& t = list->items[i];
    const Json *name = t.get("name"), *dtype = t.get("dtype"), *shape = t.get("shape");
    if (!name || name->kind != Json::String || !dtype || dtype->kind != Json::String || !shape ||
        shape->kind != Json::Array) {
      fail(err, len, "%s: %s[%zu] needs a name, a dtype and a shape", where.c_str(), key, i);
      return false;
    }
    out[i].name = name->text;
    out[i].dtype = dtype->text;
    for (const Json& d : shape->items) {
      if (d.kind != Json::Number || d.number < 0 || d.number != double(int64_t(d.number))) {
        fail(err, len, "%s: %s[%zu] (%s) has a dim that is not a size", where.c_str(), key, i, name->text.c_str());
        return false;
      }
      out[i].shape.push_back(int64_t(d.number));
    }
  }
  for (size_t i = 0; i < out.size(); ++i) {  // pointers into out only once it no longer grows
    Tensor& t = out[i];
    t.info = pf_tensor_info{t.name.c_str(), t.dtype.c_str(), int(t.shape.size()), t.shape.data(), bytes(int(i))};
  }
  return true;
}

}  // namespace

struct pf_model {
  void* instance = nullptr;
  std::vector<Tensor> inputs, outputs;
};

extern "C" {

pf_model* pf_model_open(const char* dir, int nthreads, char* err, size_t err_len) {
  if (!dir) {
    fail(err, err_len, "pf_model_open: no artifact directory given");
    return nullptr;
  }
  std::string base(dir);
  std::string where = base + "/manifest.json";
  std::string text;
  if (!read_file(where, text)) {
    fail(err, err_len, "%s: cannot read it (not a polyfuse artifact directory?)", where.c_str());
    return nullptr;
  }
  Json manifest;
  if (!Parser(text).parse(manifest) || manifest.kind != Json::Object) {
    fail(err, err_len, "%s: not valid JSON (damaged artifact)", where.c_str());
    return nullptr;
  }
  const Json* format = manifest.get("format");
  if (!format || format->kind != Json::String || format->text != "polyfuse-artifact") {
    fail(err, err_len, "%s: not a polyfuse artifact manifest", where.c_str());
    return nullptr;
  }
  const Json* target = manifest.get("target");
  if (!target || target->kind != Json::String || target->text != pf_model_target()) {
    fail(err, err_len, "%s: the artifact is for target '%s', this library was built for '%s'", where.c_str(),
         target && target->kind == Json::String ? target->text.c_str() : "?", pf_model_target());
    return nullptr;
  }
  const Json* abi = manifest.get("abi_version");
  if (!abi || abi->kind != Json::Number || int(abi->number) != pf_abi_version()) {
    fail(err, err_len, "%s: ABI version %g, this library has %d", where.c_str(),
         abi && abi->kind == Json::Number ? abi->number : -1.0, pf_abi_version());
    return nullptr;
  }
  std::unique_ptr<pf_model> m(new (std::nothrow) pf_model());
  if (!m) {
    fail(err, err_len, "out of memory");
    return nullptr;
  }
  if (!tensors(manifest, "inputs", m->inputs, pf_num_inputs(), pf_input_bytes, where, err, err_len) ||
      !tensors(manifest, "outputs", m->outputs, pf_num_outputs(), pf_output_bytes, where, err, err_len))
    return nullptr;
  if (nthreads <= 0) nthreads = int(std::max(1u, std::thread::hardware_concurrency()));
  m->instance = pf_create((base + "/weights.bin").c_str(), nthreads, err, err_len);
  if (!m->instance) return nullptr;
  return m.release();
}

int pf_model_num_inputs(const pf_model* m) { return m ? int(m->inputs.size()) : 0; }
int pf_model_num_outputs(const pf_model* m) { return m ? int(m->outputs.size()) : 0; }

const pf_tensor_info* pf_model_input(const pf_model* m, int i) {
  return m && i >= 0 && i < int(m->inputs.size()) ? &m->inputs[size_t(i)].info : nullptr;
}

const pf_tensor_info* pf_model_output(const pf_model* m, int i) {
  return m && i >= 0 && i < int(m->outputs.size()) ? &m->outputs[size_t(i)].info : nullptr;
}

int pf_model_run(pf_model* m, const void* const* inputs, void* const* outputs, char* err, size_t err_len) {
  if (!m || (!inputs && !m->inputs.empty()) || (!outputs && !m->outputs.empty())) {
    fail(err, err_len, "pf_model_run: no model, inputs or outputs given");
    return 1;
  }
  if (pf_run(m->instance, inputs, outputs) != 0) {
    fail(err, err_len, "pf_model_run: the model failed to run");
    return 1;
  }
  return 0;
}

void pf_model_close(pf_model* m) {
  if (!m) return;
  if (m->instance) pf_destroy(m->instance);
  delete m;
}

}  // extern "C"
