// pybind11 binding for the SM3 hashing and SM2 verification kernels: converts buffers, checks
// lengths, releases the GIL and maps status codes to exceptions. No hashing or curve logic here.
#include <pybind11/pybind11.h>

#include <cstring>
#include <string>
#include <vector>

#include "bindings/common.hpp"

extern "C" {
#include "common/cpu.h"
#include "sm3/sm3.h"
}

namespace py = pybind11;

namespace {

using engine_py::Buffer;
using engine_py::BufferList;
using engine_py::kSlotLens;
using engine_py::kSlotOut;
using engine_py::kSlotPtrs;
using engine_py::RawArray;

void check_sm3(int rc) {
    if (rc == ENGINE_SM3_ENOMEM) throw std::bad_alloc();
    if (rc != ENGINE_SM3_OK) throw py::value_error("invalid argument to the SM3 kernel");
}

// Small inputs are faster without the GIL round trip.
constexpr size_t kReleaseGilBytes = 1 << 14;

size_t total_bytes(const BufferList &list) {
    size_t t = 0;
    for (size_t i = 0; i < list.size(); i++) t += list.len(i);
    return t + 64 * list.size();
}

py::bytes sm3_one(py::handle data) {
    Buffer buf(data, "data");
    uint8_t out[32];
    if (buf.size() >= kReleaseGilBytes) {
        py::gil_scoped_release nogil;
        engine_sm3(buf.data(), buf.size(), out);
    } else {
        engine_sm3(buf.data(), buf.size(), out);
    }
    return py::bytes(reinterpret_cast<const char *>(out), 32);
}

// Hashes list items (optionally behind a one-byte prefix) into one contiguous n*32 buffer.
RawArray<uint8_t> hash_list(const BufferList &list, const uint8_t *prefix, size_t prefix_len,
                            int threads) {
    RawArray<uint8_t> out(32 * list.size(), kSlotOut);
    int rc;
    if (total_bytes(list) >= kReleaseGilBytes) {
        py::gil_scoped_release nogil;
        rc = engine_sm3_many(list.ptrs(), list.lens(), list.size(), prefix, prefix_len, out.data(),
                             nullptr, threads);
    } else {
        rc = engine_sm3_many(list.ptrs(), list.lens(), list.size(), prefix, prefix_len, out.data(),
                             nullptr, 1);
    }
    check_sm3(rc);
    return out;
}

// The result bytes objects are made first and hashed into directly.
py::list sm3_many(py::handle messages, int threads) {
    BufferList list(messages, "messages");
    size_t n = list.size();
    RawArray<uint8_t *> outs(n, kSlotOut);
    PyObject *res = PyList_New(static_cast<Py_ssize_t>(n));
    if (!res) throw py::error_already_set();
    auto result = py::reinterpret_steal<py::list>(res);
    for (size_t i = 0; i < n; i++) {
        PyObject *b = PyBytes_FromStringAndSize(nullptr, 32);
        if (!b) throw py::error_already_set();
        PyList_SET_ITEM(res, static_cast<Py_ssize_t>(i), b);
        outs[i] = reinterpret_cast<uint8_t *>(PyBytes_AS_STRING(b));
    }
    int rc;
    if (total_bytes(list) >= kReleaseGilBytes) {
        py::gil_scoped_release nogil;
        rc = engine_sm3_many(list.ptrs(), list.lens(), n, nullptr, 0, nullptr, outs.data(), threads);
    } else {
        rc = engine_sm3_many(list.ptrs(), list.lens(), n, nullptr, 0, nullptr, outs.data(), 1);
    }
    check_sm3(rc);
    return result;
}

// One buffer plus n+1 byte offsets (uint64, native endian); returns n*32 bytes.
py::bytes sm3_many_packed(py::handle data, py::handle offsets, int threads) {
    Buffer buf(data, "data");
    Buffer off(offsets, "offsets");
    if (off.size() % 8 != 0 || off.size() < 8)
        throw py::value_error("offsets must hold n + 1 uint64 values");
    size_t n = off.size() / 8 - 1;
    RawArray<uint64_t> o(n + 1, kSlotOut);
    std::memcpy(o.data(), off.data(), off.size());
    RawArray<const uint8_t *> ptrs(n, kSlotPtrs);
    RawArray<size_t> lens(n, kSlotLens);
    for (size_t i = 0; i < n; i++) {
        if (o[i] > o[i + 1] || o[i + 1] > buf.size())
            throw py::value_error("offsets[" + std::to_string(i + 1) +
                                  "] must be non-decreasing and within data");
        ptrs[i] = buf.data() + o[i];
        lens[i] = static_cast<size_t>(o[i + 1] - o[i]);
    }
    PyObject *res = PyBytes_FromStringAndSize(nullptr, static_cast<Py_ssize_t>(32 * n));
    if (!res) throw py::error_already_set();
    auto result = py::reinterpret_steal<py::bytes>(res);
    uint8_t *out = reinterpret_cast<uint8_t *>(PyBytes_AS_STRING(res));
    int rc;
    {
        py::gil_scoped_release nogil;
        rc = engine_sm3_many(ptrs.data(), lens.data(), n, nullptr, 0, out, nullptr, threads);
    }
    check_sm3(rc);
    return result;
}

const uint8_t kLeafPrefix[1] = {0x00};

// Leaf hashes as one contiguous buffer, from a list of 32-byte hashes or packed bytes.
RawArray<uint8_t> gather_hashes(py::handle hashes) {
    if (PyObject_CheckBuffer(hashes.ptr()) && !PyUnicode_Check(hashes.ptr())) {
        Buffer b(hashes, "leaf_hashes");
        if (b.size() % 32 != 0) throw py::value_error("packed leaf_hashes must be a multiple of 32 bytes");
        RawArray<uint8_t> out(b.size(), kSlotOut);
        std::memcpy(out.data(), b.data(), b.size());
        return out;
    }
    BufferList list(hashes, "leaf_hashes");
    list.require_length(32);
    RawArray<uint8_t> out(32 * list.size(), kSlotOut);
    for (size_t i = 0; i < list.size(); i++) std::memcpy(&out[32 * i], list.ptr(i), 32);
    return out;
}

py::bytes root_of(const RawArray<uint8_t> &leaf_hashes, int threads) {
    uint8_t root[32];
    int rc;
    {
        py::gil_scoped_release nogil;
        rc = engine_sm3_merkle_root(leaf_hashes.data(), leaf_hashes.size() / 32, root, threads);
    }
    check_sm3(rc);
    return py::bytes(reinterpret_cast<const char *>(root), 32);
}

py::bytes merkle_root(py::handle leaves, int threads) {
    BufferList list(leaves, "leaves");
    return root_of(hash_list(list, kLeafPrefix, 1, threads), threads);
}

py::bytes merkle_root_from_hashes(py::handle hashes, int threads) {
    return root_of(gather_hashes(hashes), threads);
}

py::list merkle_path(py::handle leaves, size_t index, int threads) {
    BufferList list(leaves, "leaves");
    if (index >= list.size())
        throw py::index_error("index " + std::to_string(index) + " is outside a tree of " +
                              std::to_string(list.size()) + " leaves");
    RawArray<uint8_t> hashes = hash_list(list, kLeafPrefix, 1, threads);
    uint8_t path[64 * 32];
    size_t path_len = 0;
    int rc;
    {
        py::gil_scoped_release nogil;
        rc = engine_sm3_merkle_path(hashes.data(), list.size(), index, path, &path_len, threads);
    }
    check_sm3(rc);
    py::list result;
    for (size_t i = 0; i < path_len; i++)
        result.append(py::bytes(reinterpret_cast<const char *>(path + 32 * i), 32));
    return result;
}

py::dict kernel_info() {
    py::dict d;
    d["sm3"] = engine_sm3_isa_name();
    return d;
}

void force_isa(py::object name) {
    int isa = engine_py::isa_from_name(name);
    if (engine_sm3_force_isa(isa) != ENGINE_SM3_OK)
        throw py::value_error("this CPU cannot run the " + py::cast<std::string>(name) + " path");
}

}  // namespace

PYBIND11_MODULE(_native_sm, m) {
    m.doc() = "SM3 hashing and SM2 verification kernels (internal; use engine.hashing, engine.crypto)";
    m.def("sm3", &sm3_one, py::arg("data"));
    m.def("sm3_many", &sm3_many, py::arg("messages"), py::arg("threads"));
    m.def("sm3_many_packed", &sm3_many_packed, py::arg("data"), py::arg("offsets"), py::arg("threads"));
    m.def("merkle_root", &merkle_root, py::arg("leaves"), py::arg("threads"));
    m.def("merkle_root_from_hashes", &merkle_root_from_hashes, py::arg("leaf_hashes"),
          py::arg("threads"));
    m.def("merkle_path", &merkle_path, py::arg("leaves"), py::arg("index"), py::arg("threads"));
    m.def("kernel_info", &kernel_info);
    m.def("_force_isa", &force_isa, py::arg("name"));
}
