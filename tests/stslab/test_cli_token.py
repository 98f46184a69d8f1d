"""``stslab token generate | key-change | decode``: the published vectors from the command line,
one-line errors that name the option (exit 2), and no key material in any output."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from stslab.cli import main

VECTORS_PATH = Path(__file__).parents[3] / "shared/sts/vectors.json"
_DATA: dict[str, Any] | None = (
    json.loads(VECTORS_PATH.read_text(encoding="utf-8")) if VECTORS_PATH.is_file() else None
)
_MISSING = pytest.mark.skip(
    reason=f"published vectors not found at {VECTORS_PATH} (shared/ must sit beside the clone)"
)

IEC_DK = "0ABC12DEF3456789"
DK_07 = "E653341F9D5BF36F"  # the compliance meter's key, DKGA02 KRN 1 TI 01
DK_11 = "F94B6ED353C3BFDB113E2D3A7EA3C41D"  # DKGA04 EA11 KRN 1 TI 01 SGC 123457
VK_02 = "abababababababab"
VK_04 = "abababababababab949494949494949401234567"
KEY_02 = [
    "--vk",
    VK_02,
    "--dkga",
    "02",
    "--pan",
    "600727000000000009",
    "--sgc",
    "123456",
    "--ti",
    "1",
    "--krn",
    "1",
    "--kt",
    "2",
]
KEY_04_EA11 = [
    "--vk",
    VK_04,
    "--dkga",
    "04",
    "--pan",
    "600727000000000009",
    "--sgc",
    "123457",
    "--ti",
    "1",
    "--krn",
    "1",
    "--kt",
    "2",
    "--ea",
    "11",
]
CREDIT = ["token", "generate", "--class", "0", "--subclass", "0", "--rnd", "5"]

#: Every decoder key these tests use or derive, and the vending keys: none may be printed.
SECRETS = {
    IEC_DK,
    DK_07,
    DK_11,
    VK_02,
    VK_04,
    "060B8643C59A27F1",
    "AA4BAA8749C10D27",
    "0011223344556677",
    "00112233445566778899AABBCCDDEEFF",
}
if _DATA is not None:
    for _v in _DATA["vectors"]:
        SECRETS.update(
            value for name, value in _v["intermediate"].items() if name.endswith("key_hex")
        )


def _assert_no_secrets(text: str) -> None:
    for secret in SECRETS:
        assert secret.upper() not in text, "key material in the output"
        assert secret.lower() not in text, "key material in the output"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the command line in-process; returns (exit status, stdout, stderr)."""
    code = main(list(args))
    out, err = capsys.readouterr()
    _assert_no_secrets(out)
    _assert_no_secrets(err)
    return code, out, err


def _one_line_error(err: str, option: str) -> None:
    assert err.endswith("\n") and err.count("\n") == 1, f"not one line: {err!r}"
    assert option in err, f"{option} not named in {err!r}"


# --- vectors -------------------------------------------------------------------------------


def _params(select: Any) -> list[Any]:
    if _DATA is None:
        return [pytest.param(None, marks=_MISSING, id="vectors-missing")]
    items = [v for v in _DATA["vectors"] if select(v)]
    assert items, "no vector matches; the vectors file changed shape"
    return [pytest.param(v, id=v["id"]) for v in items]


def _derived(v: dict[str, Any]) -> bool:
    return "vending_key_hex" in v["inputs"] and "token_class" in v["inputs"]


def _key_args(v: dict[str, Any], ti: str | None = None) -> list[str]:
    i = v["inputs"]
    kt = i.get("key_type", v["algorithm"].get("key_type"))
    ea = "11" if v["algorithm"]["ea"].startswith("11") else "07"
    return [
        "--vk",
        i["vending_key_hex"],
        "--dkga",
        v["algorithm"]["dkga"],
        "--pan",
        i["pan"],
        "--sgc",
        i["sgc"],
        "--ti",
        ti or i["ti"],
        "--krn",
        str(i["krn"]),
        "--kt",
        str(kt),
        "--base-date",
        str(i.get("base_date", 1993)),
        "--ea",
        ea,
    ]


def _value_args(i: dict[str, Any]) -> list[str]:
    """--amount (class 0) or --value (class 2) as a user would type it."""
    if i["token_class"] == 0:
        if "amount_units_tenths" in i:
            return ["--amount", str(Decimal(i["amount_units_tenths"]) / 10)]
        field = int(i["amount_field_hex"], 16)
        units = (field & 0x3FFF) * 10 ** (field >> 14) + 16384 * (10 ** (field >> 14) - 1) // 9
        return ["--amount", str(Decimal(units) / 10)]
    value = int(i["value16_hex"], 16)
    if i["subclass"] in (0, 6):  # watts in the amount encoding; the vectors use e = 0 values
        assert value < 1 << 14
    return ["--value", str(value)]


