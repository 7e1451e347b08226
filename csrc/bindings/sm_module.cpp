// pybind11 binding for the SM3 hashing and SM2 verification kernels: converts buffers, checks
// lengths, releases the GIL and maps status codes to exceptions. No hashing or curve logic here.
#include <pybind11/pybind11.h>

#include <cstring>
#include <string>
#include <vector>

#include "bindings/bucket_tree.hpp"
#include "bindings/common.hpp"

extern "C" {
#include "common/cpu.h"
#include "sm2/sm2.h"
#include "sm3/sm3.h"
}

namespace py = pybind11;

namespace {

using engine_py::Buffer;
using engine_py::BufferList;
using engine_py::RawArray;

// The state tree's leaf hash on an SM2/SM3 chain: the SM3 Merkle tree's leaf hash of a
// bucket's bytes, SM3(0x00 || bytes) (docs/formats.md, "State commitment").
int sm3_leaf_hash(const uint8_t *const *inputs, const size_t *lens, size_t n, uint8_t *out) {
    static const uint8_t leaf_prefix[1] = {0x00};
    return engine_sm3_many(inputs, lens, n, leaf_prefix, 1, out, nullptr, 1);
}

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
    RawArray<uint8_t> out(32 * list.size(), ENGINE_SCRATCH_BIND_OUT);
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
    RawArray<uint8_t *> outs(n, ENGINE_SCRATCH_BIND_OUT);
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
    RawArray<uint64_t> o(n + 1, ENGINE_SCRATCH_BIND_OUT);
    std::memcpy(o.data(), off.data(), off.size());
    RawArray<const uint8_t *> ptrs(n, ENGINE_SCRATCH_BIND_PTRS);
    RawArray<size_t> lens(n, ENGINE_SCRATCH_BIND_LENS);
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
        RawArray<uint8_t> out(b.size(), ENGINE_SCRATCH_BIND_OUT);
        std::memcpy(out.data(), b.data(), b.size());
        return out;
    }
    BufferList list(hashes, "leaf_hashes");
    list.require_length(32);
    RawArray<uint8_t> out(32 * list.size(), ENGINE_SCRATCH_BIND_OUT);
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


// ---- SM2 -----------------------------------------------------------------------------------------

void check_sm2(int rc) {
    if (rc == ENGINE_SM2_OK) return;
    if (rc == ENGINE_SM2_ENOMEM) throw std::bad_alloc();
    throw py::value_error("invalid argument to the SM2 kernel");
}

// The 64-byte x || y of a key given as 64 bytes or 65 with a leading 0x04; nullptr for 65 bytes
// with another leading byte (an invalid key: verdict False). Other lengths raise ValueError.
const uint8_t *key_xy(const uint8_t *p, size_t len, const std::string &what) {
    if (len == 64) return p;
    if (len == 65) return p[0] == 0x04 ? p + 1 : nullptr;
    throw py::value_error(what + " must be 64 bytes (x || y) or 65 (0x04 || x || y), not " +
                          std::to_string(len));
}

void check_uid(const Buffer &uid) {
    if (uid.size() > ENGINE_SM2_UID_BYTES_MAX)
        throw py::value_error("uid must be at most " + std::to_string(ENGINE_SM2_UID_BYTES_MAX) +
                              " bytes long, not " + std::to_string(uid.size()));
}

bool sm2_verify(py::handle public_key, py::handle message, py::handle signature, py::handle uid) {
    Buffer pk(public_key, "public_key"), msg(message, "message"), sig(signature, "signature"),
        id(uid, "uid");
    const uint8_t *xy = key_xy(pk.data(), pk.size(), "public_key");
    if (sig.size() != 64)
        throw py::value_error("signature must be 64 bytes long (r || s), not " + std::to_string(sig.size()));
    check_uid(id);
    if (!xy) return false;
    int ok;
    {
        // tens of microseconds of curve arithmetic: other Python threads may run meanwhile
        py::gil_scoped_release nogil;
        ok = engine_sm2_verify(xy, id.data(), id.size(), msg.data(), msg.size(), sig.data());
    }
    return ok != 0;
}

