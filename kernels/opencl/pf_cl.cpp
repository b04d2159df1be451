#include "pf_cl.h"

#include <ctype.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vector>

namespace {
// Constants of the OpenCL 1.2 specification.
constexpr cl_bitfield kDeviceTypeGpu = 1 << 2, kDeviceTypeAll = 0xFFFFFFFF;
constexpr cl_uint kDeviceName = 0x102B, kDeviceMaxWorkGroupSize = 0x1004, kDeviceLocalMemSize = 0x1023;
constexpr cl_uint kProgramBuildLog = 0x1183, kProgramBinarySizes = 0x1165, kProgramBinaries = 0x1166;
constexpr cl_uint kDeviceVersion = 0x102F, kDriverVersion = 0x102D;

const char* const kLibraries[] = {
    "libOpenCL.so.1", "libOpenCL.so",  // Linux: the ICD loader (ocl-icd, with PoCL or a vendor driver)
    "/vendor/lib64/libOpenCL.so", "/system/vendor/lib64/libOpenCL.so", "/system/lib64/libOpenCL.so",
    "/vendor/lib64/egl/libGLES_mali.so", "/system/vendor/lib64/egl/libGLES_mali.so",  // Mali
    "/vendor/lib64/libOpenCL_adreno.so", "/vendor/lib64/libPVROCL.so"};

const char* name_of(cl_int code) {
  switch (code) {
    case -1: return "CL_DEVICE_NOT_FOUND";
    case -4: return "CL_MEM_OBJECT_ALLOCATION_FAILURE";
    case -5: return "CL_OUT_OF_RESOURCES";
    case -6: return "CL_OUT_OF_HOST_MEMORY";
    case -11: return "CL_BUILD_PROGRAM_FAILURE";
    case -30: return "CL_INVALID_VALUE";
    case -38: return "CL_INVALID_MEM_OBJECT";
    case -46: return "CL_INVALID_KERNEL_NAME";
    case -48: return "CL_INVALID_KERNEL";
    case -51: return "CL_INVALID_ARG_SIZE";
    case -52: return "CL_INVALID_KERNEL_ARGS";
    case -54: return "CL_INVALID_WORK_GROUP_SIZE";
    case -61: return "CL_INVALID_BUFFER_SIZE";
    case -1001: return "CL_PLATFORM_NOT_FOUND_KHR";
    default: return "an OpenCL error";
  }
}

bool load(PfCl* cl, std::string* err) {
  const char* env = getenv("PF_OPENCL_LIB");
  std::string tried;
  for (const char* path : env && *env ? std::vector<const char*>{env}
                                      : std::vector<const char*>(std::begin(kLibraries), std::end(kLibraries))) {
    cl->lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (cl->lib) break;
    tried += tried.empty() ? path : std::string(", ") + path;
  }
  if (!cl->lib) {
    *err = "no OpenCL driver found (tried " + tried + "): on Linux install an OpenCL ICD, e.g. "
           "apt-get install ocl-icd-libopencl1 pocl-opencl-icd; on a phone, a GPU driver with OpenCL";
    return false;
  }
#define PF_CL_FN(ret, name, args)                                          \
  cl->name = reinterpret_cast<ret(*) args>(dlsym(cl->lib, #name));         \
  if (!cl->name) {                                                         \
    *err = std::string("the OpenCL driver has no ") + #name;               \
    return false;                                                          \
  }
#include "pf_cl_functions.h"
#undef PF_CL_FN
  return true;
}
}  // namespace

namespace {
void mkdir_one(const std::string& d) { mkdir(d.c_str(), 0755); }  // fails harmlessly when it exists

std::string device_info(PfCl* cl, cl_uint what) {
  char text[512] = {0};
  cl->clGetDeviceInfo(cl->device, what, sizeof(text) - 1, text, nullptr);
  return text;
}

// FNV-1a, 64 bits: the cache key of a program (not a security boundary: the cache is the user's).
uint64_t fnv1a(uint64_t h, const std::string& s) {
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return (h ^ 0xff) * 1099511628211ull;  // a separator, so ("ab", "c") != ("a", "bc")
}

std::string cache_file(PfCl* cl, const char* const* sources, int count, const std::string& options) {
  std::string dir;
  if (const char* d = getenv("PF_OPENCL_CACHE")) dir = d;
  else if (const char* x = getenv("XDG_CACHE_HOME")) dir = std::string(x) + "/polyfuse-opencl";
  else if (const char* h = getenv("HOME")) dir = std::string(h) + "/.cache/polyfuse-opencl";
  if (dir.empty() || dir == "0") return "";
  uint64_t h = 14695981039346656037ull;
  for (const std::string& s : {cl->device_name, device_info(cl, kDeviceVersion), device_info(cl, kDriverVersion), options})
    h = fnv1a(h, s);
  for (int i = 0; i < count; ++i) h = fnv1a(h, sources[i]);
  char name[32];
  snprintf(name, sizeof(name), "/%016llx.bin", (unsigned long long)h);
  return dir + name;
}

std::vector<unsigned char> read_file(const std::string& path) {
  std::vector<unsigned char> data;
  FILE* f = path.empty() ? nullptr : fopen(path.c_str(), "rb");
  if (!f) return data;
  unsigned char buf[1 << 16];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), f)) > 0) data.insert(data.end(), buf, buf + n);
  fclose(f);
  return data;
}

