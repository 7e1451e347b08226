// pybind11 binding for the Ed25519 kernels: converts buffers, checks lengths, releases the GIL
// and maps status codes to exceptions. No verification logic lives here.
#include <pybind11/pybind11.h>

#include <memory>
#include <string>
#include <vector>

#include "bindings/common.hpp"

extern "C" {
#include "common/cpu.h"
#include "ed25519/ed25519.h"
#include "ed25519/tx_envelope.h"
}

namespace py = pybind11;

namespace {

using engine_py::Buffer;
using engine_py::BufferList;

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
    if (chain.size() > ENGINE_TX_CHAIN_ID_BYTES_MAX)
        throw py::value_error("chain_id must be at most " + std::to_string(ENGINE_TX_CHAIN_ID_BYTES_MAX) + " bytes long");
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
    if (engine_ed25519_force_isa(engine_py::isa_from_name(name)) != ENGINE_ED25519_OK)
        throw py::value_error("this CPU cannot run the " + py::cast<std::string>(name) + " path");
}

// The native envelope layout, for the test that checks it against engine/tx.py.
int selftest_vector_points(py::bytes encodings) {
    std::string buf = encodings;
    if (buf.size() % 32 != 0) throw py::value_error("encodings: a multiple of 32 bytes");
    return engine_ed25519_selftest_vector_points(
        reinterpret_cast<const uint8_t *>(buf.data()), buf.size() / 32);
}

py::dict tx_layout() {
    py::dict d;
    d["version"] = ENGINE_TX_VERSION;
    d["sender_offset"] = ENGINE_TX_SENDER_OFFSET;
    d["sender_bytes"] = ENGINE_TX_SENDER_BYTES;
    d["nonce_offset"] = ENGINE_TX_NONCE_OFFSET;
    d["nonce_bytes"] = ENGINE_TX_NONCE_BYTES;
    d["payload_len_offset"] = ENGINE_TX_PAYLOAD_LEN_OFFSET;
    d["payload_len_bytes"] = ENGINE_TX_PAYLOAD_LEN_BYTES;
    d["header_bytes"] = ENGINE_TX_HEADER_BYTES;
    d["signature_bytes"] = ENGINE_TX_SIGNATURE_BYTES;
    d["domain"] = py::bytes(ENGINE_TX_DOMAIN, ENGINE_TX_DOMAIN_BYTES);
    d["chain_id_bytes_max"] = ENGINE_TX_CHAIN_ID_BYTES_MAX;
    return d;
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
    m.def("_batch_equation_failures", &engine_ed25519_batch_equation_failures);
    m.def("_tx_layout", &tx_layout);
    m.def("_selftest_ifma", &engine_ed25519_selftest, py::arg("seed"), py::arg("iterations"));
    m.def("_selftest_avx2", &engine_ed25519_selftest_vector, py::arg("seed"), py::arg("iterations"));
    m.def("_selftest_avx2_points", &selftest_vector_points, py::arg("encodings"));
}
