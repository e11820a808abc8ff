// engine/reduce.h - the aggregation kinds, one definition each.
//
// A message group (a contiguous range [start, stop) of message channels) is reduced over a
// destination's incoming messages with one kind. Every kind is defined here once, as a
// Reducer<T, K> policy that the row reducers of message_passing.h and the incremental
// aggregation of active.h take as a template parameter (chosen at run time by
// dispatch_reduce, which refuses an unknown code). Python holds the same table
// (engine/model/registry.py, AGGREGATIONS); a test compares codes and properties, and the
// static_asserts below tie this enum to kReduceTable.
//
// Adding a kind: an enum value and a kReduceTable row, a Reducer specialisation, a case in
// dispatch_reduce (all in this file); then the Python table and the three Python backends
// (see docs/architecture.md).
//
// Semantics every policy keeps (shared with the Python backends): messages are folded in row
// order (the self message first, then the in-edges in CSR order); the row's first message
// initialises the accumulators (first), each later one is folded in (fold); a row with no
// message, or an arg group whose keys were all NaN, aggregates to 0 (winner -1).
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>

// Row reducers call a policy per group per message: it must be inlined into them.
#if defined(__GNUC__)
#define ENGINE_INLINE __attribute__((always_inline)) inline
#else
#define ENGINE_INLINE inline
#endif

