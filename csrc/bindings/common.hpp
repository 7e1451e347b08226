// Argument handling shared by the pybind11 bindings: borrowed views of bytes-like arguments,
// uninitialised scratch arrays, and ISA names. Bindings parse and check; kernels compute.
#ifndef ENGINE_BINDINGS_COMMON_HPP
#define ENGINE_BINDINGS_COMMON_HPP

#include <pybind11/pybind11.h>

#include <memory>
#include <new>
#include <string>
#include <vector>

extern "C" {
#include "common/cpu.h"
#include "common/scratch.h"
}

namespace engine_py {

namespace py = pybind11;

// Scratch slots: the ENGINE_SCRATCH_BIND_* members of csrc/common/scratch.h.
using Slot = engine_scratch_slot;

// An uninitialised array of trivially copyable T in a per-thread scratch slot: large batches
// must not pay page faults for buffers they overwrite anyway. A slot already in use on this
// thread (several lists alive at once) falls back to a fresh allocation.
template <typename T>
class RawArray {
  public:
    RawArray(size_t n, Slot slot)
        : n_(n), slot_(slot),
          p_(static_cast<T *>(engine_scratch_take(slot, (n ? n : 1) * sizeof(T)))) {
        if (!p_) throw std::bad_alloc();
    }
    ~RawArray() { engine_scratch_release(slot_, p_); }
    RawArray(RawArray &&o) noexcept : n_(o.n_), slot_(o.slot_), p_(o.p_) { o.p_ = nullptr; }
    RawArray(const RawArray &) = delete;
    RawArray &operator=(const RawArray &) = delete;
    T *data() { return p_; }
    const T *data() const { return p_; }
    size_t size() const { return n_; }
    T &operator[](size_t i) { return p_[i]; }
    const T &operator[](size_t i) const { return p_[i]; }

  private:
    size_t n_;
    Slot slot_;
    T *p_;
};

// Borrowed views of a sequence of byte buffers, kept alive (and unresizable) until destruction.
class BufferList {
  public:
    BufferList(py::handle seq, const char *arg) : arg_(arg) {
        PyObject *s = seq.ptr();
        if (PyUnicode_Check(s) || PyBytes_Check(s) || PyByteArray_Check(s))
            throw py::type_error(std::string(arg) + " must be a sequence of bytes-like objects");
        fast_ = PySequence_Fast(s, "");
        if (!fast_) {
            PyErr_Clear();
            throw py::type_error(std::string(arg) + " must be a sequence of bytes-like objects, not " +
                                 Py_TYPE(s)->tp_name);
        }
        try {
            fill();
        } catch (...) {  // the destructor does not run for a half-built object
            release();
            throw;
        }
    }
    ~BufferList() { release(); }

  private:
    void fill() {
        size_t n = static_cast<size_t>(PySequence_Fast_GET_SIZE(fast_));
        PyObject **items = PySequence_Fast_ITEMS(fast_);
        // Kernels read the items with the GIL released: another thread could then replace an
        // item of a list and free it. Holding a reference to each item of a mutable sequence
        // keeps them alive (the count sits in the cache line the loop reads anyway).
        if (!PyTuple_Check(fast_)) held_ = std::make_unique<RawArray<PyObject *>>(n, ENGINE_SCRATCH_BIND_HELD);
        ptrs_ = std::make_unique<RawArray<const uint8_t *>>(n, ENGINE_SCRATCH_BIND_PTRS);
        lens_ = std::make_unique<RawArray<size_t>>(n, ENGINE_SCRATCH_BIND_LENS);
        constexpr size_t kPrefetchAhead = 16;  // objects are scattered: hide the misses
        for (size_t i = 0; i < n; i++) {
            if (i + kPrefetchAhead < n) __builtin_prefetch(items[i + kPrefetchAhead]);
            PyObject *item = items[i];
            if (held_) {
                Py_INCREF(item);
                (*held_)[held_count_++] = item;
            }
            if (PyBytes_CheckExact(item)) {  // fast path: immutable, no export needed
                (*ptrs_)[i] = reinterpret_cast<const uint8_t *>(PyBytes_AS_STRING(item));
                (*lens_)[i] = static_cast<size_t>(PyBytes_GET_SIZE(item));
                continue;
            }
            if (PyUnicode_Check(item) || !PyObject_CheckBuffer(item))
                throw py::type_error(where(i) + " must be bytes, bytearray or memoryview, not " +
                                     Py_TYPE(item)->tp_name);
            // Views stay at fixed addresses: an exporter may keep the pointer until release.
            views_.emplace_back(new Py_buffer);
            if (PyObject_GetBuffer(item, views_.back().get(), PyBUF_SIMPLE) != 0) {
                views_.pop_back();
                PyErr_Clear();
                throw py::type_error(where(i) + " must be a contiguous bytes-like object");
            }
            (*ptrs_)[i] = static_cast<const uint8_t *>(views_.back()->buf);
            (*lens_)[i] = static_cast<size_t>(views_.back()->len);
        }
    }
    void release() {
        for (auto &v : views_) PyBuffer_Release(v.get());
        views_.clear();
        PyObject **held = held_ ? held_->data() : nullptr;
        for (size_t i = 0; i < held_count_; i++) {
            if (i + 16 < held_count_) __builtin_prefetch(held[i + 16], 1);  // scattered objects
            Py_DECREF(held[i]);
        }
        held_count_ = 0;
        Py_CLEAR(fast_);
    }

  public:
    BufferList(const BufferList &) = delete;
    BufferList &operator=(const BufferList &) = delete;

    size_t size() const { return ptrs_->size(); }
    const uint8_t *ptr(size_t i) const { return (*ptrs_)[i]; }
    size_t len(size_t i) const { return (*lens_)[i]; }
    const uint8_t *const *ptrs() const { return ptrs_->data(); }
    const size_t *lens() const { return lens_->data(); }

    // ValueError naming the first item whose length is not `want`.
    void require_length(size_t want) const {
        for (size_t i = 0; i < size(); i++)
            if (len(i) != want)
                throw py::value_error(where(i) + " must be " + std::to_string(want) +
                                      " bytes long, not " + std::to_string(len(i)));
    }

    std::string where(size_t i) const { return std::string(arg_) + "[" + std::to_string(i) + "]"; }

  private:
    const char *arg_;
    PyObject *fast_ = nullptr;
    std::unique_ptr<RawArray<const uint8_t *>> ptrs_;
    std::unique_ptr<RawArray<size_t>> lens_;
    std::vector<std::unique_ptr<Py_buffer>> views_;
    std::unique_ptr<RawArray<PyObject *>> held_;
    size_t held_count_ = 0;
};

// A read-only contiguous view of one bytes-like argument.
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

// The ISA a test hook names: -1 for None (the default path), else an engine_isa value.
inline int isa_from_name(const py::object &name) {
    if (name.is_none()) return -1;
    std::string s = py::cast<std::string>(name);
    if (s == "portable") return ENGINE_ISA_PORTABLE;
    if (s == "avx2") return ENGINE_ISA_AVX2;
    if (s == "avx512") return ENGINE_ISA_AVX512;
    throw py::value_error("isa must be 'portable', 'avx2', 'avx512' or None");
}

}  // namespace engine_py

#endif