def _iso(text: str) -> str:
    return datetime.strptime(text, "%d/%m/%Y %H:%M").strftime("%Y-%m-%dT%H:%M")


def _expected_fields(v: dict[str, Any]) -> dict[str, Any]:
    i, im = v["inputs"], v["intermediate"]
    fields: dict[str, Any] = {"class": i["token_class"], "subclass": i["subclass"], "crc_ok": True}
    if "data_block_hex" in im:
        fields["data_block"] = im["data_block_hex"]
    if i["token_class"] == 1:
        control = int(i["control_hex"], 16) if "control_hex" in i else 1 << i["control_bit"]
        fields.update(control=f"{control:X}", mfr_code=i["mfr_code"])
        return fields
    fields.update(tid=im.get("tid", i.get("tid")), rnd=i["rnd"])
    if i["token_class"] == 0:
        fields["kind"] = "TransferCredit"
        if "amount_units_tenths" in i:
            fields["amount_base_units"] = i["amount_units_tenths"]
        return fields
    value = int(i["value16_hex"], 16)
    name = {0: "watts", 1: "register", 5: "value"}[i["subclass"]]
    fields[name] = value
    return fields


@pytest.mark.parametrize("v", _params(_derived))
def test_generate_vector(capsys: pytest.CaptureFixture[str], v: dict[str, Any]) -> None:
    i = v["inputs"]
    args = [
        "token",
        "generate",
        "--class",
        str(i["token_class"]),
        "--subclass",
        str(i["subclass"]),
        "--rnd",
        str(i["rnd"]),
        "--at",
        _iso(i["issue_datetime_local"]),
        *_value_args(i),
        *_key_args(v),
    ]
    code, out, err = run(capsys, *args)
    assert (code, out, err) == (0, v["token"] + "\n", "")
    code, out, err = run(capsys, *args, "--json")
    assert code == 0 and err == ""
    body = json.loads(out)
    assert body["token"] == v["token"]
    assert body["grouped"].replace(" ", "") == v["token"]
    assert body["tid"] == v["intermediate"]["tid"]
    assert set(body["key"]) == {"ea", "fingerprint"}


@pytest.mark.parametrize("v", _params(lambda v: v["inputs"].get("token_class") == 1))
def test_generate_class1_vector(capsys: pytest.CaptureFixture[str], v: dict[str, Any]) -> None:
    i = v["inputs"]
    control = int(i["control_hex"], 16) if "control_hex" in i else 1 << i["control_bit"]
    code, out, err = run(
        capsys,
        "token",
        "generate",
        "--class",
        "1",
        "--subclass",
        str(i["subclass"]),
        "--control",
        f"{control:X}",
        "--mfr-code",
        str(i["mfr_code"]),
    )
    assert (code, out, err) == (0, v["token"] + "\n", "")


@pytest.mark.parametrize("v", _params(lambda v: "decoder_key_hex" in v["inputs"]))
def test_generate_with_a_decoder_key(capsys: pytest.CaptureFixture[str], v: dict[str, Any]) -> None:
    i = v["inputs"]
    code, out, err = run(
        capsys,
        "token",
        "generate",
        "--class",
        str(i["token_class"]),
        "--subclass",
        str(i["subclass"]),
        "--rnd",
        str(i["rnd"]),
        "--tid",
        str(i["tid"]),
        *_value_args(i),
        "--dk",
        i["decoder_key_hex"],
    )
    assert (code, out, err) == (0, v["token"] + "\n", "")


@pytest.mark.parametrize("v", _params(lambda v: "token_class" in v["inputs"]))
def test_decode_vector(capsys: pytest.CaptureFixture[str], v: dict[str, Any]) -> None:
    i = v["inputs"]
    if i["token_class"] == 1:
        key_args: list[str] = []
    elif "decoder_key_hex" in i:
        key_args = ["--dk", i["decoder_key_hex"]]
    else:
        key_args = _key_args(v)
    code, out, err = run(capsys, "token", "decode", v["token"], *key_args)
    assert (code, err) == (0, "")
    body = json.loads(out)
    assert body["token"] == v["token"]
    for name, value in _expected_fields(v).items():
        assert body[name] == value, name
    if "decoder_key_hex" in v["intermediate"]:
        # The same through the decoder key itself, and with the digits grouped.
        grouped = " ".join(v["token"][k : k + 4] for k in range(0, 20, 4))
        ea = ["--ea", "11"] if len(v["intermediate"]["decoder_key_hex"]) == 32 else []
        code, out2, _ = run(
            capsys, "token", "decode", grouped, "--dk", v["intermediate"]["decoder_key_hex"], *ea
        )
        assert code == 0
        assert json.loads(out2) == body


