"""EA07: the Standard Transfer Algorithm with the production substitution tables.

The cipher is a 16-round substitution-permutation network on a 64-bit block: each round
substitutes every nibble through S1 or S2 (chosen by a bit of the rotating key register) and
permutes the 64 bits. For speed each round is done a byte at a time: for each byte position
and each of the four S1/S2 choices of its two nibbles, one table maps the byte straight to its
substituted and permuted contribution, so a round is eight lookups ORed together; the
per-key choice of tables is computed once per key. (Tables indexed 16 bits at a time halve
the lookups but take tens of MiB and miss the CPU caches on varied tokens: measured slower.)
"""

from __future__ import annotations

from functools import lru_cache

S1 = (14, 10, 7, 9, 12, 3, 2, 5, 13, 0, 15, 1, 4, 8, 6, 11)
S2 = (12, 8, 2, 13, 7, 6, 1, 3, 11, 5, 9, 15, 0, 4, 10, 14)
#: P[i] is the destination bit of source bit i.
P = (
    55, 42, 10, 18, 24, 21, 44, 35, 2, 22, 56, 43, 27, 58, 9, 50,
    6, 36, 12, 61, 37, 38, 53, 16, 62, 3, 7, 4, 32, 20, 63, 25,
    51, 52, 54, 33, 49, 19, 46, 29, 48, 31, 23, 30, 41, 28, 13, 5,
    40, 60, 39, 11, 15, 17, 1, 0, 57, 34, 59, 8, 47, 14, 45, 26,
)  # fmt: skip

_MASK64 = (1 << 64) - 1
_ROUNDS = 16


def _inverse(table: tuple[int, ...]) -> tuple[int, ...]:
    inv = [0] * len(table)
    for i, v in enumerate(table):
        inv[v] = i
    return tuple(inv)


S1_INV = _inverse(S1)
S2_INV = _inverse(S2)
P_INV = _inverse(P)


def _rotl(x: int, n: int) -> int:
    n %= 64
    return ((x << n) | (x >> (64 - n))) & _MASK64


def _rotr(x: int, n: int) -> int:
    return _rotl(x, 64 - n % 64)


def _permute(x: int, dest: tuple[int, ...]) -> int:
    out = 0
    for i in range(64):
        if x >> i & 1:
            out |= 1 << dest[i]
    return out


def _byte_tables(
    lo_box: tuple[tuple[int, ...], tuple[int, ...]],
    dest: tuple[int, ...] | None,
) -> tuple[tuple[tuple[int, ...], ...], ...]:
    """tables[j][c][b]: byte b at position j, substituted with choice c, then permuted.

    Choice c: bit 0 selects the box for the low nibble, bit 1 for the high nibble
    (0 = first box, 1 = second box). ``dest`` None means no permutation.
    """
    tables = []
    for j in range(8):
        per_choice = []
        for c in range(4):
            box_lo = lo_box[c & 1]
            box_hi = lo_box[c >> 1]
            row = []
            for b in range(256):
                sub = box_lo[b & 15] | box_hi[b >> 4] << 4
                v = sub << (8 * j)
                row.append(_permute(v, dest) if dest is not None else v)
            per_choice.append(tuple(row))
        tables.append(tuple(per_choice))
    return tuple(tables)


# Encryption round: substitute then permute.
_ENC = _byte_tables((S1, S2), P)
# Decryption: after one leading inverse permutation, each round is inverse substitution
# followed by the next round's inverse permutation; the last has no permutation.
_DEC_SUB_PERM = _byte_tables((S1_INV, S2_INV), P_INV)
_DEC_SUB = _byte_tables((S1_INV, S2_INV), None)
_PINV_BYTES = tuple(tuple(_permute(b << (8 * j), P_INV) for b in range(256)) for j in range(8))


def _choices(k: int) -> tuple[int, ...]:
    """The S-box choice (0-3) for each byte position under key register ``k``."""
    return tuple(((k >> (8 * j + 3)) & 1) | (((k >> (8 * j + 7)) & 1) << 1) for j in range(8))


