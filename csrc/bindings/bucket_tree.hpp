// The pybind11 class of the state tree's buckets (csrc/statetree/), shared by the modules
// that give it a leaf hash: _native_hash (BLAKE3) and _native_sm (SM3). Module-local, so each
// module registers its own Python type.
#ifndef ENGINE_BINDINGS_BUCKET_TREE_HPP
#define ENGINE_BINDINGS_BUCKET_TREE_HPP

#include <pybind11/pybind11.h>

#include <algorithm>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "bindings/common.hpp"

extern "C" {
#include "statetree/bucket_tree.h"
}

namespace engine_py {

namespace py = pybind11;

// The state commitment's buckets (engine/statetree.py); one block's writes per call.
class BucketTree {
  public:
    explicit BucketTree(engine_tree_leaf_hash_fn leaf_hash) : t_(engine_bucket_tree_new(leaf_hash)) {
        if (!t_) throw std::bad_alloc();
    }
    ~BucketTree() { engine_bucket_tree_free(t_); }
    BucketTree(const BucketTree &) = delete;
    BucketTree &operator=(const BucketTree &) = delete;

    // khs: n key hashes (32 bytes each); vhs: the value hashes of the live writes, in order;
    // live: n flags (0 deletes) or None (every write is live). Returns (touched buckets as
    // little-endian uint16, their leaf hashes before the writes).
    py::tuple apply(py::handle khs, py::handle vhs, py::object live) {
        Buffer k(khs, "khs"), v(vhs, "vhs");
        if (k.size() % 32) throw py::value_error("khs must be a whole number of 32-byte hashes");
        size_t n = k.size() / 32, live_count = n;
        std::unique_ptr<Buffer> flags;
        const uint8_t *lv = nullptr;
        if (!live.is_none()) {
            flags = std::make_unique<Buffer>(live, "live");
            if (flags->size() != n) throw py::value_error("live must hold one flag per key hash");
            lv = flags->data();
            live_count = 0;
            for (size_t i = 0; i < n; i++) live_count += lv[i] != 0;
        }
        if (v.size() != 32 * live_count)
            throw py::value_error("vhs must hold one 32-byte hash per live write");
        size_t cap = std::min(n, static_cast<size_t>(ENGINE_TREE_BUCKETS));
        std::string touched(2 * cap, '\0'), old(32 * cap, '\0');
        std::vector<uint16_t> idx(cap ? cap : 1);
        size_t count = 0;
        int rc = engine_bucket_tree_apply(t_, k.data(), v.data(), lv, n, idx.data(),
                                          reinterpret_cast<uint8_t *>(old.data()), &count);
        if (rc != 0) throw std::bad_alloc();  // ENGINE_ENOMEM, the only failure
        for (size_t j = 0; j < count; j++) {
            touched[2 * j] = static_cast<char>(idx[j] & 0xff);
            touched[2 * j + 1] = static_cast<char>(idx[j] >> 8);
        }
        return py::make_tuple(py::bytes(touched.data(), 2 * count),
                              py::bytes(old.data(), 32 * count));
    }

    // One presence flag (0 or 1) per packed 32-byte key hash.
    py::bytes contains(py::handle khs) const {
        usable();
        Buffer k(khs, "khs");
        if (k.size() % 32) throw py::value_error("khs must be a whole number of 32-byte hashes");
        size_t n = k.size() / 32;
        std::string out(n, '\0');
        engine_bucket_tree_contains(t_, k.data(), n, reinterpret_cast<uint8_t *>(out.data()));
        return py::bytes(out);
    }

    py::bytes leaves() const {
        usable();
        return py::bytes(reinterpret_cast<const char *>(engine_bucket_tree_leaves(t_)),
                         32 * ENGINE_TREE_BUCKETS);
    }

    py::bytes bucket(long b) const {
        usable();
        if (b < 0 || b >= ENGINE_TREE_BUCKETS)
            throw py::value_error("bucket must be in 0.." + std::to_string(ENGINE_TREE_BUCKETS - 1));
        size_t len = 0;
        const uint8_t *p = engine_bucket_tree_bucket(t_, static_cast<unsigned>(b), &len);
        return py::bytes(reinterpret_cast<const char *>(p), len);
    }

    size_t size() const { return engine_bucket_tree_size(t_); }

  private:
    void usable() const {
        if (engine_bucket_tree_broken(t_))
            throw std::runtime_error("the state tree's hashing failed: rebuild it from the state");
    }
    engine_bucket_tree *t_;
};

// Registers BucketTree() in module m, its leaves hashed by leaf_hash.
inline void bind_bucket_tree(py::module_ &m, engine_tree_leaf_hash_fn leaf_hash) {
    py::class_<BucketTree>(m, "BucketTree", py::module_local())
        .def(py::init([leaf_hash]() { return new BucketTree(leaf_hash); }))
        .def("apply", &BucketTree::apply, py::arg("khs"), py::arg("vhs"), py::arg("live"))
        .def("contains", &BucketTree::contains, py::arg("khs"))
        .def("leaves", &BucketTree::leaves)
        .def("bucket", &BucketTree::bucket, py::arg("b"))
        .def("__len__", &BucketTree::size);
}

}  // namespace engine_py

#endif