@pytest.mark.parametrize("v", _params(lambda v: "old_ti" in v["inputs"]))
def test_key_change_vector(capsys: pytest.CaptureFixture[str], v: dict[str, Any]) -> None:
    i = v["inputs"]
    ken = str(i["kenho"] << 4 | i["kenlo"])
    old = [
        "--vk",
        i["vending_key_hex"],
        "--dkga",
        "02",
        "--pan",
        i["pan"],
        "--sgc",
        i["sgc"],
        "--ti",
        i["old_ti"],
        "--krn",
        str(i["krn"]),
        "--kt",
        str(i["key_type"]),
    ]
    new = [
        "--new-krn",
        str(i["krn"]),
        "--new-ti",
        i["new_ti"],
        "--new-kt",
        str(i["key_type"]),
        "--ken",
        ken,
        *(["--ro"] if i["ro"] else []),
    ]
    code, out, err = run(capsys, "token", "key-change", *old, *new)
    assert (code, err) == (0, "")
    assert out.splitlines() == v["token"]

    # The same pair from the two decoder keys given directly.
    by_key = [
        "--dk",
        v["intermediate"]["old_decoder_key_hex"],
        "--new-dk",
        v["intermediate"]["new_decoder_key_hex"],
    ]
    code, out, err = run(capsys, "token", "key-change", *by_key, *new)
    assert (code, err) == (0, "")
    assert out.splitlines() == v["token"]

    code, out, err = run(capsys, "token", "key-change", *old, *new, "--json")
    assert (code, err) == (0, "")
    body = json.loads(out)
    assert body["tokens"] == v["token"]
    assert body["fields"][0] == {
        "kind": "Set1stSectionDecoderKey",
        "class": 2,
        "subclass": 3,
        "kenho": i["kenho"],
        "krn": i["krn"],
        "ro": bool(i["ro"]),
        "kt": i["key_type"],
    }
    assert body["fields"][1] == {
        "kind": "Set2ndSectionDecoderKey",
        "class": 2,
        "subclass": 4,
        "kenlo": i["kenlo"],
        "ti": int(i["new_ti"]),
    }
    assert set(body["new_key"]) == {"ea", "fingerprint"}

    # Each KCT decodes under the old key.
    for digits, kind in zip(v["token"], ("Set1stSectionDecoderKey", "Set2ndSectionDecoderKey")):
        code, out, _ = run(capsys, "token", "decode", digits, *old)
        assert code == 0
        decoded = json.loads(out)
        assert decoded["kind"] == kind and decoded["crc_ok"] is True


@pytest.mark.parametrize("v", _params(lambda v: "old_ti" in v["inputs"]))
def test_decoding_a_key_change_token_shows_no_key_bits(
    capsys: pytest.CaptureFixture[str], v: dict[str, Any]
) -> None:
    # A KCT carries half of the new decoder key: decode must not print those bits anywhere
    # (the clear data block included).
    halves = (v["intermediate"]["nkho_hex"], v["intermediate"]["nklo_hex"])
    for digits in v["token"]:
        code, out, err = run(
            capsys, "token", "decode", digits, "--dk", v["intermediate"]["old_decoder_key_hex"]
        )
        assert code == 0
        for half in halves:
            assert half.upper() not in out + err and half.lower() not in out + err


# --- EA11 from the command line ------------------------------------------------------------


def test_ea11_key_change_gives_four_tokens(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys,
        "token",
        "key-change",
        *KEY_04_EA11,
        "--new-krn",
        "2",
        "--new-ti",
        "1",
        "--new-kt",
        "2",
        "--new-sgc",
        "654321",
    )
    assert (code, err) == (0, "")
    tokens = out.splitlines()
    assert len(tokens) == 4
    kinds = []
    for digits in tokens:
        code, decoded, _ = run(capsys, "token", "decode", digits, "--dk", DK_11, "--ea", "11")
        assert code == 0
        kinds.append(json.loads(decoded)["kind"])
    assert kinds == [
        "Set1stSectionDecoderKey",
        "Set2ndSectionDecoderKey",
        "Set3rdSectionDecoderKey",
        "Set4thSectionDecoderKey",
    ]


