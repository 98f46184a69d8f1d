"""Token engine throughput on one core: tokens generated and decoded per second, key
derivations per second. Prints ``name=value`` lines; asserts nothing."""

from __future__ import annotations

import argparse
import time

from sts.dkga import Dkga, KeyAttributes, derive_decoder_key
from sts.identity import Pan
from sts.keys import DecoderKey, EncryptionAlgorithm
from sts.tokens import TransferCredit, decode, encode

VK02 = bytes.fromhex("abababababababab")
VK04 = bytes.fromhex("abababababababab949494949494949401234567")
PAN = Pan.parse("600727000000000009")


def rate(fn, seconds: float) -> float:
    """Calls per second of ``fn(i)`` over about ``seconds`` of wall time."""
    n, batch = 0, 1000
    start = time.perf_counter()
    while True:
        for i in range(n, n + batch):
            fn(i)
        n += batch
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=2.0, help="time per figure")
    args = parser.parse_args()
    keys = {
        "ea07": DecoderKey(bytes.fromhex("E653341F9D5BF36F"), EncryptionAlgorithm.STA),
        "ea11": DecoderKey(
            bytes.fromhex("F94B6ED353C3BFDB113E2D3A7EA3C41D"), EncryptionAlgorithm.MISTY1
        ),
    }
    for name, key in keys.items():
        key.cipher  # noqa: B018 - build the key schedule outside the timed loop
        encode(TransferCredit(0, 1, 1, 0), key)
        gen = rate(lambda i, k=key: encode(TransferCredit(0, i & 0xFFFFFF, i & 0x3FFF, i & 15), k),
                   args.seconds)  # fmt: skip
        tokens = [encode(TransferCredit(0, i, i & 0x3FFF, i & 15), key) for i in range(4096)]
        dec = rate(lambda i, k=key, t=tokens: decode(t[i & 4095], k), args.seconds)
        print(f"{name}_class0_generate_per_s={gen:.0f}")
        print(f"{name}_class0_decode_per_s={dec:.0f}")
    attrs02 = KeyAttributes(PAN, 123456, 1, 1, 2)
    k02 = rate(lambda i: derive_decoder_key(VK02, Dkga.DKGA02, attrs02), args.seconds)
    print(f"dkga02_derivations_per_s={k02:.0f}")
    for ea in (EncryptionAlgorithm.STA, EncryptionAlgorithm.MISTY1):
        attrs04 = KeyAttributes(PAN, 123457, 1, 1, 2, ea=ea)
        k04 = rate(lambda i, a=attrs04: derive_decoder_key(VK04, Dkga.DKGA04, a), args.seconds)
        print(f"dkga04_ea{ea.code}_derivations_per_s={k04:.0f}")


if __name__ == "__main__":
    main()
