"""MISTY1 block cipher (RFC 2994), the STS encryption algorithm EA11.

IEC 62055-41 edition 3 meters encrypt the 64-bit token data block with MISTY1 under their
128-bit decoder key. pycryptodome has no MISTY1, so this module implements the RFC: 8 rounds,
the FL/FO/FI functions, the S7/S9 S-boxes and the RFC's key schedule.

A block is a 64-bit integer (its 8 bytes read big-endian, as the STS data block is written);
a key is 16 bytes. :class:`Misty1` expands one key once and is the fast path for the token
engine; :func:`encrypt_block` and :func:`decrypt_block` are conveniences that keep a few
recently used keys expanded.
"""

import functools

__all__ = ["BLOCK_SIZE", "KEY_SIZE", "Misty1", "decrypt_block", "encrypt_block", "expand_key"]

KEY_SIZE = 16
"""Key length in bytes (128 bits)."""

BLOCK_SIZE = 8
"""Block length in bytes (64 bits)."""

_MASK64 = (1 << 64) - 1

# The S-boxes of RFC 2994: S7 maps 7 bits to 7 bits, S9 maps 9 bits to 9 bits.
# fmt: off
_S7: tuple[int, ...] = (
     27,  50,  51,  90,  59,  16,  23,  84,  91,  26, 114, 115, 107,  44, 102,  73,
     31,  36,  19, 108,  55,  46,  63,  74,  93,  15,  64,  86,  37,  81,  28,   4,
     11,  70,  32,  13, 123,  53,  68,  66,  43,  30,  65,  20,  75, 121,  21, 111,
     14,  85,   9,  54, 116,  12, 103,  83,  40,  10, 126,  56,   2,   7,  96,  41,
     25,  18, 101,  47,  48,  57,   8, 104,  95, 120,  42,  76, 100,  69, 117,  61,
     89,  72,   3,  87, 124,  79,  98,  60,  29,  33,  94,  39, 106, 112,  77,  58,
      1, 109, 110,  99,  24, 119,  35,   5,  38, 118,   0,  49,  45, 122, 127,  97,
     80,  34,  17,   6,  71,  22,  82,  78, 113,  62, 105,  67,  52,  92,  88, 125,
)