namespace engine {

enum class Reduce : int { Sum = 0, Mean = 1, Max = 2, Min = 3, ArgMax = 4, ArgMin = 5, Softmax = 6 };

// Properties of a kind, in code order. arg: the group's first channel is a key and the
// winning message's whole group is kept (its source is reported); incremental: a row's
// aggregate can be updated exactly from one changed message (see Reducer::push);
// min_size: the fewest channels a group of the kind may have.
struct ReduceInfo {
  Reduce kind;
  std::string_view name;
  bool arg;
  bool incremental;
  int min_size;
};

inline constexpr std::array<ReduceInfo, 7> kReduceTable = {{
    {Reduce::Sum, "sum", false, false, 1},
    {Reduce::Mean, "mean", false, false, 1},
    {Reduce::Max, "max", false, true, 1},
    {Reduce::Min, "min", false, true, 1},
    {Reduce::ArgMax, "argmax", true, true, 1},
    {Reduce::ArgMin, "argmin", true, true, 1},
    {Reduce::Softmax, "softmax", false, false, 2},
}};

namespace detail {
constexpr bool table_in_code_order() {
  for (size_t i = 0; i < kReduceTable.size(); ++i)
    if (static_cast<size_t>(kReduceTable[i].kind) != i) return false;
  return true;
}
}  // namespace detail
static_assert(detail::table_in_code_order(), "kReduceTable must list the kinds in code order");

// The kind of a code; throws std::invalid_argument for an unknown one.
inline Reduce reduce_from_code(int64_t code) {
  if (code < 0 || code >= static_cast<int64_t>(kReduceTable.size()))
    throw std::invalid_argument("unknown aggregation code " + std::to_string(code) + " (known: 0.." +
                                std::to_string(kReduceTable.size() - 1) + ")");
  return static_cast<Reduce>(code);
}

inline const ReduceInfo& reduce_info(Reduce k) { return kReduceTable[static_cast<size_t>(k)]; }
inline bool is_arg(Reduce k) { return reduce_info(k).arg; }

// A contiguous range [start, stop) of message channels reduced with one kind.
struct Group {
  Reduce kind = Reduce::Sum;
  int64_t start = 0;
  int64_t stop = 0;
};

// A row's accumulators while its messages are folded: acc (message width), and per group
// (indexed by its start channel) best, the winning source of an arg group (-1: none yet), and
// den, the softmax denominator.
template <typename T>
struct RowAccumulator {
  T* acc;
  int64_t* best;
  T* den;
};

// Reducer<T, K>: the policy of kind K over one group's channels [lo, hi) of message m from
// source u:
//   first(r, m, lo, hi, u)            the row's first message
//   fold(r, m, lo, hi, u)             every later message
//   repeat(r, m, lo, hi, count, low)  as first and count - 1 folds of the same message m, the
//                                     lowest of its sources being low (a row whose messages
//                                     do not depend on their source)
//   finish(r, lo, hi, count, agg)     the aggregate of count > 0 messages into agg[lo, hi);
//                                     returns the winner of an arg group (-1: none), else -1
//   push(agg, winner, o, x, u, lo, hi) incremental kinds only: see below
template <typename T, Reduce K>
struct Reducer;

namespace detail {

// max/min ignore NaN like numpy.fmax/fmin: a NaN accumulator takes the message.
template <typename T, bool IsMax>
struct Extremum {
  static ENGINE_INLINE void first(RowAccumulator<T> r, const T* m, int64_t lo, int64_t hi, int64_t) {
    for (int64_t c = lo; c < hi; ++c) r.acc[c] = m[c];
  }
  static ENGINE_INLINE void fold(RowAccumulator<T> r, const T* __restrict m, int64_t lo, int64_t hi, int64_t) {
    // Written as a plain max/min select under a NaN test, the form the compiler turns into
    // maxss/minss and a blend (branch-free): the comparisons are data dependent and
    // unpredictable. The same choice as "take m if it is larger, or if acc is NaN"; an
    // equivalent form with the two tests or-ed compiled to branches and made gather-bound
    // reductions ~1.4x slower.
    T* __restrict acc = r.acc;
    for (int64_t c = lo; c < hi; ++c) {
      const T a = acc[c], x = m[c];
      acc[c] = (a == a) ? ((IsMax ? x > a : x < a) ? x : a) : x;
    }
  }
  static ENGINE_INLINE void repeat(RowAccumulator<T> r, const T* m, int64_t lo, int64_t hi, int64_t, int64_t) {
    first(r, m, lo, hi, 0);
  }
  static ENGINE_INLINE int32_t finish(RowAccumulator<T> r, int64_t lo, int64_t hi, int64_t, T* agg) {
    for (int64_t c = lo; c < hi; ++c) agg[c] = r.acc[c];
    return -1;
  }
  // One message of the row, from source u, changes from o to x. The channel's value a
  // becomes max(a, x) if o was not the maximum (o < a: a is still attained by another
  // message) or the message did not fall (x >= o: x >= a then); min alike. That value is
  // exact, and so are its bits as long as none of a, o, x is NaN or -0 (the reduction keeps
  // the first extremal message in edge order, and equal values differ in their bits only as
  // zeros of both signs). Returns 1 if the aggregate's bits changed, 0 if not, -1 where no
  // rule applies (the row must reduce again).
  static ENGINE_INLINE int push(T* agg, int32_t*, const T* o, const T* x, int64_t, int64_t lo, int64_t hi) {
    auto neg_zero = [](T v) { return v == T(0) && std::signbit(v); };
    int changed = 0;
    for (int64_t c = lo; c < hi; ++c) {
      const T a = agg[c], oc = o[c], xc = x[c];
      if (!(a == a && oc == oc && xc == xc)) return -1;
      if (neg_zero(a) || neg_zero(oc) || neg_zero(xc)) return -1;
      if (!(IsMax ? (oc < a || xc >= oc) : (oc > a || xc <= oc))) return -1;
      if (IsMax ? xc > a : xc < a) {
        agg[c] = xc;
        changed = 1;
      }
    }
    return changed;
  }
};

// sum and mean add in row order; mean divides by the number of messages.
template <typename T, bool IsMean>
struct Additive {
  static ENGINE_INLINE void first(RowAccumulator<T> r, const T* m, int64_t lo, int64_t hi, int64_t) {
    for (int64_t c = lo; c < hi; ++c) r.acc[c] = m[c];
  }
  static ENGINE_INLINE void fold(RowAccumulator<T> r, const T* __restrict m, int64_t lo, int64_t hi, int64_t) {
    T* __restrict acc = r.acc;
    for (int64_t c = lo; c < hi; ++c) acc[c] = acc[c] + m[c];
  }
  static ENGINE_INLINE void repeat(RowAccumulator<T> r, const T* m, int64_t lo, int64_t hi, int64_t count, int64_t) {
    first(r, m, lo, hi, 0);
    for (int64_t i = 1; i < count; ++i) fold(r, m, lo, hi, 0);
  }
  static ENGINE_INLINE int32_t finish(RowAccumulator<T> r, int64_t lo, int64_t hi, int64_t count, T* agg) {
    for (int64_t c = lo; c < hi; ++c) agg[c] = IsMean ? r.acc[c] / T(count) : r.acc[c];
    return -1;
  }
  static ENGINE_INLINE int push(T*, int32_t*, const T*, const T*, int64_t, int64_t, int64_t) { return -1; }
};

// argmax/argmin: channel lo is the key; the message with the largest (smallest) key wins,
// ties to the lowest source (the self message counts as source v); a NaN key never wins.
template <typename T, bool IsMax>
struct ArgExtremum {
  static ENGINE_INLINE bool better(T key, T cur, int64_t u, int64_t b) {
    return (b < 0) | (IsMax ? key > cur : key < cur) | ((key == cur) & (u < b));
  }
  static ENGINE_INLINE void first(RowAccumulator<T> r, const T* m, int64_t lo, int64_t hi, int64_t u) {
    for (int64_t c = lo; c < hi; ++c) r.acc[c] = m[c];
    r.best[lo] = (m[lo] == m[lo]) ? u : -1;
  }
  static ENGINE_INLINE void fold(RowAccumulator<T> r, const T* m, int64_t lo, int64_t hi, int64_t u) {
    const T key = m[lo];
    if (key != key) return;  // NaN never wins
    const int64_t b = r.best[lo];
    const bool take = better(key, r.acc[lo], u, b);
    r.best[lo] = take ? u : b;
    for (int64_t c = lo; c < hi; ++c) r.acc[c] = take ? m[c] : r.acc[c];
  }
  static ENGINE_INLINE void repeat(RowAccumulator<T> r, const T* m, int64_t lo, int64_t hi, int64_t, int64_t low) {
    first(r, m, lo, hi, low);  // equal keys: the lowest source wins
  }
  static ENGINE_INLINE int32_t finish(RowAccumulator<T> r, int64_t lo, int64_t hi, int64_t, T* agg) {
    const bool empty = r.best[lo] < 0;
    for (int64_t c = lo; c < hi; ++c) agg[c] = empty ? T(0) : r.acc[c];
    return empty ? -1 : static_cast<int32_t>(r.best[lo]);
  }
  // The group (key first, winner *winner) takes x, with winner u, if x's key beats the
  // aggregate's (or ties it and u < winner), where u is not the winner; where u is the winner
  // and o is the winning message (its bits are the group's), it takes x if x's key is
  // strictly better, and keeps its value if x is o. NaN keys and an empty group are left to
  // a reduction, as is a winner whose message may be another edge's (u's).
  static ENGINE_INLINE int push(T* agg, int32_t* winner, const T* o, const T* x, int64_t u, int64_t lo, int64_t hi) {
    const size_t bytes = static_cast<size_t>(hi - lo) * sizeof(T);
    const int64_t b = *winner;
    const T a = agg[lo], ko = o[lo], kx = x[lo];
    if (b < 0 || !(a == a && ko == ko && kx == kx)) return -1;
    bool take;
    if (u == b) {
      if (std::memcmp(o + lo, agg + lo, bytes) != 0) return -1;
      if (std::memcmp(x + lo, o + lo, bytes) == 0) {
        take = false;
      } else if (IsMax ? kx > ko : kx < ko) {
        take = true;
      } else {
        return -1;
      }
    } else {
      take = (IsMax ? kx > a : kx < a) || (kx == a && u < b);
    }
    if (!take) return 0;
    const int changed = std::memcmp(x + lo, agg + lo, bytes) != 0 ? 1 : 0;
    std::memcpy(agg + lo, x + lo, bytes);
    *winner = static_cast<int32_t>(u);
    return changed;
  }
};

}  // namespace detail

template <typename T>
struct Reducer<T, Reduce::Max> : detail::Extremum<T, true> {};
template <typename T>
struct Reducer<T, Reduce::Min> : detail::Extremum<T, false> {};
template <typename T>
struct Reducer<T, Reduce::Sum> : detail::Additive<T, false> {};
template <typename T>
struct Reducer<T, Reduce::Mean> : detail::Additive<T, true> {};
template <typename T>
struct Reducer<T, Reduce::ArgMax> : detail::ArgExtremum<T, true> {};
template <typename T>
struct Reducer<T, Reduce::ArgMin> : detail::ArgExtremum<T, false> {};

// softmax (attention): channel lo is the score s_u, channels (lo, hi) the values; the
// aggregate is sum_u softmax(s)_u * value_u and, in channel lo, the largest score. One pass
// in row order with a running maximum M, denominator l and weighted sum a: the first message
// sets M = s, l = 1, a = value; a later one with s > M rescales by r = exp(M - s)
// (l = l * r + 1, a = a * r + value, M = s), otherwise adds w = exp(s - M) (l = l + w,
// a = a + w * value); the result is a / l.
template <typename T>
struct Reducer<T, Reduce::Softmax> {
  static ENGINE_INLINE void first(RowAccumulator<T> r, const T* m, int64_t lo, int64_t hi, int64_t) {
    for (int64_t c = lo; c < hi; ++c) r.acc[c] = m[c];
    r.den[lo] = T(1);
  }
  static ENGINE_INLINE void fold(RowAccumulator<T> r, const T* m, int64_t lo, int64_t hi, int64_t) {
    T* acc = r.acc;
    const T score = m[lo];
    if (score > acc[lo]) {
      const T s = std::exp(acc[lo] - score);
      r.den[lo] = r.den[lo] * s + T(1);
      for (int64_t c = lo + 1; c < hi; ++c) acc[c] = acc[c] * s + m[c];
      acc[lo] = score;
    } else {
      const T w = std::exp(score - acc[lo]);
      r.den[lo] = r.den[lo] + w;
      for (int64_t c = lo + 1; c < hi; ++c) acc[c] = acc[c] + w * m[c];
    }
  }
  static ENGINE_INLINE void repeat(RowAccumulator<T> r, const T* m, int64_t lo, int64_t hi, int64_t count, int64_t) {
    first(r, m, lo, hi, 0);
    for (int64_t i = 1; i < count; ++i) fold(r, m, lo, hi, 0);
  }
  static ENGINE_INLINE int32_t finish(RowAccumulator<T> r, int64_t lo, int64_t hi, int64_t, T* agg) {
    agg[lo] = r.acc[lo];
    for (int64_t c = lo + 1; c < hi; ++c) agg[c] = r.acc[c] / r.den[lo];
    return -1;
  }
  static ENGINE_INLINE int push(T*, int32_t*, const T*, const T*, int64_t, int64_t, int64_t) { return -1; }
};

template <Reduce K>
using ReduceKind = std::integral_constant<Reduce, K>;

// Calls f(ReduceKind<K>{}) for the kind k (one instantiation of f per kind); throws
// std::invalid_argument for a value outside the table.
template <typename F>
ENGINE_INLINE decltype(auto) dispatch_reduce(Reduce k, F&& f) {
  switch (k) {
    case Reduce::Sum: return f(ReduceKind<Reduce::Sum>{});
    case Reduce::Mean: return f(ReduceKind<Reduce::Mean>{});
    case Reduce::Max: return f(ReduceKind<Reduce::Max>{});
    case Reduce::Min: return f(ReduceKind<Reduce::Min>{});
    case Reduce::ArgMax: return f(ReduceKind<Reduce::ArgMax>{});
    case Reduce::ArgMin: return f(ReduceKind<Reduce::ArgMin>{});
    case Reduce::Softmax: return f(ReduceKind<Reduce::Softmax>{});
  }
  throw std::invalid_argument("unknown aggregation kind " + std::to_string(static_cast<int>(k)));
}

}  // namespace engine