py::list sm2_verify_batch(py::handle public_keys, py::handle messages, py::handle signatures,
                          py::handle uid, int threads) {
    BufferList pks(public_keys, "public_keys"), msgs(messages, "messages"),
        sigs(signatures, "signatures");
    Buffer id(uid, "uid");
    check_uid(id);
    if (pks.size() != msgs.size() || pks.size() != sigs.size())
        throw py::value_error("public_keys, messages and signatures must have the same length (" +
                              std::to_string(pks.size()) + ", " + std::to_string(msgs.size()) + ", " +
                              std::to_string(sigs.size()) + ")");
    sigs.require_length(64);
    size_t n = pks.size();
    std::vector<engine_sm2_item> items(n);
    for (size_t i = 0; i < n; i++)
        items[i] = engine_sm2_item{key_xy(pks.ptr(i), pks.len(i), pks.where(i)), sigs.ptr(i),
                                   msgs.ptr(i), msgs.len(i)};
    std::vector<uint8_t> out(n);
    int rc;
    {
        py::gil_scoped_release nogil;
        rc = engine_sm2_verify_items(items.data(), n, id.data(), id.size(), out.data(), threads);
    }
    check_sm2(rc);
    PyObject *list = PyList_New(static_cast<Py_ssize_t>(n));
    if (!list) throw py::error_already_set();
    for (size_t i = 0; i < n; i++) {
        PyObject *b = out[i] ? Py_True : Py_False;
        Py_INCREF(b);
        PyList_SET_ITEM(list, static_cast<Py_ssize_t>(i), b);
    }
    return py::reinterpret_steal<py::list>(list);
}

py::bytes sm2_z(py::handle public_key, py::handle uid) {
    Buffer pk(public_key, "public_key"), id(uid, "uid");
    const uint8_t *xy = key_xy(pk.data(), pk.size(), "public_key");
    if (!xy) throw py::value_error("public_key of 65 bytes must start with 0x04");
    check_uid(id);
    uint8_t z[32];
    check_sm2(engine_sm2_z(xy, id.data(), id.size(), z));
    return py::bytes(reinterpret_cast<const char *>(z), 32);
}

// SM3(Z || message): the digest SM2 signs.
py::bytes sm2_digest(py::handle z, py::handle message) {
    Buffer zb(z, "z"), msg(message, "message");
    if (zb.size() != 32) throw py::value_error("z must be 32 bytes long");
    uint8_t e[32];
    engine_sm3_prefixed(zb.data(), 32, msg.data(), msg.size(), e);
    return py::bytes(reinterpret_cast<const char *>(e), 32);
}

py::object sm2_public_key(py::handle private_key) {
    Buffer d(private_key, "private_key");
    if (d.size() != 32) throw py::value_error("private_key must be 32 bytes long");
    uint8_t pk[64];
    int rc = engine_sm2_public_key(d.data(), pk);
    if (rc == ENGINE_SM2_EINVAL) throw py::value_error("private_key must be in [1, n-2]");
    if (rc != ENGINE_SM2_OK) return py::none();
    return py::bytes(reinterpret_cast<const char *>(pk), 64);
}

// (r || s) or None when this k must be replaced by the next one.
py::object sm2_sign_digest(py::handle private_key, py::handle digest, py::handle nonce) {
    Buffer d(private_key, "private_key"), e(digest, "digest"), k(nonce, "nonce");
    if (d.size() != 32 || e.size() != 32 || k.size() != 32)
        throw py::value_error("private_key, digest and nonce must be 32 bytes long");
    uint8_t sig[64];
    int rc = engine_sm2_sign_digest(d.data(), e.data(), k.data(), sig);
    if (rc == ENGINE_SM2_RETRY) return py::none();
    if (rc == ENGINE_SM2_EINVAL) throw py::value_error("private_key must be in [1, n-2] and nonce in [1, n-1]");
    check_sm2(rc);
    return py::bytes(reinterpret_cast<const char *>(sig), 64);
}

int sm2_check_raw(py::bytes pk, py::bytes s, py::bytes t, py::bytes c, int chunks, bool scalar) {
    std::string pks = pk, ss = s, ts = t, cs = c;
    if (pks.size() != 64 || ss.size() != 32 || ts.size() != 32 || cs.size() != 32)
        throw py::value_error("pk must be 64 bytes and s, t, c 32 bytes");
    auto u = [](const std::string &v) { return reinterpret_cast<const uint8_t *>(v.data()); };
    int rc = engine_sm2_check_raw(u(pks), u(ss), u(ts), u(cs), chunks, scalar ? 1 : 0);
    if (rc == ENGINE_SM2_EINVAL) throw py::value_error("chunks must be 1 or 4");
    return rc;
}