_S9: tuple[int, ...] = (
    451, 203, 339, 415, 483, 233, 251,  53, 385, 185, 279, 491, 307,   9,  45, 211,
    199, 330,  55, 126, 235, 356, 403, 472, 163, 286,  85,  44,  29, 418, 355, 280,
    331, 338, 466,  15,  43,  48, 314, 229, 273, 312, 398,  99, 227, 200, 500,  27,
      1, 157, 248, 416, 365, 499,  28, 326, 125, 209, 130, 490, 387, 301, 244, 414,
    467, 221, 482, 296, 480, 236,  89, 145,  17, 303,  38, 220, 176, 396, 271, 503,
    231, 364, 182, 249, 216, 337, 257, 332, 259, 184, 340, 299, 430,  23, 113,  12,
     71,  88, 127, 420, 308, 297, 132, 349, 413, 434, 419,  72, 124,  81, 458,  35,
    317, 423, 357,  59,  66, 218, 402, 206, 193, 107, 159, 497, 300, 388, 250, 406,
    481, 361, 381,  49, 384, 266, 148, 474, 390, 318, 284,  96, 373, 463, 103, 281,
    101, 104, 153, 336,   8,   7, 380, 183,  36,  25, 222, 295, 219, 228, 425,  82,
    265, 144, 412, 449,  40, 435, 309, 362, 374, 223, 485, 392, 197, 366, 478, 433,
    195, 479,  54, 238, 494, 240, 147,  73, 154, 438, 105, 129, 293,  11,  94, 180,
    329, 455, 372,  62, 315, 439, 142, 454, 174,  16, 149, 495,  78, 242, 509, 133,
    253, 246, 160, 367, 131, 138, 342, 155, 316, 263, 359, 152, 464, 489,   3, 510,
    189, 290, 137, 210, 399,  18,  51, 106, 322, 237, 368, 283, 226, 335, 344, 305,
    327,  93, 275, 461, 121, 353, 421, 377, 158, 436, 204,  34, 306,  26, 232,   4,
    391, 493, 407,  57, 447, 471,  39, 395, 198, 156, 208, 334, 108,  52, 498, 110,
    202,  37, 186, 401, 254,  19, 262,  47, 429, 370, 475, 192, 267, 470, 245, 492,
    269, 118, 276, 427, 117, 268, 484, 345,  84, 287,  75, 196, 446, 247,  41, 164,
     14, 496, 119,  77, 378, 134, 139, 179, 369, 191, 270, 260, 151, 347, 352, 360,
    215, 187, 102, 462, 252, 146, 453, 111,  22,  74, 161, 313, 175, 241, 400,  10,
    426, 323, 379,  86, 397, 358, 212, 507, 333, 404, 410, 135, 504, 291, 167, 440,
    321,  60, 505, 320,  42, 341, 282, 417, 408, 213, 294, 431,  97, 302, 343, 476,
    114, 394, 170, 150, 277, 239,  69, 123, 141, 325,  83,  95, 376, 178,  46,  32,
    469,  63, 457, 487, 428,  68,  56,  20, 177, 363, 171, 181,  90, 386, 456, 468,
     24, 375, 100, 207, 109, 256, 409, 304, 346,   5, 288, 443, 445, 224,  79, 214,
    319, 452, 298,  21,   6, 255, 411, 166,  67, 136,  80, 351, 488, 289, 115, 382,
    188, 194, 201, 371, 393, 501, 116, 460, 486, 424, 405,  31,  65,  13, 442,  50,
     61, 465, 128, 168,  87, 441, 354, 328, 217, 261,  98, 122,  33, 511, 274, 264,
    448, 169, 285, 432, 422, 205, 243,  92, 258,  91, 473, 324, 502, 173, 165,  58,
    459, 310, 383,  70, 225,  30, 477, 230, 311, 506, 389, 140, 143,  64, 437, 190,
    120,   0, 172, 272, 350, 292,   2, 444, 162, 234, 112, 508, 278, 348,  76, 450,
)
# fmt: on


def _fi(fi_in: int, fi_key: int) -> int:
    """Function FI of RFC 2994 on a 16-bit input under a 16-bit key, step by step."""
    d9 = fi_in >> 7
    d7 = fi_in & 0x7F
    d9 = _S9[d9] ^ d7
    d7 = _S7[d7] ^ (d9 & 0x7F)
    d7 ^= fi_key >> 9
    d9 ^= fi_key & 0x1FF
    d9 = _S9[d9] ^ d7
    return (d7 << 9) | d9


# FI(x, k) == _FI_OUT[_FI_IN[x] ^ k]. The key's 7-bit half (k >> 9) meets d7 and its 9-bit
# half (k & 0x1FF) meets d9, which is exactly one 16-bit XOR when d7 sits above d9; the
# keyless halves before and after that XOR are tabulated once for all keys.
_FI_IN: tuple[int, ...] = tuple(
    ((_S7[x & 0x7F] ^ (d9 & 0x7F)) << 9) | d9
    for x in range(1 << 16)
    for d9 in (_S9[x >> 7] ^ (x & 0x7F),)
)
_FI_OUT: tuple[int, ...] = tuple((u & 0xFE00) | (_S9[u & 0x1FF] ^ (u >> 9)) for u in range(1 << 16))


def _key_bytes(key: bytes) -> bytes:
    """Return ``key`` as bytes after checking its type and length (never echoing it)."""
    if not isinstance(key, bytes | bytearray | memoryview):
        raise TypeError(f"key must be bytes, not {type(key).__name__}")
    key = bytes(key)
    if len(key) != KEY_SIZE:
        raise ValueError(f"key must be {KEY_SIZE} bytes (128 bits), got {len(key)} bytes")
    return key