def test_currency_generate_and_decode(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "token",
        "generate",
        "--class",
        "0",
        "--subclass",
        "4",
        "--amount",
        "100",
        "--tid",
        "1000",
        "--dk",
        IEC_DK,
    )
    assert code == 0
    code, out, _ = run(capsys, "token", "decode", out.strip(), "--dk", IEC_DK)
    body = json.loads(out)
    assert (code, body["amount_base_units"], body["amount"]) == (0, 10_000_624, "100.00624")


def test_amount_is_rounded_up(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, *CREDIT, "--tid", "7", "--amount", "1638.5", "--dk", IEC_DK, "--json"
    )
    assert code == 0
    assert json.loads(out)["amount_base_units"] == 16_394  # 16 385 -> next step of 10


# --- errors --------------------------------------------------------------------------------

BAD_ARGUMENTS = [
    # (arguments, option the one-line error must name)
    ([*CREDIT, "--amount", "1", "--tid", "5", "--dk", "ABC"], "--dk"),
    ([*CREDIT, "--amount", "1", "--tid", "5", "--dk", "0ABC12DEF345678Z"], "--dk"),
    ([*CREDIT, "--amount", "1", "--tid", "5", "--dk", IEC_DK, "--ea", "11"], "--dk"),
    ([*CREDIT, "--amount", "1", "--tid", "5", "--dk", DK_11], "--dk"),
    ([*CREDIT, "--amount", "1", "--tid", "5", "--dk", IEC_DK, "--ea", "09"], "--ea"),
    ([*CREDIT, "--amount", "1", "--tid", "5", "--dk", IEC_DK, "--ea", "08"], "--ea"),
    (
        [
            *CREDIT,
            "--amount",
            "1",
            "--tid",
            "5",
            *KEY_02[:4],
            "--pan",
            "600727000000000008",
            *KEY_02[6:],
        ],
        "--pan",
    ),
    ([*CREDIT, "--amount", "1", "--tid", "5", *KEY_02[:4]], "--pan"),
    ([*CREDIT, "--amount", "1", "--tid", "5", "--vk", VK_04, *KEY_02[2:]], "--vk"),
    ([*CREDIT, "--amount", "1", "--tid", "5", *KEY_02, "--dkga", "03"], "--dkga"),
    ([*CREDIT, "--amount", "1", "--tid", "5", *KEY_02, "--sgc", "1234567"], "--sgc"),
    ([*CREDIT, "--amount", "1", "--tid", "5", *KEY_02, "--kt", "4"], "--kt"),
    ([*CREDIT, "--amount", "1", "--tid", "5", *KEY_02, "--base-date", "2000"], "--base-date"),
    ([*CREDIT, "--amount", "1820162.5", "--tid", "5", "--dk", IEC_DK], "--amount"),
    ([*CREDIT, "--amount", "-1", "--tid", "5", "--dk", IEC_DK], "--amount"),
    ([*CREDIT, "--amount", "ten", "--tid", "5", "--dk", IEC_DK], "--amount"),
    ([*CREDIT, "--tid", "5", "--dk", IEC_DK], "--amount"),
    ([*CREDIT, "--amount", "1", "--at", "1992-12-31T23:59", "--dk", IEC_DK], "--at"),
    ([*CREDIT, "--amount", "1", "--at", "2024-11-24T20:16", "--dk", IEC_DK], "--at"),
    (
        [
            *CREDIT,
            "--amount",
            "1",
            "--at",
            "2013-06-01T00:00",
            "--base-date",
            "2014",
            "--dk",
            IEC_DK,
        ],
        "--at",
    ),
    ([*CREDIT, "--amount", "1", "--at", "yesterday", "--dk", IEC_DK], "--at"),
    ([*CREDIT, "--amount", "1", "--tid", "five", "--dk", IEC_DK], "--tid"),
    ([*CREDIT, "--amount", "1", "--tid", "16777216", "--dk", IEC_DK], "--tid"),
    ([*CREDIT, "--amount", "1", "--dk", IEC_DK], "--tid"),
    ([*CREDIT, "--amount", "1", "--tid", "5", "--dk", IEC_DK, "--rnd", "16"], "--rnd"),
    ([*CREDIT, "--amount", "1", "--tid", "5"], "--dk"),
    (
        ["token", "generate", "--class", "3", "--subclass", "0", "--tid", "5", "--dk", IEC_DK],
        "--class",
    ),
    (
        ["token", "generate", "--subclass", "0", "--amount", "1", "--tid", "5", "--dk", IEC_DK],
        "--class",
    ),
    (
        [
            "token",
            "generate",
            "--class",
            "0",
            "--subclass",
            "9",
            "--amount",
            "1",
            "--tid",
            "5",
            "--dk",
            IEC_DK,
        ],
        "--subclass",
    ),
    (
        [
            "token",
            "generate",
            "--class",
            "2",
            "--subclass",
            "3",
            "--value",
            "1",
            "--tid",
            "5",
            "--dk",
            IEC_DK,
        ],
        "--subclass",
    ),
    (
        ["token", "generate", "--class", "2", "--subclass", "1", "--tid", "5", "--dk", IEC_DK],
        "--value",
    ),
    (
        [
            "token",
            "generate",
            "--class",
            "2",
            "--subclass",
            "1",
            "--value",
            "65536",
            "--tid",
            "5",
            "--dk",
            IEC_DK,
        ],
        "--value",
    ),
    (
        [
            "token",
            "generate",
            "--class",
            "2",
            "--subclass",
            "0",
            "--value",
            "-1",
            "--tid",
            "5",
            "--dk",
            IEC_DK,
        ],
        "--value",
    ),
    (
        [
            "token",
            "generate",
            "--class",
            "2",
            "--subclass",
            "6",
            "--value",
            "18201625",
            "--tid",
            "5",
            "--dk",
            IEC_DK,
        ],
        "--value",
    ),
    (["token", "generate", "--class", "1", "--subclass", "0", "--control", "zz"], "--control"),
    (["token", "generate", "--class", "1", "--subclass", "0"], "--control"),
    (
        [
            "token",
            "generate",
            "--class",
            "1",
            "--subclass",
            "0",
            "--control",
            "1",
            "--mfr-code",
            "100",
        ],
        "--mfr-code",
    ),
    (
        [
            "token",
            "key-change",
            *KEY_02,
            "--new-krn",
            "2",
            "--new-ti",
            "1",
            "--new-kt",
            "2",
            "--ken",
            "256",
        ],
        "--ken",
    ),
    (
        ["token", "key-change", *KEY_02, "--new-krn", "10", "--new-ti", "1", "--new-kt", "2"],
        "--new-krn",
    ),
    (
        ["token", "key-change", *KEY_02, "--new-krn", "2", "--new-ti", "100", "--new-kt", "2"],
        "--new-ti",
    ),
    (
        ["token", "key-change", *KEY_02, "--new-krn", "2", "--new-ti", "1", "--new-kt", "4"],
        "--new-kt",
    ),
    (
        [
            "token",
            "key-change",
            *KEY_02,
            "--new-krn",
            "2",
            "--new-ti",
            "1",
            "--new-kt",
            "2",
            "--new-sgc",
            "1234567",
        ],
        "--new-sgc",
    ),
    (
        [
            "token",
            "key-change",
            *KEY_02,
            "--new-krn",
            "2",
            "--new-ti",
            "1",
            "--new-kt",
            "2",
            "--new-base-date",
            "1999",
        ],
        "--new-base-date",
    ),
    (
        ["token", "key-change", "--dk", IEC_DK, "--new-krn", "2", "--new-ti", "1", "--new-kt", "2"],
        "--new-dk",
    ),
    (
        [
            "token",
            "key-change",
            "--dk",
            IEC_DK,
            "--new-dk",
            "ABC",
            "--new-krn",
            "2",
            "--new-ti",
            "1",
            "--new-kt",
            "2",
        ],
        "--new-dk",
    ),
    (
        [
            "token",
            "key-change",
            "--dk",
            IEC_DK,
            "--new-dk",
            DK_11,
            "--new-krn",
            "2",
            "--new-ti",
            "1",
            "--new-kt",
            "2",
        ],
        "--new-dk",
    ),
    (
        [
            "token",
            "key-change",
            "--dk",
            DK_11,
            "--ea",
            "11",
            "--new-dk",
            DK_11,
            "--new-krn",
            "2",
            "--new-ti",
            "1",
            "--new-kt",
            "2",
        ],
        "--new-sgc",
    ),
    (["token", "decode", "2371610050118319419", "--dk", DK_07], "DIGITS"),
    (["token", "decode", "237161005011831941970", "--dk", DK_07], "DIGITS"),
    (["token", "decode", "2371610050118319419x", "--dk", DK_07], "DIGITS"),
    (["token", "decode", "73786976294838206464", "--dk", DK_07], "DIGITS"),
    (["token", "decode", "99999999999999999999", "--dk", DK_07], "DIGITS"),
    (["token", "decode", "23716100501183194197"], "--dk"),
    (["token", "decode", "23716100501183194197", "--dk", DK_07, "--bogus"], "--bogus"),
]


