"""Meter identification: DRN and PAN with Luhn check digits, PANBlock and CONTROLBlock.

A PAN is 18 digits: IIN + DRN + check digit. Two forms exist:

* IIN ``600727`` with an 11-digit DRN: MfrCode (2) + DSN (8) + check (1);
* IIN ``0000`` with a 13-digit DRN: MfrCode (4) + DSN (8) + check (1).
"""

from __future__ import annotations

from dataclasses import dataclass

from sts.errors import StsError

IIN_SHORT_MFR = "600727"  # 2-digit manufacturer codes, 11-digit DRN
IIN_LONG_MFR = "0000"  # 4-digit manufacturer codes, 13-digit DRN


def luhn_check_digit(digits: str) -> int:
    """The Luhn (mod 10) check digit to append to ``digits``."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return (10 - total % 10) % 10


def luhn_valid(digits: str) -> bool:
    return len(digits) >= 2 and luhn_check_digit(digits[:-1]) == int(digits[-1])


class CheckDigitError(StsError):
    """A PAN or DRN whose Luhn check digit is not the one its other digits give."""


def _digits(value: str, param: str) -> str:
    text = str(value).replace(" ", "")
    if not text.isascii() or not text.isdigit():
        raise StsError(param, f"{value!r} must contain only digits")
    return text


@dataclass(frozen=True)
class Drn:
    """Decoder reference number: manufacturer code, serial number and check digit."""

    digits: str

    @classmethod
    def parse(cls, value: str, param: str = "drn", *, check_digit: bool = True) -> Drn:
        """A DRN; ``check_digit=False`` takes one whose check digit is wrong as given."""
        text = _digits(value, param)
        if len(text) not in (11, 13):
            raise StsError(param, f"must be 11 or 13 digits, got {len(text)}")
        drn = cls(text)
        if check_digit and drn.check_digit_problems():
            raise CheckDigitError(
                param, f"{text} has a bad check digit ({'; '.join(drn.check_digit_problems())})"
            )
        return drn

    def check_digit_problems(self) -> list[str]:
        """``["DRN check digit 1, expected 3"]``, or nothing when the check digit is right."""
        expected = luhn_check_digit(self.digits[:-1])
        if expected == int(self.digits[-1]):
            return []
        return [f"DRN check digit {self.digits[-1]}, expected {expected}"]

    @classmethod
    def build(cls, mfr_code: int, serial: int, mfr_digits: int = 2) -> Drn:
        """A DRN from a manufacturer code (2 or 4 digits) and an 8-digit serial number."""
        if mfr_digits not in (2, 4):
            raise StsError("mfr_digits", "must be 2 or 4")
        if not 0 <= mfr_code < 10**mfr_digits:
            raise StsError("mfr_code", f"{mfr_code} does not fit {mfr_digits} digits")
        if not 0 <= serial < 10**8:
            raise StsError("serial", f"{serial} does not fit 8 digits")
        body = f"{mfr_code:0{mfr_digits}d}{serial:08d}"
        return cls(body + str(luhn_check_digit(body)))

    @property
    def mfr_digits(self) -> int:
        return 2 if len(self.digits) == 11 else 4

    @property
    def mfr_code(self) -> int:
        return int(self.digits[: self.mfr_digits])

    @property
    def serial(self) -> int:
        return int(self.digits[self.mfr_digits : -1])


@dataclass(frozen=True)
class Pan:
    """Primary account number of a meter: 18 digits, IIN + DRN + Luhn check digit."""

    digits: str

    @classmethod
    def parse(cls, value: str, param: str = "pan", *, check_digits: bool = True) -> Pan:
        """A PAN. ``check_digits=False`` takes one whose check digits (the PAN's own, the
        DRN's inside it) are wrong exactly as given: key derivation uses those digits, the
        way any token engine would, and nothing is recomputed."""
        text = _digits(value, param)
        if len(text) != 18:
            raise StsError(param, f"must be 18 digits, got {len(text)}")
        if not text.startswith((IIN_SHORT_MFR, IIN_LONG_MFR)):
            raise StsError(param, f"IIN must be {IIN_SHORT_MFR} or {IIN_LONG_MFR}")
        pan = cls(text)
        problems = pan.check_digit_problems()
        if check_digits and problems:
            raise CheckDigitError(param, f"{text} has a bad check digit ({'; '.join(problems)})")
        return pan

    def check_digit_problems(self) -> list[str]:
        """What is wrong with the check digits, e.g. ``["PAN check digit 2, expected 4",
        "DRN check digit 1, expected 3"]``; empty for a sound PAN."""
        expected = luhn_check_digit(self.digits[:17])
        own = [] if expected == int(self.digits[17]) else [
            f"PAN check digit {self.digits[17]}, expected {expected}"
        ]  # fmt: skip
        return own + self.drn.check_digit_problems()

    def relaxed_note(self) -> str:
        """How a PAN taken with its check digits as given is described in records and output:
        ``relaxed (PAN check digit 2, expected 4)``."""
        return f"relaxed ({'; '.join(self.check_digit_problems()) or 'the check digits are right'})"

    @classmethod
    def from_drn(cls, drn: Drn) -> Pan:
        iin = IIN_SHORT_MFR if len(drn.digits) == 11 else IIN_LONG_MFR
        body = iin + drn.digits
        return cls(body + str(luhn_check_digit(body)))

    @property
    def iin(self) -> str:
        return IIN_SHORT_MFR if self.digits.startswith(IIN_SHORT_MFR) else IIN_LONG_MFR

    @property
    def drn(self) -> Drn:
        return Drn(self.digits[len(self.iin) : 17])

    def common(self) -> Pan:
        """The PAN with its DRN digits zeroed, as used for common keys (KT 3)."""
        iin = self.iin
        drn = "0" * (17 - len(iin))
        body = iin + drn
        return Pan(body + str(luhn_check_digit(body)))

    def __str__(self) -> str:
        return self.digits


def pan_block(pan: Pan, key_type: int) -> int:
    """PANBlock: PAN digits 2-17 as 16 hex nibbles; DRN digits zero for a common key."""
    source = pan.common() if key_type == 3 else pan
    return int(source.digits[1:17], 16)


def control_block(key_type: int, sgc: int, ti: int, krn: int) -> int:
    """CONTROLBlock: KT(1) SGC(6) TI(2) KRN(1) FFFFFF, decimal digits as hex nibbles."""
    check_key_type(key_type)
    check_sgc(sgc)
    check_ti(ti)
    check_krn(krn)
    return int(f"{key_type}{sgc:06d}{ti:02d}{krn}FFFFFF", 16)


def check_key_type(kt: int, param: str = "kt") -> int:
    if not isinstance(kt, int) or not 0 <= kt <= 3:
        raise StsError(param, f"{kt!r} is not a key type (0 DITK, 1 DDTK, 2 DUTK, 3 DCTK)")
    return kt


def check_sgc(sgc: int, param: str = "sgc") -> int:
    if not isinstance(sgc, int) or not 0 <= sgc <= 999_999:
        raise StsError(param, f"{sgc!r} is not a 6-digit supply group code")
    return sgc


def check_ti(ti: int, param: str = "ti") -> int:
    if not isinstance(ti, int) or not 0 <= ti <= 99:
        raise StsError(param, f"{ti!r} is not a 2-digit tariff index")
    return ti


def check_krn(krn: int, param: str = "krn") -> int:
    if not isinstance(krn, int) or not 0 <= krn <= 9:
        raise StsError(param, f"{krn!r} is not a 1-digit key revision number")
    return krn