def _bad_block(block: object) -> Exception:
    """Build the error for a block that is not a 64-bit unsigned integer."""
    if type(block) is not int:
        return TypeError(f"block must be an int, not {type(block).__name__}")
    return ValueError("block must be a 64-bit unsigned integer (0 <= block < 2**64)")


def expand_key(key: bytes) -> tuple[int, ...]:
    """Expand a 16-byte key into RFC 2994's 32 sixteen-bit words EK[0..31].

    EK[0..7] are the key itself as big-endian words, EK[8..15] = FI(EK[i], EK[(i+1) % 8]),
    EK[16..23] their low 9 bits and EK[24..31] their high 7 bits, exactly the RFC's layout.
    Raises TypeError for a non-bytes key and ValueError for a key that is not 16 bytes.
    """
    key = _key_bytes(key)
    ek = [(key[2 * i] << 8) | key[2 * i + 1] for i in range(8)]
    ek += [_fi(ek[i], ek[(i + 1) % 8]) for i in range(8)]
    ek += [ek[8 + i] & 0x1FF for i in range(8)]
    ek += [ek[8 + i] >> 9 for i in range(8)]
    return tuple(ek)


def _fo_keys(ek: tuple[int, ...], k: int) -> tuple[int, ...]:
    """Subkeys of FO round k in use order: KO1, KI1, KO2, KI2, KO3, KI3, KO4."""
    return (
        ek[k],
        ek[(k + 5) % 8 + 8],
        ek[(k + 2) % 8],
        ek[(k + 1) % 8 + 8],
        ek[(k + 7) % 8],
        ek[(k + 3) % 8 + 8],
        ek[(k + 4) % 8],
    )


def _fl_keys(ek: tuple[int, ...], i: int) -> tuple[int, int, int, int]:
    """Subkeys of FL layer i: (AND, OR) for the left half (FL 2i), then for the right (FL 2i+1)."""
    return (ek[i], ek[(i + 6) % 8 + 8], ek[(i + 2) % 8 + 8], ek[(i + 4) % 8])


