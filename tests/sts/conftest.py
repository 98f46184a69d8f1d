"""Shared fixtures for the token engine tests: keys derived from the public compliance keys."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sts.dkga import Dkga, KeyAttributes, derive_decoder_key
from sts.identity import Pan
from sts.keys import DecoderKey, EncryptionAlgorithm
from sts.tid import BaseDate

# The public STS 531 compliance vending keys and meter identity.
VK_DKGA02 = bytes.fromhex("abababababababab")
VK_DKGA04 = bytes.fromhex("abababababababab949494949494949401234567")
COMPLIANCE_PAN = "600727000000000009"


def _compliance_key(
    ea: EncryptionAlgorithm = EncryptionAlgorithm.STA,
    *,
    krn: int = 1,
    ti: int = 1,
    kt: int = 2,
    sgc: int | None = None,
    pan: str = COMPLIANCE_PAN,
    base_date: BaseDate = BaseDate.Y1993,
) -> DecoderKey:
    if ea is EncryptionAlgorithm.MISTY1:
        attrs = KeyAttributes(
            Pan.parse(pan), 123457 if sgc is None else sgc, ti, krn, kt, base_date, ea
        )
        return derive_decoder_key(VK_DKGA04, Dkga.DKGA04, attrs)
    attrs = KeyAttributes(
        Pan.parse(pan), 123456 if sgc is None else sgc, ti, krn, kt, base_date, ea
    )
    return derive_decoder_key(VK_DKGA02, Dkga.DKGA02, attrs)


@pytest.fixture(scope="session")
def make_key() -> Callable[..., DecoderKey]:
    """Derive a decoder key from the compliance vending keys.

    EA07 keys come from DKGA02 (SGC 123456), EA11 keys from DKGA04 (SGC 123457), as in the
    published vectors; keyword arguments change KRN, TI, KT, SGC, PAN or base date.
    """
    return _compliance_key


@pytest.fixture(scope="session")
def key07() -> DecoderKey:
    """The compliance meter's EA07 key (DKGA02, KRN 1, TI 01, KT 2): E653341F9D5BF36F."""
    return _compliance_key()


@pytest.fixture(scope="session")
def key11() -> DecoderKey:
    """The compliance meter's EA11 key (DKGA04, KRN 1, TI 01, KT 2, SGC 123457)."""
    return _compliance_key(EncryptionAlgorithm.MISTY1)