// Writes the program's binary beside its final name, then renames it: a reader never sees half.
void save_binary(PfCl* cl, cl_program p, const std::string& path) {
  size_t size = 0;
  if (path.empty() || cl->clGetProgramInfo(p, kProgramBinarySizes, sizeof(size), &size, nullptr) != 0 || !size) return;
  std::vector<unsigned char> bin(size);
  unsigned char* ptr = bin.data();
  if (cl->clGetProgramInfo(p, kProgramBinaries, sizeof(ptr), &ptr, nullptr) != 0) return;
  const std::string dir = path.substr(0, path.rfind('/'));
  for (size_t i = 1; i <= dir.size(); ++i)  // mkdir -p
    if (i == dir.size() || dir[i] == '/') mkdir_one(dir.substr(0, i));
  const std::string tmp = path + "." + std::to_string(getpid()) + ".tmp";
  FILE* f = fopen(tmp.c_str(), "wb");
  if (!f) return;
  const bool ok = fwrite(bin.data(), 1, size, f) == size;
  if (fclose(f) == 0 && ok) rename(tmp.c_str(), path.c_str());
  else remove(tmp.c_str());
}
// The kernel a build log's first error is in: "kernel k12 (Reduction of 3 node(s): ...)", from
// the first "FILE:LINE:COL" of a log line that names no header (drivers differ in what surrounds
// it: "<source>:12:3: error", "error: /tmp/x.cl:12:3 ..."), the __kernel line above that line of
// the program (the sources as one text) and the comment the templates put above it.
long error_line(const std::string& log) {
  size_t start = 0;
  while (start < log.size()) {
    size_t end = log.find('\n', start);
    if (end == std::string::npos) end = log.size();
    const std::string l = log.substr(start, end - start);
    for (size_t i = 0; i + 1 < l.size(); ++i) {
      if (l[i] != ':' || !isdigit((unsigned char)l[i + 1])) continue;
      size_t j = i + 1;
      while (j < l.size() && isdigit((unsigned char)l[j])) ++j;
      if (j + 1 < l.size() && l[j] == ':' && isdigit((unsigned char)l[j + 1]) && l.rfind(".h", i) == std::string::npos)
        return strtol(l.c_str() + i + 1, nullptr, 10);
    }
    start = end + 1;
  }
  return -1;
}

std::string locate(const char* const* sources, int count, const std::string& log) {
  const long line = error_line(log);
  if (line < 1) return "";
  std::vector<std::string> lines(1);
  for (int i = 0; i < count; ++i)
    for (const char* c = sources[i]; *c; ++c) {
      if (*c == '\n') lines.emplace_back();
      else lines.back() += *c;
    }
  if (line < 1 || line > (long)lines.size()) return "";
  for (long i = line - 1; i >= 0; --i) {
    const std::string& l = lines[i];
    const size_t k = l.find("__kernel void ");
    if (k == std::string::npos) continue;
    std::string name = l.substr(k + 14, l.find('(', k) - k - 14), about;
    long j = i - 1;
    if (j >= 0 && lines[j].rfind("__attribute__", 0) == 0) --j;  // between the comment and the signature
    for (; j >= 0 && lines[j].rfind("// ", 0) == 0; --j) about = lines[j].substr(3) + (about.empty() ? "" : " | " + about);
    if (about.size() > 300) about = about.substr(0, 300) + "...";
    return "in kernel " + name + (about.empty() ? "" : " (" + about + ")");
  }
  return "in the prelude of helpers";
}
}  // namespace

std::string pf_cl_error(const char* what, cl_int code) {
  return std::string(what) + " failed: " + name_of(code) + " (" + std::to_string(code) + ")";
}