def _error_id(case: tuple[list[str], str]) -> str:
    args, option = case
    return f"{args[1]}-{option}-{'_'.join(a.lstrip('-') for a in args[2:])[:60]}"


@pytest.mark.parametrize(
    ("args", "option"), BAD_ARGUMENTS, ids=[_error_id(c) for c in BAD_ARGUMENTS]
)
def test_bad_argument_is_one_line_naming_the_option(
    capsys: pytest.CaptureFixture[str], args: list[str], option: str
) -> None:
    code, out, err = run(capsys, *args)
    assert code == 2
    assert out == ""
    _one_line_error(err, option)


def test_ea09_works_with_the_legacy_switch(capsys: pytest.CaptureFixture[str]) -> None:
    args = [*CREDIT, "--amount", "1", "--tid", "5", "--dk", IEC_DK, "--ea", "09"]
    code, _, err = run(capsys, *args)
    assert code == 2 and "legacy" in err
    code, out, err = run(capsys, *args, "--legacy")
    assert (code, err) == (0, "")
    code, decoded, _ = run(
        capsys, "token", "decode", out.strip(), "--dk", IEC_DK, "--ea", "09", "--legacy"
    )
    assert code == 0 and json.loads(decoded)["amount_base_units"] == 10


def test_decode_with_the_wrong_key_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "token", "decode", "23716100501183194197", "--dk", IEC_DK)
    assert code == 1
    assert json.loads(out)["crc_ok"] is False


