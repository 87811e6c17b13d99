"""A deliberately simple BPE trainer, the rules written out plainly, for tests to compare against."""

from __future__ import annotations


def naive_bpe(words: list[str], merges: int) -> tuple[list[tuple[str, str]], list[int], list[list[str]]]:
    """Returns (merged pairs, their counts, the final segmentation of each word)."""
    ids = {b: i for i, b in enumerate("ACGT")}
    segs = [list(w) for w in words]
    pairs, counts = [], []
    for _ in range(merges):
        freq: dict[tuple[str, str], int] = {}
        for s in segs:
            for x, y in zip(s, s[1:], strict=False):
                freq[(x, y)] = freq.get((x, y), 0) + 1
        if not freq:
            break
        best = min(freq, key=lambda p: (-freq[p], ids[p[0]], ids[p[1]]))
        new = best[0] + best[1]
        ids.setdefault(new, len(ids))
        for k, s in enumerate(segs):
            out, i = [], 0
            while i < len(s):
                if i + 1 < len(s) and (s[i], s[i + 1]) == best:
                    out.append(new)
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            segs[k] = out
        pairs.append(best)
        counts.append(freq[best])
    return pairs, counts, segs