bool pf_cl_open(PfCl* cl, bool profiling, std::string* err) {
  if (!load(cl, err)) return false;
  cl_uint np = 0;
  if (cl->clGetPlatformIDs(0, nullptr, &np) != 0 || np == 0) {
    *err = "no OpenCL platform: the driver loaded but reports none (on Linux: apt-get install pocl-opencl-icd, "
           "or a GPU vendor's OpenCL driver)";
    return false;
  }
  std::vector<cl_platform_id> platforms(np);
  cl->clGetPlatformIDs(np, platforms.data(), nullptr);
  for (cl_bitfield type : {kDeviceTypeGpu, kDeviceTypeAll}) {  // a GPU if there is one, else any device
    for (cl_platform_id p : platforms) {
      if (cl->clGetDeviceIDs(p, type, 1, &cl->device, nullptr) == 0 && cl->device) break;
      cl->device = nullptr;
    }
    if (cl->device) break;
  }
  if (!cl->device) {
    *err = "no OpenCL device on any platform";
    return false;
  }
  char name[256] = {0};
  cl->clGetDeviceInfo(cl->device, kDeviceName, sizeof(name) - 1, name, nullptr);
  cl->device_name = name;
  cl->clGetDeviceInfo(cl->device, kDeviceMaxWorkGroupSize, sizeof(cl->max_work_group), &cl->max_work_group, nullptr);
  cl->clGetDeviceInfo(cl->device, kDeviceLocalMemSize, sizeof(cl->local_mem), &cl->local_mem, nullptr);
  // PF_OPENCL_MAX_WORK_GROUP caps the work-groups below the device's own limit (the kernels take
  // any power-of-two size up to their own): for a driver that over-reports, or to test small ones.
  if (const char* cap = getenv("PF_OPENCL_MAX_WORK_GROUP")) {
    const long v = strtol(cap, nullptr, 10);
    if (v > 0 && (size_t)v < cl->max_work_group) cl->max_work_group = (size_t)v;
  }
  cl_int rc = 0;
  cl->context = cl->clCreateContext(nullptr, 1, &cl->device, nullptr, nullptr, &rc);
  if (!cl->context) {
    *err = pf_cl_error("clCreateContext", rc);
    return false;
  }
  const cl_bitfield kQueueProfiling = 1 << 1;
  cl->queue = cl->clCreateCommandQueue(cl->context, cl->device, profiling ? kQueueProfiling : 0, &rc);  // in order
  if (!cl->queue) {
    *err = pf_cl_error("clCreateCommandQueue", rc);
    return false;
  }
  return true;
}

bool pf_cl_build(PfCl* cl, const char* const* sources, int count, cl_program* out, std::string* err) {
  // No -cl-fast-relaxed-math: NaN and inf must behave as on the CPU targets. PF_OPENCL_OPTIONS adds
  // options (-cl-opt-disable under oclgrind, whose checks do not know every optimised instruction).
  const char* extra = getenv("PF_OPENCL_OPTIONS");
  const std::string options = std::string("-cl-std=CL1.2") + (extra && *extra ? std::string(" ") + extra : "");
  const std::string cached = cache_file(cl, sources, count, options);
  const std::vector<unsigned char> bin = read_file(cached);
  cl_int rc = 0;
  if (!bin.empty()) {  // a cached binary: used if the driver takes it, else rebuilt from source
    const unsigned char* ptr = bin.data();
    const size_t size = bin.size();
    cl_int status = 0;
    cl_program p = cl->clCreateProgramWithBinary(cl->context, 1, &cl->device, &size, &ptr, &status, &rc);
    if (p && status == 0 && cl->clBuildProgram(p, 1, &cl->device, options.c_str(), nullptr, nullptr) == 0) {
      *out = p;
      return true;
    }
    if (p) cl->clReleaseProgram(p);
  }
  cl_program p = cl->clCreateProgramWithSource(cl->context, count, const_cast<const char**>(sources), nullptr, &rc);
  if (!p) {
    *err = pf_cl_error("clCreateProgramWithSource", rc);
    return false;
  }
  rc = cl->clBuildProgram(p, 1, &cl->device, options.c_str(), nullptr, nullptr);
  if (rc != 0) {
    size_t n = 0;
    cl->clGetProgramBuildInfo(p, cl->device, kProgramBuildLog, 0, nullptr, &n);
    std::string log(n, '\0');
    cl->clGetProgramBuildInfo(p, cl->device, kProgramBuildLog, n, &log[0], nullptr);
    const std::string where = locate(sources, count, log);
    *err = pf_cl_error("building the model's OpenCL kernels", rc) + " on " + cl->device_name +
           (where.empty() ? "" : ", first error " + where) + ":\n" + log;
    cl->clReleaseProgram(p);
    return false;
  }
  save_binary(cl, p, cached);
  *out = p;
  return true;
}

uint64_t pf_cl_event_ns(PfCl* cl, cl_event e) {
  const cl_uint kStart = 0x1282, kEnd = 0x1283;
  cl_ulong t0 = 0, t1 = 0;
  if (cl->clGetEventProfilingInfo(e, kStart, sizeof(t0), &t0, nullptr) != 0 ||
      cl->clGetEventProfilingInfo(e, kEnd, sizeof(t1), &t1, nullptr) != 0 || t1 < t0)
    return 0;
  return t1 - t0;
}

void pf_cl_close(PfCl* cl) {
  if (cl->queue) cl->clReleaseCommandQueue(cl->queue);
  if (cl->context) cl->clReleaseContext(cl->context);
  cl->queue = nullptr;
  cl->context = nullptr;
  if (cl->lib) dlclose(cl->lib);
  cl->lib = nullptr;
}
