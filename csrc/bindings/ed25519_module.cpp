// pybind11 binding for the Ed25519 kernels: converts buffers, checks lengths, releases the GIL
// and maps status codes to exceptions. No verification logic lives here.
#include <pybind11/pybind11.h>

#include <memory>
#include <string>
#include <vector>

extern "C" {
#include "common/cpu.h"
#include "ed25519/ed25519.h"
}

namespace py = pybind11;

namespace {

// Borrowed views of a sequence of byte buffers, alive until destruction.
class BufferList {
  public:
    BufferList(py::handle seq, const char *arg) : arg_(arg) {
        if (PyUnicode_Check(seq.ptr()) || PyBytes_Check(seq.ptr()) || PyByteArray_Check(seq.ptr()))
            throw py::type_error(std::string(arg) + " must be a sequence of bytes-like objects");
        fast_ = PySequence_Fast(seq.ptr(), "");
        if (!fast_) {
            PyErr_Clear();
            throw py::type_error(std::string(arg) + " must be a sequence of bytes-like objects, not " +
                                 Py_TYPE(seq.ptr())->tp_name);
        }
        Py_ssize_t n = PySequence_Fast_GET_SIZE(fast_);
        PyObject **items = PySequence_Fast_ITEMS(fast_);
        ptrs_.resize(static_cast<size_t>(n));
        lens_.resize(static_cast<size_t>(n));
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *item = items[i];
            if (PyBytes_CheckExact(item)) {
                ptrs_[i] = reinterpret_cast<const uint8_t *>(PyBytes_AS_STRING(item));
                lens_[i] = static_cast<size_t>(PyBytes_GET_SIZE(item));
                continue;
            }
            if (PyUnicode_Check(item) || !PyObject_CheckBuffer(item))
                throw py::type_error(where(i) + " must be bytes, bytearray or memoryview, not " +
                                     Py_TYPE(item)->tp_name);
            views_.emplace_back(new Py_buffer);
            if (PyObject_GetBuffer(item, views_.back().get(), PyBUF_SIMPLE) != 0) {
                views_.pop_back();
                PyErr_Clear();
                throw py::type_error(where(i) + " must be a contiguous bytes-like object");
            }
            ptrs_[i] = static_cast<const uint8_t *>(views_.back()->buf);
            lens_[i] = static_cast<size_t>(views_.back()->len);
        }
    }
    ~BufferList() {
        for (auto &v : views_) PyBuffer_Release(v.get());
        Py_XDECREF(fast_);
    }
    BufferList(const BufferList &) = delete;
    BufferList &operator=(const BufferList &) = delete;

    size_t size() const { return ptrs_.size(); }
    const uint8_t *ptr(size_t i) const { return ptrs_[i]; }
    size_t len(size_t i) const { return lens_[i]; }
    const uint8_t *const *ptrs() const { return ptrs_.data(); }
    const size_t *lens() const { return lens_.data(); }

    void require_length(size_t want) const {
        for (size_t i = 0; i < size(); i++)
            if (lens_[i] != want)
                throw py::value_error(where(i) + " must be " + std::to_string(want) +
                                      " bytes long, not " + std::to_string(lens_[i]));
    }

  private:
    std::string where(Py_ssize_t i) const { return std::string(arg_) + "[" + std::to_string(i) + "]"; }
    const char *arg_;
    PyObject *fast_ = nullptr;
    std::vector<const uint8_t *> ptrs_;
    std::vector<size_t> lens_;
    std::vector<std::unique_ptr<Py_buffer>> views_;
};

class Buffer {
  public:
    Buffer(py::handle obj, const char *arg) {
        if (PyUnicode_Check(obj.ptr()) || PyObject_GetBuffer(obj.ptr(), &view_, PyBUF_SIMPLE) != 0) {
            PyErr_Clear();
            throw py::type_error(std::string(arg) + " must be bytes, bytearray or memoryview, not " +
                                 Py_TYPE(obj.ptr())->tp_name);
        }
    }
    ~Buffer() { PyBuffer_Release(&view_); }
    Buffer(const Buffer &) = delete;
    Buffer &operator=(const Buffer &) = delete;
    const uint8_t *data() const { return static_cast<const uint8_t *>(view_.buf); }
    size_t size() const { return static_cast<size_t>(view_.len); }

  private:
    Py_buffer view_{};
};

void check(int rc) {
    if (rc == ENGINE_ED25519_OK) return;
    if (rc == ENGINE_ED25519_ENOMEM) throw std::bad_alloc();
    if (rc == ENGINE_ED25519_ERANDOM) throw std::runtime_error("the OS random number generator failed");
    throw py::value_error("invalid argument to the Ed25519 kernel");
}

py::list verdicts(const std::vector<uint8_t> &out) {
    PyObject *list = PyList_New(static_cast<Py_ssize_t>(out.size()));
    if (!list) throw py::error_already_set();
    for (size_t i = 0; i < out.size(); i++) {
        PyObject *b = out[i] ? Py_True : Py_False;
        Py_INCREF(b);
        PyList_SET_ITEM(list, static_cast<Py_ssize_t>(i), b);
    }
    return py::reinterpret_steal<py::list>(list);
}

