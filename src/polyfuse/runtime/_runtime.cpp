// polyfuse._runtime: loads a compiled model library (pf_model_abi.h) and runs it on numpy arrays.
// The Python side (polyfuse/runtime/model.py) checks names, shapes and dtypes; this layer
// checks byte sizes again, so a bad call is an exception, never a crash.
#include <dlfcn.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

namespace py = pybind11;

namespace {
using CreateFn = void* (*)(const char*, int, char*, size_t);
using RunFn = int (*)(void*, const void* const*, void* const*);
using DestroyFn = void (*)(void*);
using WakeFn = void (*)(void*);
using CountFn = int (*)();
using BytesFn = size_t (*)(int);
constexpr int kAbiVersion = 1;

template <class F>
F symbol(void* lib, const char* name, const std::string& path) {
  void* p = dlsym(lib, name);
  if (!p) throw std::runtime_error(path + ": not a polyfuse model library (missing " + name + ")");
  return reinterpret_cast<F>(p);
}

class Session {
 public:
  Session(const std::string& lib_path, const std::string& weights_path, int nthreads) : path_(lib_path) {
    // Libraries stay loaded for the life of the process: unloading code whose OpenMP
    // threads may still be parked is unsafe.
    lib_ = dlopen(lib_path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!lib_) throw std::runtime_error(std::string("cannot load model library: ") + dlerror());
    if (symbol<CountFn>(lib_, "pf_abi_version", path_)() != kAbiVersion)
      throw std::runtime_error(path_ + ": built for another polyfuse runtime ABI; recompile the model");
    run_ = symbol<RunFn>(lib_, "pf_run", path_);
    destroy_ = symbol<DestroyFn>(lib_, "pf_destroy", path_);
    wake_ = reinterpret_cast<WakeFn>(dlsym(lib_, "pf_wake"));  // optional
    auto n_in = symbol<CountFn>(lib_, "pf_num_inputs", path_)();
    auto n_out = symbol<CountFn>(lib_, "pf_num_outputs", path_)();
    auto in_bytes = symbol<BytesFn>(lib_, "pf_input_bytes", path_);
    auto out_bytes = symbol<BytesFn>(lib_, "pf_output_bytes", path_);
    for (int i = 0; i < n_in; ++i) in_bytes_.push_back(in_bytes(i));
    for (int i = 0; i < n_out; ++i) out_bytes_.push_back(out_bytes(i));
    char err[512] = {0};
    model_ = symbol<CreateFn>(lib_, "pf_create", path_)(weights_path.c_str(), nthreads, err, sizeof err);
    if (!model_) throw std::runtime_error(err);
  }
  ~Session() {
    if (model_) destroy_(model_);
  }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Byte sizes of the inputs and outputs the library was compiled for (pf_input_bytes ...).
  const std::vector<size_t>& input_bytes() const { return in_bytes_; }
  const std::vector<size_t>& output_bytes() const { return out_bytes_; }

  // Wakes the model's worker threads ahead of run() (pf_wake); a no-op for libraries without it.
  void wake() {
    if (wake_ && model_) wake_(model_);
  }

  void run(const std::vector<py::array>& inputs, const std::vector<py::array>& outputs) {
    std::vector<const void*> in;
    std::vector<void*> out;
    check(inputs, in_bytes_, "input");
    check(outputs, out_bytes_, "output");
    for (auto& a : inputs) in.push_back(a.data());
    for (auto& a : outputs) {
      if (!a.writeable()) throw std::invalid_argument("output buffer is read-only");
      out.push_back(const_cast<void*>(a.data()));
    }
    int rc;
    {
      // The lock is taken with the GIL released, so a thread waiting for it never blocks one that
      // needs the GIL. Libraries from this polyfuse serialise pf_run themselves (pf_model_abi.h);
      // this lock also covers artifacts built before they did.
      py::gil_scoped_release release;
      std::lock_guard<std::mutex> hold(run_mu_);
      rc = run_(model_, in.data(), out.data());
    }
    if (rc != 0) throw std::runtime_error("model run failed with code " + std::to_string(rc));
  }

 private:
  static void check(const std::vector<py::array>& arrays, const std::vector<size_t>& bytes, const char* what) {
    if (arrays.size() != bytes.size())
      throw std::invalid_argument(std::string("expected ") + std::to_string(bytes.size()) + " " + what + "s, got " +
                                  std::to_string(arrays.size()));
    for (size_t i = 0; i < arrays.size(); ++i) {
      const auto& a = arrays[i];
      if (!(a.flags() & py::array::c_style)) throw std::invalid_argument(std::string(what) + " is not C-contiguous");
      if (static_cast<size_t>(a.nbytes()) != bytes[i])
        throw std::invalid_argument(std::string(what) + " " + std::to_string(i) + " has " + std::to_string(a.nbytes()) +
                                    " bytes, expected " + std::to_string(bytes[i]));
    }
  }

  std::string path_;
  void* lib_ = nullptr;
  void* model_ = nullptr;
  RunFn run_ = nullptr;
  DestroyFn destroy_ = nullptr;
  WakeFn wake_ = nullptr;
  std::mutex run_mu_;
  std::vector<size_t> in_bytes_, out_bytes_;
};
}  // namespace

PYBIND11_MODULE(_runtime, m) {
  m.doc() = "polyfuse native runtime: load and run compiled model libraries";
  m.attr("ABI_VERSION") = kAbiVersion;
  py::class_<Session>(m, "Session")
      .def(py::init<const std::string&, const std::string&, int>(), py::arg("library"), py::arg("weights"),
           py::arg("nthreads"))
      .def_property_readonly("input_bytes", &Session::input_bytes)
      .def_property_readonly("output_bytes", &Session::output_bytes)
      .def("wake", &Session::wake)
      .def("run", &Session::run, py::arg("inputs"), py::arg("outputs"));
}