py::object sm2_lane_field(int op, py::bytes a, py::bytes b) {
    std::string as = a, bs = b;
    if (as.size() != 256 || bs.size() != 256) throw py::value_error("a and b must be 256 bytes");
    uint8_t out[256];
    int rc = engine_sm2_lane_field(op, reinterpret_cast<const uint8_t *>(as.data()),
                                   reinterpret_cast<const uint8_t *>(bs.data()), out);
    if (rc != 0) return py::none();
    return py::bytes(reinterpret_cast<const char *>(out), sizeof out);
}

void sm2_cache_configure(size_t capacity) { check_sm2(engine_sm2_cache_set_capacity(capacity)); }

py::dict sm2_cache_info() {
    uint64_t hits, misses;
    size_t entries;
    engine_sm2_cache_stats(&hits, &misses, &entries);
    py::dict d;
    d["capacity"] = engine_sm2_cache_capacity();
    d["entries"] = entries;
    d["hits"] = hits;
    d["misses"] = misses;
    return d;
}

py::dict kernel_info() {
    py::dict d;
    d["sm3"] = engine_sm3_isa_name();
    d["sm2"] = engine_sm2_isa_name();
    return d;
}

void force_isa(py::object name) {
    int isa = engine_py::isa_from_name(name);
    if (engine_sm3_force_isa(isa) != ENGINE_SM3_OK || engine_sm2_force_isa(isa) != ENGINE_SM2_OK)
        throw py::value_error("this CPU cannot run the " + py::cast<std::string>(name) + " path");
}

}  // namespace

PYBIND11_MODULE(_native_sm, m) {
    m.doc() = "SM3 hashing and SM2 verification kernels (internal; use engine.hashing, engine.crypto)";
    m.def("sm3", &sm3_one, py::arg("data"));
    engine_py::bind_bucket_tree(m, sm3_leaf_hash);
    m.def("sm3_many", &sm3_many, py::arg("messages"), py::arg("threads"));
    m.def("sm3_many_packed", &sm3_many_packed, py::arg("data"), py::arg("offsets"), py::arg("threads"));
    m.def("merkle_root", &merkle_root, py::arg("leaves"), py::arg("threads"));
    m.def("merkle_root_from_hashes", &merkle_root_from_hashes, py::arg("leaf_hashes"),
          py::arg("threads"));
    m.def("merkle_path", &merkle_path, py::arg("leaves"), py::arg("index"), py::arg("threads"));
    m.def("sm2_verify", &sm2_verify, py::arg("public_key"), py::arg("message"),
          py::arg("signature"), py::arg("uid"));
    m.def("sm2_verify_batch", &sm2_verify_batch, py::arg("public_keys"), py::arg("messages"),
          py::arg("signatures"), py::arg("uid"), py::arg("threads"));
    m.def("sm2_z", &sm2_z, py::arg("public_key"), py::arg("uid"));
    m.def("sm2_digest", &sm2_digest, py::arg("z"), py::arg("message"));
    m.def("sm2_public_key", &sm2_public_key, py::arg("private_key"));
    m.def("sm2_sign_digest", &sm2_sign_digest, py::arg("private_key"), py::arg("digest"),
          py::arg("nonce"));
    m.def("sm2_cache_configure", &sm2_cache_configure, py::arg("capacity"));
    m.def("sm2_cache_info", &sm2_cache_info);
    m.def("sm2_cache_clear", &engine_sm2_cache_clear);
    m.def("_sm2_selftest", &engine_sm2_selftest, py::arg("seed"), py::arg("iterations"));
    m.def("_sm2_check_raw", &sm2_check_raw, py::arg("public_key"), py::arg("s"), py::arg("t"),
          py::arg("c"), py::arg("chunks"), py::arg("scalar") = false);
    m.def("_sm2_lane_field", &sm2_lane_field, py::arg("op"), py::arg("a"), py::arg("b"));
    m.def("kernel_info", &kernel_info);
    m.def("_force_isa", &force_isa, py::arg("name"));
}
