"""Compiled hot loop of the BPE trainer (numba). Pure array code: no strings, no I/O.

Layout (why it is lean: 2 bytes per base plus about 1-2 for position lists):
- `tok` (uint16, one slot per base, SEP between words): a token spanning [s, e) stores its id at s and
  at e-1, and INTERIOR everywhere between. The next token starts at s + length[id]; the previous one
  ends at s-1 and its id is read there. No prev/next links are needed.
- Each token of length >= 2 owns a list of candidate start positions in one shared `pool`
  (`off`, `size` per token). A position is still a start of token t iff tok[pos] == t, because a start
  slot only ever takes the ids of ever longer tokens or becomes INTERIOR for good. Lists are
  compacted when scanned, so stale entries cost nothing for long.
- Pairs of two single bases have no lists: there are at most 16 such merges, each a full scan.
- `counts` is a dense (V, V) uint32 matrix of exact pair frequencies; `heap` is a max-heap of uint64
  keys (count << 32 | ~left << 16 | ~right), so ties go to the smallest (left, right) as in HF.
  Stale keys are refreshed lazily when popped.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

SEP = np.uint16(0xFFFF)  # word boundary: no pair is counted or merged across it
INTERIOR = np.uint16(0xFFFE)  # slot inside a token
MAX_TOKENS = 0xFFFE  # ids must stay below INTERIOR
_MASK16 = np.uint64(0xFFFF)
AHEAD = 16  # list entries prefetched ahead: sparse lists make every tok access a cache miss


@intrinsic
def prefetch(typingctx, arr, idx):
    """Hint the CPU to load arr[idx] into cache (LLVM's prefetch): the list walks below are
    latency-bound, and numba has no prefetch of its own."""
    sig = types.void(arr, idx)

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]], wraparound=False)
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0i8")
        # read, high temporal locality, data cache
        builder.call(fn, [builder.bitcast(ptr, i8p), ir.Constant(i32, 0), ir.Constant(i32, 3),
                          ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, nogil=True)
def count_base_pairs(tok):
    """Counts of adjacent pairs in a fresh array of single bases (ids 0-3). Returns (4, 4) int64."""
    out = np.zeros((4, 4), dtype=np.int64)
    for i in range(tok.size - 1):
        a = tok[i]
        b = tok[i + 1]
        if a < 4 and b < 4:
            out[a, b] += 1
    return out


@njit(cache=True)
def heap_push(heap, n, key):
    """Push `key` onto the max-heap heap[:n]; returns the new size (capacity ensured by caller)."""
    i = n
    heap[i] = key
    while i > 0:
        parent = (i - 1) >> 1
        if heap[parent] >= heap[i]:
            break
        heap[parent], heap[i] = heap[i], heap[parent]
        i = parent
    return n + 1


@njit(cache=True)
def _heap_pop(heap, n):
    top = heap[0]
    n -= 1
    heap[0] = heap[n]
    i = 0
    while True:
        left = 2 * i + 1
        if left >= n:
            break
        big = left
        if left + 1 < n and heap[left + 1] > heap[left]:
            big = left + 1
        if heap[i] >= heap[big]:
            break
        heap[i], heap[big] = heap[big], heap[i]
        i = big
    return top, n


@njit(cache=True)
def pair_key(count, a, b):
    return (np.uint64(count) << np.uint64(32)) | ((_MASK16 - np.uint64(a)) << np.uint64(16)) | (
        _MASK16 - np.uint64(b)
    )


@njit(cache=True)
def rebuild_heap(heap, n, counts):
    """Refresh every key to its pair's current count, drop dead pairs and duplicates, re-heapify.
    Stale keys pile up (one push per new pair per cycle); this keeps the heap the size of the live
    pairs rather than of the run's history. Returns the new size."""
    for i in range(n):
        key = heap[i]
        a = np.int64(_MASK16 - ((key >> np.uint64(16)) & _MASK16))
        b = np.int64(_MASK16 - (key & _MASK16))
        heap[i] = pair_key(counts[a, b], a, b) if counts[a, b] > 0 else np.uint64(0)
    keys = np.unique(heap[:n])[::-1]  # descending order is a valid max-heap
    m = keys.size - 1 if keys.size and keys[-1] == 0 else keys.size
    heap[:m] = keys[:m]
    return m


@njit(cache=True)
def pop_best(heap, n, counts):
    """Most frequent pair, smallest (left, right) on ties. Returns (left, right, count, heap size);
    count 0 when no pair is left."""
    while n > 0:
        key, n = _heap_pop(heap, n)
        a = np.int64(_MASK16 - ((key >> np.uint64(16)) & _MASK16))
        b = np.int64(_MASK16 - (key & _MASK16))
        c = np.int64(key >> np.uint64(32))
        actual = counts[a, b]
        if actual == c and c > 0:
            return a, b, c, n
        if actual > 0:  # stale key: the pair's count fell since it was pushed
            n = heap_push(heap, n, pair_key(actual, a, b))
    return -1, -1, 0, n


@njit(cache=True, nogil=True)
def merge_pair(tok, length, counts, pool, off, size, heap, heap_n, a, b, c, tail):
    """Apply merge (a, b) -> c everywhere, left to right without overlap.

    Phase 1 gathers candidate starts, in position order, at pool[tail:] (the caller made room for
    the pair's count plus one): a branch-free pass over the whole array when both are single bases
    (at most 16 such merges), else a walk of the shorter start list. Phase 2 re-checks and merges
    each candidate: the re-check is what keeps self-merges (A, A) left to right without overlap.
    The merged starts stay at pool[tail:] as c's new list entries.
    Returns (occurrences merged, new pool tail, new heap size).
    """
    V = length.size
    la = length[a]
    lb = length[b]
    k = tail
    if la == 1 and lb == 1:
        for p in range(1, tok.size - 1):
            pool[k] = p
            k += (tok[p] == a) & (tok[p + 1] == b)
    else:
        use_left = la > 1 and (lb == 1 or size[a] <= size[b])
        t = a if use_left else b
        o = off[t]
        kept = 0
        n = size[t]
        for i in range(n):
            if i + AHEAD < n:
                prefetch(tok, np.int64(pool[o + i + AHEAD]))
            q = np.int64(pool[o + i])
            if tok[q] == t:  # else stale: no longer a start of t
                pool[o + kept] = q
                kept += 1
                if use_left:
                    if tok[q + la] == b:
                        pool[k] = q
                        k += 1
                elif tok[q - 1] == a:  # the token ending before q is a, so it starts at q - la
                    pool[k] = q - la
                    k += 1
        size[t] = kept
    # Phase 2. Neighbour pair changes are summed per neighbour id in dl ((x, a) -> (x, c)) and
    # dr ((b, y) -> (c, y)) and applied to the large count matrix once, after the loop.
    dl = np.zeros(V, dtype=np.int64)
    dr = np.zeros(V, dtype=np.int64)
    seen_l = np.empty(V, dtype=np.int64)
    seen_r = np.empty(V, dtype=np.int64)
    nl = 0
    nr = 0
    m = tail
    for i in range(tail, k):
        if i + AHEAD < k:
            prefetch(tok, np.int64(pool[i + AHEAD]) - 1)
        s = np.int64(pool[i])
        if tok[s] != a or tok[s + la] != b:
            continue  # consumed by the previous (overlapping) merge
        x = tok[s - 1]
        if x != SEP:
            if dl[x] == 0:
                seen_l[nl] = x
                nl += 1
            dl[x] += 1
        r = s + la + lb
        y = tok[r]
        if y != SEP:
            if dr[y] == 0:
                seen_r[nr] = y
                nr += 1
            dr[y] += 1
        tok[s + la - 1] = INTERIOR
        tok[s + la] = INTERIOR
        tok[s] = c
        tok[r - 1] = c
        pool[m] = s
        m += 1
    merged = m - tail
    size[c] += merged
    counts[a, b] -= merged
    for i in range(nl):
        x = seen_l[i]
        counts[x, a] -= dl[x]
        counts[x, c] += dl[x]
        if counts[x, c] > 0:
            heap_n = heap_push(heap, heap_n, pair_key(counts[x, c], x, c))
    for i in range(nr):
        y = seen_r[i]
        counts[b, y] -= dr[y]
        counts[c, y] += dr[y]
        if counts[c, y] > 0:
            heap_n = heap_push(heap, heap_n, pair_key(counts[c, y], c, y))
    return merged, m, heap_n


@njit(cache=True, nogil=True)
def compact_pool(tok, pool, off, size, order):
    """Move every token's valid list entries to the front of the pool, in `order` of their offsets
    (so moves only go left). Returns the new tail."""
    tail = 0
    for k in range(order.size):
        t = order[k]
        o = off[t]
        off[t] = tail
        for i in range(size[t]):
            q = pool[o + i]
            if tok[q] == t:
                pool[tail] = q
                tail += 1
        size[t] = tail - off[t]
    return tail


@njit(cache=True, nogil=True)
def extract_tokens(tok, length, word_tok, word_len, word_start, out_ids, out_starts, out_first,
                   id_offset):
    """Segmentation of every word: token ids (+ id_offset), start offsets and each word's first
    token index. Returns the number of tokens."""
    n = 0
    for w in range(word_tok.size):
        out_first[w] = n
        base = word_tok[w]
        p = base
        end = base + word_len[w]
        while p < end:
            t = tok[p]
            out_ids[n] = t + id_offset
            out_starts[n] = word_start[w] + (p - base)
            n += 1
            p += length[t]
    return n


@njit(cache=True, nogil=True)
def count_tokens(tok, length, n_ids):
    """How many times each token id occurs in the current segmentation."""
    out = np.zeros(n_ids, dtype=np.int64)
    p = 0
    while p < tok.size:
        t = tok[p]
        if t == SEP:
            p += 1
        else:
            out[t] += 1
            p += length[t]
    return out