@lru_cache(maxsize=1024)
def _schedule(key: int) -> tuple[tuple, tuple, tuple]:
    """Per-round table selections for encryption and decryption under ``key``."""
    k = _rotr(~key & _MASK64, 12)
    regs = []
    for _ in range(_ROUNDS):
        regs.append(k)
        k = _rotl(k, 1)
    enc = tuple(tuple(_ENC[j][c] for j, c in enumerate(_choices(r))) for r in regs)
    # Decryption walks the key registers backwards.
    dec_regs = regs[::-1]
    dec = tuple(
        tuple(_DEC_SUB_PERM[j][c] for j, c in enumerate(_choices(r))) for r in dec_regs[:-1]
    )
    last = tuple(_DEC_SUB[j][c] for j, c in enumerate(_choices(dec_regs[-1])))
    return enc, dec, last


def _check(name: str, value: int) -> None:
    if not 0 <= value <= _MASK64:
        raise ValueError(f"{name} must be a 64-bit unsigned integer")


class Sta:
    """STA (EA07) under one 64-bit decoder key; the schedule is computed once."""

    __slots__ = ("_dec", "_dec_last", "_enc")

    def __init__(self, key: int) -> None:
        _check("key", key)
        enc, dec, last = _schedule(key)
        self._enc = enc
        self._dec = dec
        self._dec_last = last

    def __repr__(self) -> str:
        return "Sta(<key>)"

    def encrypt(self, block: int) -> int:
        x = block
        for t0, t1, t2, t3, t4, t5, t6, t7 in self._enc:
            x = (
                t0[x & 255]
                | t1[x >> 8 & 255]
                | t2[x >> 16 & 255]
                | t3[x >> 24 & 255]
                | t4[x >> 32 & 255]
                | t5[x >> 40 & 255]
                | t6[x >> 48 & 255]
                | t7[x >> 56]
            )
        return x

    def decrypt(self, block: int) -> int:
        p0, p1, p2, p3, p4, p5, p6, p7 = _PINV_BYTES
        x = (
            p0[block & 255]
            | p1[block >> 8 & 255]
            | p2[block >> 16 & 255]
            | p3[block >> 24 & 255]
            | p4[block >> 32 & 255]
            | p5[block >> 40 & 255]
            | p6[block >> 48 & 255]
            | p7[block >> 56]
        )
        for t0, t1, t2, t3, t4, t5, t6, t7 in self._dec:
            x = (
                t0[x & 255]
                | t1[x >> 8 & 255]
                | t2[x >> 16 & 255]
                | t3[x >> 24 & 255]
                | t4[x >> 32 & 255]
                | t5[x >> 40 & 255]
                | t6[x >> 48 & 255]
                | t7[x >> 56]
            )
        t0, t1, t2, t3, t4, t5, t6, t7 = self._dec_last
        return (
            t0[x & 255]
            | t1[x >> 8 & 255]
            | t2[x >> 16 & 255]
            | t3[x >> 24 & 255]
            | t4[x >> 32 & 255]
            | t5[x >> 40 & 255]
            | t6[x >> 48 & 255]
            | t7[x >> 56]
        )


def encrypt_reference(key: int, block: int) -> int:
    """STA encryption nibble by nibble and bit by bit, as the algorithm is specified.

    Slow; kept as an independent check of the table-driven :class:`Sta`.
    """
    _check("key", key)
    _check("block", block)
    k = _rotr(~key & _MASK64, 12)
    x = block
    for _ in range(_ROUNDS):
        sub = 0
        for n in range(16):
            nib = (x >> (4 * n)) & 15
            box = S2 if (k >> (4 * n + 3)) & 1 else S1
            sub |= box[nib] << (4 * n)
        x = _permute(sub, P)
        k = _rotl(k, 1)
    return x


def decrypt_reference(key: int, block: int) -> int:
    """STA decryption as specified (slow reference for :meth:`Sta.decrypt`)."""
    _check("key", key)
    _check("block", block)
    k = _rotl(_rotr(~key & _MASK64, 12), 15)
    x = block
    for _ in range(_ROUNDS):
        x = _permute(x, P_INV)
        sub = 0
        for n in range(16):
            nib = (x >> (4 * n)) & 15
            box = S2_INV if (k >> (4 * n + 3)) & 1 else S1_INV
            sub |= box[nib] << (4 * n)
        x = sub
        k = _rotr(k, 1)
    return x
