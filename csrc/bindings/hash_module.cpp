// pybind11 binding for the BLAKE3 / Merkle kernels: converts buffers, checks lengths, releases
// the GIL and maps status codes to exceptions. No hashing logic lives here.
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include "bindings/bucket_tree.hpp"
#include "bindings/common.hpp"

extern "C" {
#include "blake3/blake3.h"
#include "common/cpu.h"
}

namespace py = pybind11;

namespace {

using engine_py::Buffer;
using engine_py::BufferList;
using engine_py::RawArray;

void check(int rc) {
    if (rc == ENGINE_ENOMEM) throw std::bad_alloc();
    if (rc != ENGINE_OK) throw py::value_error("invalid argument to a native hash kernel");
}

const uint8_t *key_ptr(const py::object &key, std::unique_ptr<Buffer> &holder) {
    if (key.is_none()) return nullptr;
    holder = std::make_unique<Buffer>(key, "key");
    if (holder->size() != 32) throw py::value_error("key must be 32 bytes long");
    return holder->data();
}

// Large batches release the GIL; tiny ones are faster without the round trip.
constexpr size_t kReleaseGilBytes = 1 << 14;

py::bytes hash_one(py::handle data, py::object key) {
    Buffer buf(data, "data");
    std::unique_ptr<Buffer> kh;
    const uint8_t *k = key_ptr(key, kh);
    const uint8_t *p = buf.data();
    size_t len = buf.size();
    uint8_t out[32];
    int rc;
    if (len >= kReleaseGilBytes) {
        py::gil_scoped_release nogil;
        rc = engine_blake3_many(&p, &len, 1, k, out, 0);
    } else {
        rc = engine_blake3_many(&p, &len, 1, k, out, 1);
    }
    check(rc);
    return py::bytes(reinterpret_cast<const char *>(out), 32);
}

size_t total_bytes(const BufferList &list) {
    size_t t = 0;
    for (size_t i = 0; i < list.size(); i++) t += list.lens()[i];
    return t;
}

// Hash every message into one contiguous n*32 buffer.
RawArray<uint8_t> hash_list(const BufferList &list, const uint8_t *key, int threads) {
    RawArray<uint8_t> out(32 * list.size(), ENGINE_SCRATCH_BIND_OUT);
    int rc;
    if (total_bytes(list) + 64 * list.size() >= kReleaseGilBytes) {
        py::gil_scoped_release nogil;
        rc = engine_blake3_many(list.ptrs(), list.lens(), list.size(), key, out.data(), threads);
    } else {
        rc = engine_blake3_many(list.ptrs(), list.lens(), list.size(), key, out.data(), 1);
    }
    check(rc);
    return out;
}

// A list of n new 32-byte bytes objects, their storage left for the kernel to fill; outs[i]
// points into item i.
py::list new_hash_list(size_t n, RawArray<uint8_t *> &outs) {
    PyObject *list = PyList_New(static_cast<Py_ssize_t>(n));
    if (!list) throw py::error_already_set();
    auto result = py::reinterpret_steal<py::list>(list);
    for (size_t i = 0; i < n; i++) {
        PyObject *b = PyBytes_FromStringAndSize(nullptr, 32);
        if (!b) throw py::error_already_set();
        PyList_SET_ITEM(list, static_cast<Py_ssize_t>(i), b);
        outs[i] = reinterpret_cast<uint8_t *>(PyBytes_AS_STRING(b));
    }
    return result;
}

// The result objects are made first and hashed into directly: no intermediate buffer, no copy.
py::list hash_many(py::handle messages, py::object key, int threads) {
    BufferList list(messages, "messages");
    std::unique_ptr<Buffer> kh;
    const uint8_t *k = key_ptr(key, kh);
    size_t n = list.size();
    RawArray<uint8_t *> outs(n, ENGINE_SCRATCH_BIND_OUT);
    py::list result = new_hash_list(n, outs);
    int rc;
    if (total_bytes(list) + 64 * n >= kReleaseGilBytes) {
        py::gil_scoped_release nogil;
        rc = engine_blake3_many_into(list.ptrs(), list.lens(), n, k, outs.data(), threads);
    } else {
        rc = engine_blake3_many_into(list.ptrs(), list.lens(), n, k, outs.data(), 1);
    }
    check(rc);
    return result;
}

// Benchmark hook: the kernel alone on a list of messages. The list is read first (untimed), then
// only engine_blake3_many runs on one thread, timed; returns (n * 32 bytes of hashes, elapsed ns)
// so the caller can check the output. Shows the bound on any list-in / list-out form.
py::tuple kernel_only(py::handle messages) {
    BufferList list(messages, "messages");
    size_t n = list.size();
    PyObject *res = PyBytes_FromStringAndSize(nullptr, static_cast<Py_ssize_t>(32 * n));
    if (!res) throw py::error_already_set();
    auto result = py::reinterpret_steal<py::bytes>(res);
    uint8_t *out = reinterpret_cast<uint8_t *>(PyBytes_AS_STRING(res));
    std::memset(out, 0, 32 * n);  // fault the pages in before the clock starts
    timespec t0, t1;
    int rc;
    {
        py::gil_scoped_release nogil;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        rc = engine_blake3_many(list.ptrs(), list.lens(), n, nullptr, out, 1);
        clock_gettime(CLOCK_MONOTONIC, &t1);
    }
    check(rc);
    double ns = (t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec);
    return py::make_tuple(result, ns);
}

// Packed form: one buffer plus n+1 byte offsets (uint64, native endian); returns n*32 bytes.
py::bytes hash_many_packed(py::handle data, py::handle offsets, py::object key, int threads) {
    Buffer buf(data, "data");
    Buffer off(offsets, "offsets");
    std::unique_ptr<Buffer> kh;
    const uint8_t *k = key_ptr(key, kh);
    if (off.size() % 8 != 0 || off.size() < 8)
        throw py::value_error("offsets must hold n + 1 uint64 values");
    size_t n = off.size() / 8 - 1;
    // A copy: the offsets are checked here and read again by the kernels without the GIL,
    // when another thread could change the caller's array.
    // Copied and checked in one pass (the caller's array may be unaligned).
    RawArray<uint64_t> o(n + 1, ENGINE_SCRATCH_BIND_OUT);
    const uint8_t *src = off.data();
    uint64_t prev = 0;
    for (size_t i = 0; i <= n; i++) {
        uint64_t v;
        std::memcpy(&v, src + 8 * i, 8);
        if (v < prev || v > buf.size())
            throw py::value_error("offsets[" + std::to_string(i) +
                                  "] must be non-decreasing and within data");
        o[i] = prev = v;
    }
    PyObject *res = PyBytes_FromStringAndSize(nullptr, static_cast<Py_ssize_t>(32 * n));
    if (!res) throw py::error_already_set();
    auto result = py::reinterpret_steal<py::bytes>(res);
    uint8_t *out = reinterpret_cast<uint8_t *>(PyBytes_AS_STRING(res));
    int rc;
    {
        py::gil_scoped_release nogil;
        rc = engine_blake3_many_packed(buf.data(), o.data(), n, k, out, threads);
    }
    check(rc);
    return result;
}

// Leaf hashes as one contiguous buffer, from a list of 32-byte hashes or packed bytes.
RawArray<uint8_t> gather_hashes(py::handle hashes) {
    if (PyObject_CheckBuffer(hashes.ptr()) && !PyUnicode_Check(hashes.ptr())) {
        Buffer b(hashes, "leaf_hashes");
        if (b.size() % 32 != 0) throw py::value_error("packed leaf_hashes must be a multiple of 32 bytes");
        RawArray<uint8_t> out(b.size(), ENGINE_SCRATCH_BIND_OUT);
        std::memcpy(out.data(), b.data(), b.size());
        return out;
    }
    BufferList list(hashes, "leaf_hashes");
    RawArray<uint8_t> out(32 * list.size(), ENGINE_SCRATCH_BIND_OUT);
    for (size_t i = 0; i < list.size(); i++) {
        if (list.lens()[i] != 32)
            throw py::value_error("leaf_hashes[" + std::to_string(i) + "] must be 32 bytes long, not " +
                                  std::to_string(list.lens()[i]));
        std::memcpy(&out[32 * i], list.ptrs()[i], 32);
    }
    return out;
}

py::bytes root_of(const RawArray<uint8_t> &leaf_hashes, const uint8_t *node_key, int threads) {
    uint8_t root[32];
    int rc;
    {
        py::gil_scoped_release nogil;
        rc = engine_merkle_root(leaf_hashes.data(), leaf_hashes.size() / 32, node_key, root, threads);
    }
    check(rc);
    return py::bytes(reinterpret_cast<const char *>(root), 32);
}

const uint8_t *node_key_ptr(py::handle node_key, std::unique_ptr<Buffer> &holder) {
    holder = std::make_unique<Buffer>(node_key, "node_key");
    if (holder->size() != 32) throw py::value_error("node_key must be 32 bytes long");
    return holder->data();
}

py::bytes merkle_root(py::handle leaves, py::handle node_key, int threads) {
    std::unique_ptr<Buffer> kh;
    const uint8_t *nk = node_key_ptr(node_key, kh);
    BufferList list(leaves, "leaves");
    return root_of(hash_list(list, nullptr, threads), nk, threads);
}

py::bytes merkle_root_from_hashes(py::handle hashes, py::handle node_key, int threads) {
    std::unique_ptr<Buffer> kh;
    const uint8_t *nk = node_key_ptr(node_key, kh);
    return root_of(gather_hashes(hashes), nk, threads);
}

py::list merkle_path(py::handle leaves, size_t index, py::handle node_key, int threads) {
    std::unique_ptr<Buffer> kh;
    const uint8_t *nk = node_key_ptr(node_key, kh);
    BufferList list(leaves, "leaves");
    if (index >= list.size())
        throw py::index_error("index " + std::to_string(index) + " is outside a tree of " +
                              std::to_string(list.size()) + " leaves");
    RawArray<uint8_t> hashes = hash_list(list, nullptr, threads);
    uint8_t path[64 * 32];
    size_t path_len = 0;
    int rc;
    {
        py::gil_scoped_release nogil;
        rc = engine_merkle_path(hashes.data(), list.size(), index, nk, path, &path_len, threads);
    }
    check(rc);
    py::list result;
    for (size_t i = 0; i < path_len; i++)
        result.append(py::bytes(reinterpret_cast<const char *>(path + 32 * i), 32));
    return result;
}

py::dict native_info() {
    py::dict info;
    const char *names[32];
    engine_cpu_feature_names(names, 32);
    py::list features;
    for (int i = 0; names[i]; i++) features.append(names[i]);
    info["cpu_features"] = features;
    info["cpu_count"] = engine_cpu_count();
    int forced = engine_isa_forced();
    info["forced_isa"] = forced == -1 ? py::object(py::none())
                         : forced == -2 ? py::object(py::str("invalid"))
                                        : py::object(py::str(engine_isa_name((engine_isa)forced)));
    py::list supported;
    for (int isa = ENGINE_ISA_PORTABLE; isa <= ENGINE_ISA_AVX512; isa++)
        if (engine_isa_supported((engine_isa)isa)) supported.append(engine_isa_name((engine_isa)isa));
    info["isa_supported"] = supported;
    info["blake3"] = engine_blake3_isa_name();
    return info;
}

void force_isa(py::object name) {
    if (engine_blake3_force_isa(engine_py::isa_from_name(name)) != ENGINE_OK)
        throw py::value_error("this CPU cannot run the " + py::cast<std::string>(name) + " path");
}

// The state tree's leaf hash on the default suite: BLAKE3 of a bucket's bytes.
int blake3_leaf_hash(const uint8_t *const *inputs, const size_t *lens, size_t n, uint8_t *out) {
    return engine_blake3_many(inputs, lens, n, nullptr, out, 1);
}

}  // namespace

PYBIND11_MODULE(_native_hash, m) {
    m.doc() = "BLAKE3 and Merkle kernels (internal; use engine.hashing)";
    m.def("blake3", &hash_one, py::arg("data"), py::arg("key") = py::none());
    m.def("blake3_many", &hash_many, py::arg("messages"), py::arg("key"), py::arg("threads"));
    m.def("blake3_many_packed", &hash_many_packed, py::arg("data"), py::arg("offsets"),
          py::arg("key"), py::arg("threads"));
    m.def("merkle_root", &merkle_root, py::arg("leaves"), py::arg("node_key"), py::arg("threads"));
    m.def("merkle_root_from_hashes", &merkle_root_from_hashes, py::arg("leaf_hashes"),
          py::arg("node_key"), py::arg("threads"));
    m.def("merkle_path", &merkle_path, py::arg("leaves"), py::arg("index"), py::arg("node_key"),
          py::arg("threads"));
    m.def("native_info", &native_info);
    m.def("_kernel_only", &kernel_only, py::arg("messages"));
    m.def("_force_isa", &force_isa, py::arg("name"));
    engine_py::bind_bucket_tree(m, blake3_leaf_hash);
}
