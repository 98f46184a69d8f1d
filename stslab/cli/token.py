"""``stslab token``: mint, decode and key-change tokens from the command line."""

from __future__ import annotations

import json
import secrets
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated

import typer

from sts import amount as amounts
from sts.codec import group
from sts.dkga import Dkga, KeyAttributes, derive_decoder_key, vending_key_from_hex
from sts.errors import StsError
from sts.identity import CheckDigitError, Pan, check_key_type, check_krn, check_sgc, check_ti
from sts.keys import DecoderKey, EncryptionAlgorithm, parse_hex_key
from sts.tid import BaseDate, tid_from_datetime
from sts.tokens import (
    KEY_CHANGE_TYPES,
    ClearCredit,
    ClearTamperCondition,
    InitiateMeterTest,
    SetMaximumPhasePowerUnbalanceLimit,
    SetMaximumPowerLimit,
    SetTariffRate,
    SetWaterMeterFactor,
    Token,
    TransferCredit,
    decode,
    describe,
    encode,
)
from sts.vending import NewKey, encode_key_change
from stslab.cli.errors import ArgumentError

app = typer.Typer(
    help="Generate, decode and key-change STS tokens.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

#: Internal parameter names -> the option a user typed.
_OPTION_NAMES = {"key": "--dk", "token": "DIGITS", "value": "--value", "at": "--at"}


def _option(param: str) -> str:
    return _OPTION_NAMES.get(param, "--" + param.replace("_", "-"))


@contextmanager
def _arguments():
    """Turn engine errors into one-line usage errors that name the option."""
    try:
        yield
    except StsError as exc:
        raise ArgumentError(_option(exc.param), exc.reason) from None


def _usage(param: str, message: str) -> ArgumentError:
    return ArgumentError(param, message)


# --- shared key options --------------------------------------------------------------------

Dk = Annotated[str | None, typer.Option("--dk", help="Decoder key as hex (instead of deriving).")]
Vk = Annotated[
    str | None,
    typer.Option("--vk", help="Vending key as hex (64-bit for DKGA02, 160-bit for DKGA04)."),
]
DkgaOpt = Annotated[str | None, typer.Option("--dkga", help="Key derivation: 02 or 04.")]
PanOpt = Annotated[str | None, typer.Option("--pan", help="18-digit PAN (IIN + DRN + check).")]
Sgc = Annotated[int | None, typer.Option("--sgc", help="Supply group code (6 digits).")]
Ti = Annotated[int | None, typer.Option("--ti", help="Tariff index (0-99).")]
Krn = Annotated[int | None, typer.Option("--krn", help="Key revision number (1 digit).")]
Kt = Annotated[int | None, typer.Option("--kt", help="Key type: 0 DITK, 1 DDTK, 2 DUTK, 3 DCTK.")]
BaseDateOpt = Annotated[
    str, typer.Option("--base-date", help="Base date of the key: 1993, 2014 or 2035.")
]
Ea = Annotated[str, typer.Option("--ea", help="Encryption algorithm: 07 (STA) or 11 (MISTY1).")]
Legacy = Annotated[bool, typer.Option("--legacy", help="Allow the deprecated EA09 (single DES).")]
AllowBadCheckDigit = Annotated[
    bool,
    typer.Option(
        "--allow-bad-check-digit",
        help="Take a --pan whose check digit is wrong (an engineering sample) as given: the key "
        "is derived from its 18 digits.",
    ),
]


def _key(
    dk: str | None,
    vk: str | None,
    dkga: str | None,
    pan: str | None,
    sgc: int | None,
    ti: int | None,
    krn: int | None,
    kt: int | None,
    base_date: str,
    ea: str,
    legacy: bool,
    required: bool = True,
    allow_bad_check_digit: bool = False,
) -> tuple[DecoderKey | None, KeyAttributes | None, bytes | None, Dkga | None]:
    """The decoder key from ``--dk`` or from the vending key and the meter's identity."""
    algorithm = EncryptionAlgorithm.parse(ea)
    base = BaseDate.parse(base_date)
    if dk is not None:
        if vk is not None:
            raise _usage("--dk", "give either --dk or --vk, not both")
        return DecoderKey.from_hex(dk, algorithm, legacy), None, None, None
    if vk is None:
        if required:
            raise _usage("--dk", "a decoder key is needed: give --dk, or --vk with --dkga etc.")
        return None, None, None, None
    missing = [
        name
        for name, v in (
            ("--dkga", dkga),
            ("--pan", pan),
            ("--sgc", sgc),
            ("--ti", ti),
            ("--krn", krn),
            ("--kt", kt),
        )
        if v is None
    ]
    if missing:
        raise _usage(missing[0], "is required with --vk")
    method = Dkga.parse(dkga)  # type: ignore[arg-type]
    vending_key = vending_key_from_hex(vk, method)
    try:
        meter_pan = Pan.parse(pan, check_digits=not allow_bad_check_digit)  # type: ignore[arg-type]
    except CheckDigitError as exc:
        raise _usage(
            "--pan", f"{exc.reason}; for a meter whose PAN carries it, give --allow-bad-check-digit"
        ) from None
    attrs = KeyAttributes(
        pan=meter_pan,
        sgc=sgc,  # type: ignore[arg-type]
        ti=ti,  # type: ignore[arg-type]
        krn=krn,  # type: ignore[arg-type]
        kt=kt,  # type: ignore[arg-type]
        base_date=base,
        ea=algorithm,
    )
    return derive_decoder_key(vending_key, method, attrs, legacy), attrs, vending_key, method


def _parse_at(text: str) -> datetime:
    for fmt in ("%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"):
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    raise _usage("--at", f"{text!r} is not a time like 2024-03-01T13:55")


def _int_text(text: str, param: str, base: int = 10) -> int:
    try:
        return int(text, base)
    except ValueError:
        kind = "hexadecimal" if base == 16 else "whole"
        raise _usage(param, f"{text!r} is not a {kind} number") from None


def _relaxed(attrs: KeyAttributes | None, allowed: bool) -> dict[str, str]:
    """The JSON field saying a PAN was taken with its check digits as given."""
    return {"pan_check_digit": attrs.pan.relaxed_note()} if allowed and attrs else {}


def _emit(
    digits: str, token: Token, key: DecoderKey | None, as_json: bool, extra: dict[str, str]
) -> None:
    if not as_json:
        typer.echo(digits)
        return
    body: dict[str, object] = {"token": digits, "grouped": group(digits), **describe(token)}
    if key is not None:
        body["key"] = {"ea": key.ea.code, "fingerprint": key.fingerprint}
    typer.echo(json.dumps({**body, **extra}))


@app.command()
def generate(
    token_class: Annotated[int, typer.Option("--class", help="Token class: 0, 1 or 2.")],
    subclass: Annotated[int, typer.Option("--subclass", help="Token subclass.")],
    amount: Annotated[
        str | None,
        typer.Option(help="Class 0: amount in the service's unit (kWh, m3, min, currency)."),
    ] = None,
    value: Annotated[
        int | None,
        typer.Option(help="Class 2: watts (MPL/MPPUL), register (ClearCredit), 0 (tamper)."),
    ] = None,
    control: Annotated[str | None, typer.Option(help="Class 1: control bits as hex.")] = None,
    mfr_code: Annotated[int | None, typer.Option("--mfr-code", help="Class 1: MfrCode.")] = None,
    tid: Annotated[int | None, typer.Option(help="Token identifier (minutes).")] = None,
    at: Annotated[
        str | None, typer.Option(help="Wall-clock time YYYY-MM-DDTHH:MM; TID from base date.")
    ] = None,
    rnd: Annotated[
        int | None, typer.Option(help="Random nibble 0-15 (random if not given).")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the token and its fields.")
    ] = False,
    dk: Dk = None,
    vk: Vk = None,
    dkga: DkgaOpt = None,
    pan: PanOpt = None,
    sgc: Sgc = None,
    ti: Ti = None,
    krn: Krn = None,
    kt: Kt = None,
    base_date: BaseDateOpt = "1993",
    ea: Ea = "07",
    legacy: Legacy = False,
    allow_bad_check_digit: AllowBadCheckDigit = False,
) -> None:
    """Mint one token and print its 20 digits."""
    with _arguments():
        token = _build_token(token_class, subclass, amount, value, control, mfr_code, tid, at,
                             rnd, base_date)  # fmt: skip
        key = attrs = None
        if token_class != 1:
            key, attrs, *_ = _key(dk, vk, dkga, pan, sgc, ti, krn, kt, base_date, ea, legacy,
                                  allow_bad_check_digit=allow_bad_check_digit)  # fmt: skip
        digits = encode(token, key)
    _emit(digits, token, key, as_json, _relaxed(attrs, allow_bad_check_digit))


def _build_token(
    token_class: int,
    subclass: int,
    amount: str | None,
    value: int | None,
    control: str | None,
    mfr_code: int | None,
    tid: int | None,
    at: str | None,
    rnd: int | None,
    base_date: str,
) -> Token:
    if token_class == 1:
        if control is None:
            raise _usage("--control", "class 1 tokens need --control (hex) and --mfr-code")
        if subclass not in (0, 1):
            raise _usage("--subclass", "class 1 subclasses are 0 and 1")
        code = 0 if mfr_code is None else mfr_code
        limit = 99 if subclass == 0 else 9999
        if not 0 <= code <= limit:
            raise _usage("--mfr-code", f"{code} is not a {2 if subclass == 0 else 4}-digit code")
        return InitiateMeterTest(subclass, _int_text(control, "--control", 16), code)
    if token_class not in (0, 2):
        raise _usage("--class", f"{token_class} is not a token class (0, 1 or 2)")
    if tid is not None and at is not None:
        raise _usage("--tid", "give either --tid or --at, not both")
    if tid is None:
        if at is None:
            raise _usage("--tid", "class 0 and 2 tokens need --tid or --at")
        tid = tid_from_datetime(_parse_at(at), BaseDate.parse(base_date))
    if rnd is None:
        rnd = secrets.randbelow(16)
    if token_class == 0:
        if amount is None:
            raise _usage("--amount", "class 0 tokens need --amount")
        if not 0 <= subclass <= 7:
            raise _usage("--subclass", f"class 0 subclass {subclass} is reserved (0-7 exist)")
        units = amounts.to_base_units(amount, subclass)
        if subclass >= 4:
            return TransferCredit(subclass, tid, amounts.round_up_currency(units))
        return TransferCredit(subclass, tid, amounts.round_up(units, amounts.MAX_UNITS_EXPONENT),
                              rnd)  # fmt: skip
    if subclass in (3, 4, 8, 9):
        raise _usage("--subclass", "key change tokens come from 'stslab token key-change'")
    if value is None:
        raise _usage("--value", "class 2 tokens need --value")
    if subclass in (0, 6):
        watts = amounts.round_up(value, amounts.MAX_UNITS_EXPONENT, "value")
        if subclass == 0:
            return SetMaximumPowerLimit(tid, watts, rnd)
        return SetMaximumPhasePowerUnbalanceLimit(tid, watts, rnd)
    makers = {1: ClearCredit, 2: SetTariffRate, 5: ClearTamperCondition, 7: SetWaterMeterFactor}
    if subclass not in makers:
        raise _usage("--subclass", f"class 2 subclass {subclass} is reserved")
    return makers[subclass](tid, value, rnd)


@app.command("key-change")
def key_change(
    new_krn: Annotated[int, typer.Option("--new-krn", help="KRN of the new key.")],
    new_ti: Annotated[int, typer.Option("--new-ti", help="TI of the new key.")],
    new_kt: Annotated[int, typer.Option("--new-kt", help="Key type of the new key.")],
    new_base_date: Annotated[
        str | None, typer.Option("--new-base-date", help="Base date of the new key.")
    ] = None,
    new_sgc: Annotated[int | None, typer.Option("--new-sgc", help="SGC of the new key.")] = None,
    new_dk: Annotated[
        str | None, typer.Option("--new-dk", help="New decoder key as hex (instead of deriving).")
    ] = None,
    ken: Annotated[int, typer.Option(help="Key expiry number of the new key (255: never).")] = 255,
    ro: Annotated[
        bool, typer.Option("--ro", help="Rollover: the meter clears its TID store.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the tokens with fields.")] = False,
    dk: Dk = None,
    vk: Vk = None,
    dkga: DkgaOpt = None,
    pan: PanOpt = None,
    sgc: Sgc = None,
    ti: Ti = None,
    krn: Krn = None,
    kt: Kt = None,
    base_date: BaseDateOpt = "1993",
    ea: Ea = "07",
    legacy: Legacy = False,
    allow_bad_check_digit: AllowBadCheckDigit = False,
) -> None:
    """Print the key change tokens (2 for 64-bit keys, 4 for 128-bit), one per line."""
    with _arguments():
        current, attrs, vending_key, method = _key(
            dk, vk, dkga, pan, sgc, ti, krn, kt, base_date, ea, legacy,
            allow_bad_check_digit=allow_bad_check_digit,
        )  # fmt: skip
        assert current is not None
        check_krn(new_krn, "new_krn")
        check_ti(new_ti, "new_ti")
        check_key_type(new_kt, "new_kt")
        if new_sgc is not None:
            check_sgc(new_sgc, "new_sgc")
        if new_dk is not None:
            raw = parse_hex_key(new_dk, "new_dk", current.ea.key_bytes)
            new_key = DecoderKey(raw, current.ea, legacy)
        else:
            if attrs is None or vending_key is None or method is None:
                raise _usage("--new-dk", "with --dk give the new key as --new-dk")
            new_attrs = KeyAttributes(
                pan=attrs.pan,
                sgc=attrs.sgc if new_sgc is None else new_sgc,
                ti=new_ti,
                krn=new_krn,
                kt=new_kt,
                base_date=BaseDate.parse(new_base_date or base_date, "new_base_date"),
                ea=attrs.ea,
            )
            new_key = derive_decoder_key(vending_key, method, new_attrs, legacy)
        carried_sgc = new_sgc if new_sgc is not None else sgc
        new = NewKey(
            key=new_key,
            krn=new_krn,
            kt=new_kt,
            ti=new_ti,
            ken=ken,
            ro=ro,
            sgc=carried_sgc if new_key.ea.key_bytes == 16 else None,
        )
        digits = encode_key_change(new, current)
    if as_json:
        from sts.vending import key_change_tokens

        typer.echo(
            json.dumps(
                {
                    "tokens": list(digits),
                    "fields": [describe(t) for t in key_change_tokens(new)],
                    "new_key": {"ea": new_key.ea.code, "fingerprint": new_key.fingerprint},
                    **_relaxed(attrs, allow_bad_check_digit),
                }
            )
        )
        return
    for line in digits:
        typer.echo(line)


@app.command("decode")
def decode_command(
    digits: Annotated[str, typer.Argument(help="The 20-digit token (spaces allowed).")],
    dk: Dk = None,
    vk: Vk = None,
    dkga: DkgaOpt = None,
    pan: PanOpt = None,
    sgc: Sgc = None,
    ti: Ti = None,
    krn: Krn = None,
    kt: Kt = None,
    base_date: BaseDateOpt = "1993",
    ea: Ea = "07",
    legacy: Legacy = False,
    allow_bad_check_digit: AllowBadCheckDigit = False,
) -> None:
    """Decode a token with a key and print its fields as JSON.

    Exit status: 0 when the CRC holds, 1 when it does not (the fields are still printed,
    but mean nothing), 2 for a malformed token or bad options.
    """
    with _arguments():
        from sts.codec import parse_digits, split_class

        token_class, _ = split_class(parse_digits(digits))
        key, attrs, *_ = _key(dk, vk, dkga, pan, sgc, ti, krn, kt, base_date, ea, legacy,
                              required=token_class in (0, 2),
                              allow_bad_check_digit=allow_bad_check_digit)  # fmt: skip
        decoded = decode(digits, key)
    body: dict[str, object] = {
        "token": digits.replace(" ", "").replace("-", ""),
        **describe(decoded.token),
        "crc_ok": decoded.crc_ok,
    }
    if not isinstance(decoded.token, KEY_CHANGE_TYPES):
        # A key change token's clear block carries key bits: never printed.
        body["data_block"] = f"{decoded.data_block:016X}"
    if key is not None:
        body["key"] = {"ea": key.ea.code, "fingerprint": key.fingerprint}
    body.update(_relaxed(attrs, allow_bad_check_digit))
    typer.echo(json.dumps(body))
    if not decoded.crc_ok:
        raise typer.Exit(1)