bool verify(py::handle public_key, py::handle message, py::handle signature) {
    Buffer pk(public_key, "public_key"), msg(message, "message"), sig(signature, "signature");
    if (pk.size() != 32) throw py::value_error("public_key must be 32 bytes long, not " + std::to_string(pk.size()));
    if (sig.size() != 64) throw py::value_error("signature must be 64 bytes long, not " + std::to_string(sig.size()));
    int ok;
    {
        py::gil_scoped_release nogil;
        ok = engine_ed25519_verify(pk.data(), msg.data(), msg.size(), sig.data());
    }
    return ok != 0;
}

py::list verify_batch(py::handle public_keys, py::handle messages, py::handle signatures, int threads) {
    BufferList pks(public_keys, "public_keys"), msgs(messages, "messages"), sigs(signatures, "signatures");
    if (pks.size() != msgs.size() || pks.size() != sigs.size())
        throw py::value_error("public_keys, messages and signatures must have the same length (" +
                              std::to_string(pks.size()) + ", " + std::to_string(msgs.size()) + ", " +
                              std::to_string(sigs.size()) + ")");
    pks.require_length(32);
    sigs.require_length(64);
    size_t n = pks.size();
    std::vector<engine_ed25519_item> items(n);
    for (size_t i = 0; i < n; i++)
        items[i] = engine_ed25519_item{pks.ptr(i), sigs.ptr(i), nullptr, 0, msgs.ptr(i), msgs.len(i)};
    std::vector<uint8_t> out(n);
    int rc;
    {
        py::gil_scoped_release nogil;
        rc = engine_ed25519_verify_items(items.data(), n, out.data(), threads);
    }
    check(rc);
    return verdicts(out);
}

py::list verify_txs(py::handle envelopes, py::handle chain_id, int threads) {
    BufferList envs(envelopes, "envelopes");
    Buffer chain(chain_id, "chain_id");
    if (chain.size() > 255) throw py::value_error("chain_id must be at most 255 bytes long");
    std::vector<uint8_t> out(envs.size());
    int rc;
    {
        py::gil_scoped_release nogil;
        rc = engine_ed25519_verify_txs(envs.ptrs(), envs.lens(), envs.size(), chain.data(), chain.size(),
                                       out.data(), threads);
    }
    check(rc);
    return verdicts(out);
}

void cache_configure(size_t capacity) { check(engine_ed25519_cache_set_capacity(capacity)); }

py::dict cache_info() {
    uint64_t hits, misses;
    size_t entries;
    engine_ed25519_cache_stats(&hits, &misses, &entries);
    py::dict d;
    d["capacity"] = engine_ed25519_cache_capacity();
    d["entries"] = entries;
    d["hits"] = hits;
    d["misses"] = misses;
    return d;
}

py::dict kernel_info() {
    py::dict d;
    d["ed25519"] = engine_ed25519_isa_name();
    return d;
}

void force_isa(py::object name) {
    int isa = -1;
    if (!name.is_none()) {
        std::string s = py::cast<std::string>(name);
        if (s == "portable") isa = ENGINE_ISA_PORTABLE;
        else if (s == "avx2") isa = ENGINE_ISA_AVX2;
        else if (s == "avx512") isa = ENGINE_ISA_AVX512;
        else throw py::value_error("isa must be 'portable', 'avx2', 'avx512' or None");
    }
    if (engine_ed25519_force_isa(isa) != ENGINE_ED25519_OK)
        throw py::value_error("this CPU cannot run the " + py::cast<std::string>(name) + " path");
}

}  // namespace

PYBIND11_MODULE(_native_ed25519, m) {
    m.doc() = "Ed25519 ZIP-215 verification kernels (internal; use engine.crypto and engine.tx)";
    m.def("verify", &verify, py::arg("public_key"), py::arg("message"), py::arg("signature"));
    m.def("verify_batch", &verify_batch, py::arg("public_keys"), py::arg("messages"),
          py::arg("signatures"), py::arg("threads"));
    m.def("verify_txs", &verify_txs, py::arg("envelopes"), py::arg("chain_id"), py::arg("threads"));
    m.def("cache_configure", &cache_configure, py::arg("capacity"));
    m.def("cache_info", &cache_info);
    m.def("cache_clear", &engine_ed25519_cache_clear);
    m.def("kernel_info", &kernel_info);
    m.def("_force_isa", &force_isa, py::arg("name"));
    m.def("_set_pippenger_min", &engine_ed25519_set_pippenger_min, py::arg("points"));
    m.def("_pippenger_min", &engine_ed25519_pippenger_min);
    m.def("_selftest_ifma", &engine_ed25519_selftest, py::arg("seed"), py::arg("iterations"));
}