def test_json_never_shows_keys(capsys: pytest.CaptureFixture[str]) -> None:
    # run() checks every output for key material; these are the commands most likely to leak.
    for args in (
        [*CREDIT, "--amount", "1", "--tid", "5", "--dk", IEC_DK, "--json"],
        [*CREDIT, "--amount", "1", "--tid", "5", *KEY_02, "--json"],
        [*CREDIT, "--amount", "1", "--tid", "5", *KEY_04_EA11, "--json"],
        [
            "token",
            "key-change",
            *KEY_02,
            "--new-krn",
            "2",
            "--new-ti",
            "1",
            "--new-kt",
            "2",
            "--json",
        ],
        [
            "token",
            "key-change",
            "--dk",
            IEC_DK,
            "--new-dk",
            "0011223344556677",
            "--new-krn",
            "2",
            "--new-ti",
            "1",
            "--new-kt",
            "2",
            "--json",
        ],
        [
            "token",
            "key-change",
            *KEY_04_EA11,
            "--new-krn",
            "2",
            "--new-ti",
            "1",
            "--new-kt",
            "2",
            "--json",
        ],
        ["token", "decode", "23716100501183194197", *KEY_02],
    ):
        code, out, _ = run(capsys, *args)
        assert code == 0
        json.loads(out)


# --- the console entry ---------------------------------------------------------------------


def _subprocess(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


def test_module_entry_generates_the_iec_example() -> None:
    done = _subprocess(
        sys.executable,
        "-m",
        "stslab",
        "token",
        "generate",
        "--class",
        "0",
        "--subclass",
        "0",
        "--rnd",
        "11",
        "--tid",
        "1698595",
        "--amount",
        "25.6",
        "--dk",
        IEC_DK,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "29054347139309851356\n", "")


def test_module_entry_reports_a_bad_token_on_one_line() -> None:
    done = _subprocess(sys.executable, "-m", "stslab", "token", "decode", "12345", "--dk", DK_07)
    assert done.returncode == 2
    assert done.stdout == ""
    _one_line_error(done.stderr, "DIGITS")
    _assert_no_secrets(done.stderr)


def test_console_script_decodes() -> None:
    script = shutil.which("stslab") or str(Path(sys.executable).with_name("stslab"))
    if not Path(script).is_file():
        pytest.skip("the stslab console script is not installed (pip install -e .)")
    done = _subprocess(script, "token", "decode", "29054347139309851356", "--dk", IEC_DK)
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert (body["tid"], body["amount"], body["crc_ok"]) == (1698595, "25.6", True)
    _assert_no_secrets(done.stdout + done.stderr)