class Misty1:
    """MISTY1 under one 128-bit key, expanded once; encrypts and decrypts 64-bit blocks.

    The schedule is fixed at construction, so one instance may serve many threads. The key
    is never shown: ``repr`` names only the algorithm.
    """

    __slots__ = ("_dec", "_enc")

    def __init__(self, key: bytes) -> None:
        ek = expand_key(key)
        # One tuple per pair of rounds: FL layer i, then FO rounds 2i and 2i+1 (encryption);
        # FO rounds 2i+1 and 2i, then FL layer i inverted (decryption). Unpacking a flat
        # tuple into locals is the cheapest way to feed subkeys to the round code.
        self._enc = (
            tuple(
                _fl_keys(ek, i) + _fo_keys(ek, 2 * i) + _fo_keys(ek, 2 * i + 1) for i in range(4)
            ),
            _fl_keys(ek, 4),
        )
        self._dec = (
            _fl_keys(ek, 4),
            tuple(
                _fo_keys(ek, 2 * i + 1) + _fo_keys(ek, 2 * i) + _fl_keys(ek, i)
                for i in reversed(range(4))
            ),
        )

    def __repr__(self) -> str:
        return "Misty1(key=<128-bit key>)"

    def encrypt(self, block: int) -> int:
        """Encrypt one 64-bit block; raises TypeError/ValueError if ``block`` is not one."""
        if type(block) is not int or not 0 <= block <= _MASK64:
            raise _bad_block(block)
        fi_in = _FI_IN
        fi_out = _FI_OUT
        rounds, (la, lo, ra, ro) = self._enc
        # Left half D0 = (a0, a1), right half D1 = (b0, b1), 16-bit words high first.
        a0 = block >> 48
        a1 = (block >> 32) & 0xFFFF
        b0 = (block >> 16) & 0xFFFF
        b1 = block & 0xFFFF
        for (
            fla, flo, fra, fro,
            p1, q1, p2, q2, p3, q3, p4,
            r1, s1, r2, s2, r3, s3, r4,
        ) in rounds:  # fmt: skip
            a1 ^= a0 & fla
            a0 ^= a1 | flo
            b1 ^= b0 & fra
            b0 ^= b1 | fro
            # D1 ^= FO(D0)
            t0 = fi_out[fi_in[a0 ^ p1] ^ q1] ^ a1
            t1 = fi_out[fi_in[a1 ^ p2] ^ q2] ^ t0
            t0 = fi_out[fi_in[t0 ^ p3] ^ q3] ^ t1
            b0 ^= t1 ^ p4
            b1 ^= t0
            # D0 ^= FO(D1)
            t0 = fi_out[fi_in[b0 ^ r1] ^ s1] ^ b1
            t1 = fi_out[fi_in[b1 ^ r2] ^ s2] ^ t0
            t0 = fi_out[fi_in[t0 ^ r3] ^ s3] ^ t1
            a0 ^= t1 ^ r4
            a1 ^= t0
        a1 ^= a0 & la
        a0 ^= a1 | lo
        b1 ^= b0 & ra
        b0 ^= b1 | ro
        return (b0 << 48) | (b1 << 32) | (a0 << 16) | a1

    def decrypt(self, block: int) -> int:
        """Decrypt one 64-bit block; raises TypeError/ValueError if ``block`` is not one."""
        if type(block) is not int or not 0 <= block <= _MASK64:
            raise _bad_block(block)
        fi_in = _FI_IN
        fi_out = _FI_OUT
        (la, lo, ra, ro), rounds = self._dec
        # The ciphertext is D1 || D0; D0 = (a0, a1) and D1 = (b0, b1) keep their roles.
        b0 = block >> 48
        b1 = (block >> 32) & 0xFFFF
        a0 = (block >> 16) & 0xFFFF
        a1 = block & 0xFFFF
        a0 ^= a1 | lo
        a1 ^= a0 & la
        b0 ^= b1 | ro
        b1 ^= b0 & ra
        for (
            r1, s1, r2, s2, r3, s3, r4,
            p1, q1, p2, q2, p3, q3, p4,
            fla, flo, fra, fro,
        ) in rounds:  # fmt: skip
            # D0 ^= FO(D1)
            t0 = fi_out[fi_in[b0 ^ r1] ^ s1] ^ b1
            t1 = fi_out[fi_in[b1 ^ r2] ^ s2] ^ t0
            t0 = fi_out[fi_in[t0 ^ r3] ^ s3] ^ t1
            a0 ^= t1 ^ r4
            a1 ^= t0
            # D1 ^= FO(D0)
            t0 = fi_out[fi_in[a0 ^ p1] ^ q1] ^ a1
            t1 = fi_out[fi_in[a1 ^ p2] ^ q2] ^ t0
            t0 = fi_out[fi_in[t0 ^ p3] ^ q3] ^ t1
            b0 ^= t1 ^ p4
            b1 ^= t0
            a0 ^= a1 | flo
            a1 ^= a0 & fla
            b0 ^= b1 | fro
            b1 ^= b0 & fra
        return (a0 << 48) | (a1 << 32) | (b0 << 16) | b1


@functools.lru_cache(maxsize=16)
def _cipher(key: bytes) -> Misty1:
    """The expanded cipher for ``key``, kept for the next block under the same key."""
    return Misty1(key)


def encrypt_block(key: bytes, block: int) -> int:
    """Encrypt one 64-bit block under a 16-byte key (see :class:`Misty1` for many blocks)."""
    return _cipher(_key_bytes(key)).encrypt(block)


def decrypt_block(key: bytes, block: int) -> int:
    """Decrypt one 64-bit block under a 16-byte key (see :class:`Misty1` for many blocks)."""
    return _cipher(_key_bytes(key)).decrypt(block)
