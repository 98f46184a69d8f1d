"""A token with one digit mistyped must not pass the CRC under the same key, except for the
rare CRC collision (about 2**-16 of changes). ``benchmarks/typo_detection.py`` measures the
same over a million changes."""

from __future__ import annotations

import random
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

CHANGES = 20_000
LIMIT = 1e-3  # 65x the 2**-16 a random 16-bit CRC lets through


def _single_digit_changes(digits: str) -> Iterator[str]:
    for position, original in enumerate(digits):
        for digit in "0123456789":
            if digit != original:
                yield digits[:position] + digit + digits[position + 1 :]


def _random_token(rng: random.Random) -> Token:
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


def _random_key(rng: random.Random) -> DecoderKey:
    ea = rng.choice([EncryptionAlgorithm.STA, EncryptionAlgorithm.MISTY1])
    return DecoderKey(rng.randbytes(ea.key_bytes), ea)


def _measure(changes: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    counts = {"changes": 0, "format": 0, "crc_valid": 0, "class1_kept": 0, "class1_crc_valid": 0}
    while counts["changes"] < changes:
        key = _random_key(rng)
        token = _random_token(rng)
        for changed in _single_digit_changes(encode(token, key)):
            counts["changes"] += 1
            value = int(changed)
            if value > MAX_TOKEN:
                counts["format"] += 1  # a meter rejects these as Format errors
                continue
            ok = decode_value(value, key).crc_ok
            counts["crc_valid"] += ok
            if token.token_class == 1 and split_class(value)[0] == 1:
                counts["class1_kept"] += 1
                counts["class1_crc_valid"] += ok
    return counts


def test_single_digit_changes_are_caught() -> None:
    counts = _measure(CHANGES, seed=62055)
    checked = counts["changes"] - counts["format"]
    fraction = counts["crc_valid"] / checked
    class1_fraction = counts["class1_crc_valid"] / max(1, counts["class1_kept"])
    print(
        f"changes={counts['changes']} format_errors={counts['format']} "
        f"crc_valid={counts['crc_valid']} fraction={fraction:.3g} "
        f"class1_unencrypted_changes={counts['class1_kept']} "
        f"class1_fraction={class1_fraction:.3g}"
    )
    assert counts["changes"] >= CHANGES
    # Some changes push the value past 2**66 - 1 (a leading 7 made 8 or 9 ...).
    assert 0 < counts["format"] < counts["changes"] // 10
    assert fraction < LIMIT
    # Unencrypted class 1 tokens rely on the CRC alone.
    assert counts["class1_kept"] > 500
    assert class1_fraction < LIMIT


def test_every_change_to_the_iec_example_is_caught() -> None:
    key = DecoderKey.from_hex("0ABC12DEF3456789")
    digits = "29054347139309851356"
    assert decode_value(int(digits), key).crc_ok
    caught = [
        int(changed) > MAX_TOKEN or not decode_value(int(changed), key).crc_ok
        for changed in _single_digit_changes(digits)
    ]
    assert len(caught) == 180
    assert all(caught)
