"""How often does a token with one mistyped digit still pass the CRC under the meter's key?

Mints random tokens of every common kind under random EA07 and EA11 keys, applies every
single-digit change to each (20 positions x 9 digits), and decodes the result under the same
key. Changes that push the value to 2**66 or more are Format errors and counted apart. A
16-bit CRC over a well-mixed block lets about 2**-16 (1.5e-5) of changes through.

Prints ``name=value`` lines. Usage: ``python benchmarks/typo_detection.py [--changes N]``.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Iterator

from sts.codec import MAX_TOKEN, split_class
from sts.keys import DecoderKey, EncryptionAlgorithm
from sts.tokens import (
    ClearCredit,
    InitiateMeterTest,
    Set1stSectionDecoderKey,
    Set2ndSectionDecoderKey,
    SetMaximumPowerLimit,
    Token,
    TransferCredit,
    decode_value,
    encode,
)


def single_digit_changes(digits: str) -> Iterator[str]:
    """Every string that differs from ``digits`` in exactly one position."""
    for position, original in enumerate(digits):
        for digit in "0123456789":
            if digit != original:
                yield digits[:position] + digit + digits[position + 1 :]


def random_token(rng: random.Random) -> Token:
    """A token of a kind picked at random: credit, currency, limits, KCTs, class 1."""
    tid = rng.randrange(1 << 24)
    kind = rng.randrange(7)
    if kind == 0:
        return TransferCredit(rng.randrange(4), tid, rng.randrange(20_000), rng.randrange(16))
    if kind == 1:
        return TransferCredit(rng.randrange(4, 8), tid, rng.randrange(-(10**9), 10**9))
    if kind == 2:
        return SetMaximumPowerLimit(tid, rng.randrange(100_000), rng.randrange(16))
    if kind == 3:
        return ClearCredit(tid, rng.choice([0, 1, 0xFFFF]), rng.randrange(16))
    if kind == 4:
        return Set1stSectionDecoderKey(15, rng.randrange(10), False, 2, rng.getrandbits(32))
    if kind == 5:
        return Set2ndSectionDecoderKey(15, rng.randrange(100), rng.getrandbits(32))
    sub = rng.randrange(2)
    return InitiateMeterTest(sub, rng.getrandbits(36 if sub == 0 else 28), 0)


def measure(changes: int, seed: int) -> dict[str, int]:
    """Counts of changes, Format errors and CRC-valid results (overall and class 1 only)."""
    rng = random.Random(seed)
    counts = {
        "changes": 0,
        "format_errors": 0,
        "crc_valid": 0,
        "class1_unencrypted_changes": 0,
        "class1_crc_valid": 0,
        "tokens": 0,
    }
    while counts["changes"] < changes:
        ea = rng.choice([EncryptionAlgorithm.STA, EncryptionAlgorithm.MISTY1])
        key = DecoderKey(rng.randbytes(ea.key_bytes), ea)
        token = random_token(rng)
        counts["tokens"] += 1
        for changed in single_digit_changes(encode(token, key)):
            counts["changes"] += 1
            value = int(changed)
            if value > MAX_TOKEN:
                counts["format_errors"] += 1
                continue
            ok = decode_value(value, key).crc_ok
            counts["crc_valid"] += ok
            if token.token_class == 1 and split_class(value)[0] == 1:
                counts["class1_unencrypted_changes"] += 1
                counts["class1_crc_valid"] += ok
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=1_000_000, help="changes to try")
    parser.add_argument("--seed", type=int, default=62055, help="random seed")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    counts = measure(args.changes, args.seed)
    elapsed = time.perf_counter() - started
    checked = counts["changes"] - counts["format_errors"]
    class1 = counts["class1_unencrypted_changes"]
    for name, value in counts.items():
        print(f"{name}={value}")
    print(f"fraction={counts['crc_valid'] / checked:.3e}")
    print(f"class1_fraction={counts['class1_crc_valid'] / class1 if class1 else 0.0:.3e}")
    print(f"expected_fraction={2**-16:.3e}")
    print(f"seconds={elapsed:.1f}")
    print(f"changes_per_second={counts['changes'] / elapsed:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
