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

from sts.dkga import Dkga, KeyAttributes, derive_decoder_key
from sts.identity import Pan
from sts.keys import DecoderKey, EncryptionAlgorithm
from sts.tokens import decode
from stslab.cli import main

VECTORS_PATH = Path(__file__).parents[1] / "sts" / "vectors.json"  # the published vectors
_DATA: dict[str, Any] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))

IEC_DK = "0ABC12DEF3456789"
DK_07 = "E653341F9D5BF36F"  # the compliance meter's key: DKGA02, KRN 1, TI 01
DK_11 = "F94B6ED353C3BFDB113E2D3A7EA3C41D"  # DKGA04, EA11, KRN 1, TI 01, SGC 123457
VK_02 = "abababababababab"
VK_04 = "abababababababab949494949494949401234567"
KEY_02 = f"--vk {VK_02} --dkga 02 --pan 600727000000000009 --sgc 123456 --ti 1 --krn 1 --kt 2"
KEY_04_EA11 = (
    f"--vk {VK_04} --dkga 04 --pan 600727000000000009 --sgc 123457 --ti 1 --krn 1 --kt 2 --ea 11"
)
BAD_PAN = KEY_02.replace("600727000000000009", "600727000000000008")
CREDIT = "token generate --class 0 --subclass 0 --rnd 5 --amount 1 --tid 5"
NEW_KEY = "--new-krn 2 --new-ti 1 --new-kt 2"

#: Every decoder key these tests use or derive, and the vending keys: none may be printed.
SECRETS = {IEC_DK, DK_07, DK_11, VK_02, VK_04, "0011223344556677"}
for _vector in _DATA["vectors"]:
    SECRETS.update(v for k, v in _vector["intermediate"].items() if k.endswith("key_hex"))


def _assert_no_secrets(text: str) -> None:
    for secret in SECRETS:
        assert secret.upper() not in text and secret.lower() not in text, "key in the output"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the command line in-process; (exit status, stdout, stderr), checked for keys."""
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
    items = [v for v in _DATA["vectors"] if select(v)]
    assert items, "no vector matches; the vectors file changed shape"
    return [pytest.param(v, id=v["id"]) for v in items]


def _derived(v: dict[str, Any]) -> bool:
    return "vending_key_hex" in v["inputs"] and "token_class" in v["inputs"]


def _key_args(v: dict[str, Any], ti: str | None = None) -> list[str]:
    i = v["inputs"]
    kt = i.get("key_type", v["algorithm"].get("key_type"))
    ea = "11" if v["algorithm"]["ea"].startswith("11") else "07"
    return (
        f"--vk {i['vending_key_hex']} --dkga {v['algorithm']['dkga']} --pan {i['pan']} "
        f"--sgc {i['sgc']} --ti {ti or i['ti']} --krn {i['krn']} --kt {kt} "
        f"--base-date {i.get('base_date', 1993)} --ea {ea}"
    ).split()


def _value_args(i: dict[str, Any]) -> list[str]:
    """--amount (class 0) or --value (class 2) as a user would type it."""
    if i["token_class"] == 0:
        if "amount_units_tenths" in i:
            return ["--amount", str(Decimal(i["amount_units_tenths"]) / 10)]
        field = int(i["amount_field_hex"], 16)
        assert field < 1 << 14  # exponent 0: the field is the number of tenths
        return ["--amount", str(Decimal(field) / 10)]
    value = int(i["value16_hex"], 16)
    if i["subclass"] in (0, 6):
        assert value < 1 << 14  # exponent 0: the field is the number of watts
    return ["--value", str(value)]


def _iso(text: str) -> str:
    # The vectors write dates day first: "01/03/2004 13:55" is 1 March 2004.
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
    name = {0: "watts", 1: "register", 5: "value"}[i["subclass"]]
    fields[name] = int(i["value16_hex"], 16)
    return fields


@pytest.mark.parametrize("v", _params(_derived))
def test_generate_vector(capsys: pytest.CaptureFixture[str], v: dict[str, Any]) -> None:
    i = v["inputs"]
    args = [
        *f"token generate --class {i['token_class']} --subclass {i['subclass']} --rnd {i['rnd']}"
        f" --at {_iso(i['issue_datetime_local'])}".split(),
        *_value_args(i),
        *_key_args(v),
    ]
    assert run(capsys, *args) == (0, v["token"] + "\n", "")
    code, out, err = run(capsys, *args, "--json")
    assert (code, err) == (0, "")
    body = json.loads(out)
    assert body["token"] == v["token"]
    assert body["grouped"].replace(" ", "") == v["token"]
    assert body["tid"] == v["intermediate"]["tid"]
    assert set(body["key"]) == {"ea", "fingerprint"}


@pytest.mark.parametrize("v", _params(lambda v: v["inputs"].get("token_class") == 1))
def test_generate_class1_vector(capsys: pytest.CaptureFixture[str], v: dict[str, Any]) -> None:
    i = v["inputs"]
    control = int(i["control_hex"], 16) if "control_hex" in i else 1 << i["control_bit"]
    args = (
        f"token generate --class 1 --subclass {i['subclass']} --control {control:X} "
        f"--mfr-code {i['mfr_code']}"
    ).split()
    assert run(capsys, *args) == (0, v["token"] + "\n", "")


@pytest.mark.parametrize("v", _params(lambda v: "decoder_key_hex" in v["inputs"]))
def test_generate_with_a_decoder_key(capsys: pytest.CaptureFixture[str], v: dict[str, Any]) -> None:
    i = v["inputs"]
    args = [
        *f"token generate --class {i['token_class']} --subclass {i['subclass']} --rnd {i['rnd']}"
        f" --tid {i['tid']} --dk {i['decoder_key_hex']}".split(),
        *_value_args(i),
    ]
    assert run(capsys, *args) == (0, v["token"] + "\n", "")


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
    dk = v["intermediate"].get("decoder_key_hex")
    if dk is not None:
        # The same from the decoder key itself, with the digits grouped as on a receipt.
        grouped = " ".join(v["token"][k : k + 4] for k in range(0, 20, 4))
        ea = ["--ea", "11"] if len(dk) == 32 else []
        code, again, _ = run(capsys, "token", "decode", grouped, "--dk", dk, *ea)
        assert code == 0
        assert json.loads(again) == body


def _key_change_args(v: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(the current key from the vending key, the new key's attributes) of the KCT vector."""
    i = v["inputs"]
    old = (
        f"--vk {i['vending_key_hex']} --dkga 02 --pan {i['pan']} --sgc {i['sgc']} "
        f"--ti {i['old_ti']} --krn {i['krn']} --kt {i['key_type']}"
    ).split()
    new = (
        f"--new-krn {i['krn']} --new-ti {i['new_ti']} --new-kt {i['key_type']} "
        f"--ken {i['kenho'] << 4 | i['kenlo']}"
    ).split()
    return old, new + (["--ro"] if i["ro"] else [])


@pytest.mark.parametrize("v", _params(lambda v: "old_ti" in v["inputs"]))
def test_key_change_vector(capsys: pytest.CaptureFixture[str], v: dict[str, Any]) -> None:
    i, im = v["inputs"], v["intermediate"]
    old, new = _key_change_args(v)
    expected = "".join(t + "\n" for t in v["token"])
    assert run(capsys, "token", "key-change", *old, *new) == (0, expected, "")

    # The same pair from the two decoder keys given directly.
    by_key = ["--dk", im["old_decoder_key_hex"], "--new-dk", im["new_decoder_key_hex"]]
    assert run(capsys, "token", "key-change", *by_key, *new) == (0, expected, "")

    code, out, err = run(capsys, "token", "key-change", *old, *new, "--json")
    assert (code, err) == (0, "")
    body = json.loads(out)
    assert body["tokens"] == v["token"]
    assert body["fields"] == [
        {"kind": "Set1stSectionDecoderKey", "class": 2, "subclass": 3, "kenho": i["kenho"],
         "krn": i["krn"], "ro": bool(i["ro"]), "kt": i["key_type"]},
        {"kind": "Set2ndSectionDecoderKey", "class": 2, "subclass": 4, "kenlo": i["kenlo"],
         "ti": int(i["new_ti"])},
    ]  # fmt: skip
    assert set(body["new_key"]) == {"ea", "fingerprint"}

    # Each KCT decodes under the old key.
    for digits, field in zip(v["token"], body["fields"], strict=True):
        code, out, _ = run(capsys, "token", "decode", digits, *old)
        assert code == 0
        decoded = json.loads(out)
        assert decoded["crc_ok"] is True
        assert {k: decoded[k] for k in field} == field


@pytest.mark.parametrize("v", _params(lambda v: "old_ti" in v["inputs"]))
def test_decoding_a_key_change_token_shows_no_key_bits(
    capsys: pytest.CaptureFixture[str], v: dict[str, Any]
) -> None:
    # A KCT carries half of the new decoder key: decode must not print those bits anywhere,
    # the clear data block included.
    im = v["intermediate"]
    for digits in v["token"]:
        code, out, err = run(capsys, "token", "decode", digits, "--dk", im["old_decoder_key_hex"])
        assert code == 0
        for half in (im["nkho_hex"], im["nklo_hex"]):
            assert half.upper() not in out + err and half.lower() not in out + err


# --- more than the vectors -----------------------------------------------------------------


def test_ea11_key_change_gives_four_tokens(capsys: pytest.CaptureFixture[str]) -> None:
    args = f"token key-change {KEY_04_EA11} {NEW_KEY} --new-sgc 654321".split()
    code, out, err = run(capsys, *args)
    assert (code, err) == (0, "")
    kinds = []
    for digits in out.splitlines():
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
    args = f"token generate --class 0 --subclass 4 --amount 100 --tid 1000 --dk {IEC_DK}"
    code, out, _ = run(capsys, *args.split())
    assert code == 0
    code, out, _ = run(capsys, "token", "decode", out.strip(), "--dk", IEC_DK)
    body = json.loads(out)
    # 100.00000 is carried as the next representable amount, 100.00624 (rounded up).
    assert (code, body["amount_base_units"], body["amount"]) == (0, 10_000_624, "100.00624")


def test_amount_is_rounded_up(capsys: pytest.CaptureFixture[str]) -> None:
    args = CREDIT.replace("--amount 1", "--amount 1638.5") + f" --dk {IEC_DK} --json"
    code, out, _ = run(capsys, *args.split())
    assert code == 0
    assert json.loads(out)["amount_base_units"] == 16_394  # 16 385 -> the next step of 10


def test_ea09_works_with_the_legacy_switch(capsys: pytest.CaptureFixture[str]) -> None:
    args = f"{CREDIT} --dk {IEC_DK} --ea 09".split()
    code, _, err = run(capsys, *args)
    assert code == 2 and "legacy" in err
    code, out, err = run(capsys, *args, "--legacy")
    assert (code, err) == (0, "")
    code, decoded, _ = run(
        capsys, "token", "decode", out.strip(), "--dk", IEC_DK, "--ea", "09", "--legacy"
    )
    assert code == 0 and json.loads(decoded)["amount_base_units"] == 10


def test_decode_with_the_wrong_key_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "token", "decode", "23716100501183194197", "--dk", IEC_DK)
    assert code == 1
    assert json.loads(out)["crc_ok"] is False


def test_json_never_shows_keys(capsys: pytest.CaptureFixture[str]) -> None:
    # run() checks every output for key material; these are the outputs most likely to leak.
    for args in (
        f"{CREDIT} --dk {IEC_DK} --json",
        f"{CREDIT} {KEY_02} --json",
        f"{CREDIT} {KEY_04_EA11} --json",
        f"token key-change {KEY_02} {NEW_KEY} --json",
        f"token key-change --dk {IEC_DK} --new-dk 0011223344556677 {NEW_KEY} --json",
        f"token key-change {KEY_04_EA11} {NEW_KEY} --json",
        f"token decode 23716100501183194197 {KEY_02}",
    ):
        code, out, _ = run(capsys, *args.split())
        assert code == 0
        json.loads(out)


# --- a PAN whose check digit is wrong (an engineering sample) --------------------------------

SAMPLE_PAN = "600727123456789012"  # its check digit 2 should be 4, its DRN's 1 should be 3
SAMPLE_02 = KEY_02.replace("600727000000000009", SAMPLE_PAN)
SAMPLE_04 = KEY_04_EA11.replace("600727000000000009", SAMPLE_PAN)
ALLOW = "--allow-bad-check-digit"
RELAXED = "relaxed (PAN check digit 2, expected 4; DRN check digit 1, expected 3)"


@pytest.mark.parametrize(
    "command",
    [
        f"{CREDIT} {SAMPLE_02}",
        f"token key-change {SAMPLE_02} {NEW_KEY}",
        f"token decode 23716100501183194197 {SAMPLE_02}",
    ],
    ids=["generate", "key-change", "decode"],
)
def test_a_pan_with_a_wrong_check_digit_is_refused_unless_allowed(
    capsys: pytest.CaptureFixture[str], command: str
) -> None:
    code, out, err = run(capsys, *command.split())
    assert (code, out) == (2, "")
    _one_line_error(err, "--pan")
    assert "PAN check digit 2, expected 4; DRN check digit 1, expected 3" in err
    assert ALLOW in err


def _sample_key(key_args: str) -> DecoderKey:
    """The decoder key any token engine derives from the sample PAN's 18 digits as they are."""
    o = dict(zip(key_args.split()[::2], key_args.split()[1::2], strict=True))
    ea = EncryptionAlgorithm(int(o.get("--ea", "07")))
    attrs = KeyAttributes(Pan(SAMPLE_PAN), int(o["--sgc"]), int(o["--ti"]), int(o["--krn"]),
                          int(o["--kt"]), ea=ea)  # fmt: skip
    return derive_decoder_key(bytes.fromhex(o["--vk"]), Dkga.parse(o["--dkga"]), attrs)


@pytest.mark.parametrize("key_args", [SAMPLE_02, SAMPLE_04], ids=["dkga02-ea07", "dkga04-ea11"])
def test_with_the_switch_a_token_is_minted_for_the_pan_as_given(
    capsys: pytest.CaptureFixture[str], key_args: str
) -> None:
    code, out, _ = run(capsys, *f"{CREDIT} {key_args} {ALLOW} --json".split())
    assert code == 0
    body = json.loads(out)
    assert body["pan_check_digit"] == RELAXED
    assert decode(body["token"], _sample_key(key_args)).crc_ok
    code, out, _ = run(capsys, "token", "decode", body["token"], *key_args.split(), ALLOW)
    assert code == 0
    decoded = json.loads(out)
    assert decoded["crc_ok"] is True and decoded["amount"] == "1.0"
    assert decoded["pan_check_digit"] == RELAXED
    # The same switch without --json prints the digits alone, as ever.
    code, out, _ = run(capsys, *f"{CREDIT} {key_args} {ALLOW}".split())
    assert (code, out) == (0, body["token"] + "\n")


def test_with_the_switch_key_change_tokens_are_made_under_the_pan_as_given(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, *f"token key-change {SAMPLE_02} {NEW_KEY} {ALLOW} --json".split())
    assert code == 0
    body = json.loads(out)
    assert body["pan_check_digit"] == RELAXED
    current = _sample_key(SAMPLE_02)
    assert len(body["tokens"]) == 2
    assert all(decode(t, current).crc_ok for t in body["tokens"])


# --- errors --------------------------------------------------------------------------------


def _bad(case_id: str, option: str, args: str) -> Any:
    return pytest.param(args.split(), option, id=case_id)


GEN = "token generate --class 0 --subclass 0 --rnd 5 --amount 1"  # no time yet
GEN2 = "token generate --class 2 --tid 5"
GEN1 = "token generate --class 1 --subclass 0"
KC = "token key-change"
DKI = f"--dk {IEC_DK}"
DEC = "token decode"

BAD_ARGUMENTS = [
    _bad("dk-odd-hex", "--dk", f"{CREDIT} --dk ABC"),
    _bad("dk-not-hex", "--dk", f"{CREDIT} --dk 0ABC12DEF345678Z"),
    _bad("dk-64-bit-for-ea11", "--dk", f"{CREDIT} {DKI} --ea 11"),
    _bad("dk-128-bit-for-ea07", "--dk", f"{CREDIT} --dk {DK_11}"),
    _bad("dk-and-vk", "--dk", f"{CREDIT} {DKI} {KEY_02}"),
    _bad("no-key", "--dk", CREDIT),
    _bad("ea09-without-legacy", "--ea", f"{CREDIT} {DKI} --ea 09"),
    _bad("ea-unknown", "--ea", f"{CREDIT} {DKI} --ea 08"),
    _bad("pan-check-digit", "--pan", f"{CREDIT} {BAD_PAN}"),
    _bad("pan-missing", "--pan", f"{CREDIT} --vk {VK_02} --dkga 02"),
    _bad("vk-length", "--vk", f"{CREDIT} {KEY_02.replace(VK_02, VK_04)}"),
    _bad("dkga-unknown", "--dkga", f"{CREDIT} {KEY_02.replace('--dkga 02', '--dkga 03')}"),
    _bad("sgc-7-digits", "--sgc", f"{CREDIT} {KEY_02.replace('123456', '1234567')}"),
    _bad("kt-4", "--kt", f"{CREDIT} {KEY_02.replace('--kt 2', '--kt 4')}"),
    _bad("base-date", "--base-date", f"{CREDIT} {KEY_02} --base-date 2000"),
    _bad("amount-too-large", "--amount", f"{CREDIT} {DKI} --amount 1820162.5"),
    _bad("amount-negative", "--amount", f"{CREDIT} {DKI} --amount -1"),
    _bad("amount-not-a-number", "--amount", f"{CREDIT} {DKI} --amount ten"),
    _bad("amount-missing", "--amount", f"token generate --class 0 --subclass 0 --tid 5 {DKI}"),
    _bad("at-before-1993", "--at", f"{GEN} --at 1992-12-31T23:59 {DKI}"),
    _bad("at-after-rollover", "--at", f"{GEN} --at 2024-11-24T20:16 {DKI}"),
    _bad("at-before-2014", "--at", f"{GEN} --at 2013-06-01T00:00 --base-date 2014 {DKI}"),
    _bad("at-not-a-time", "--at", f"{GEN} --at yesterday {DKI}"),
    _bad("tid-not-an-integer", "--tid", f"{GEN} --tid five {DKI}"),
    _bad("tid-25-bits", "--tid", f"{GEN} --tid 16777216 {DKI}"),
    _bad("tid-and-at", "--tid", f"{CREDIT} --at 2004-01-01T00:00 {DKI}"),
    _bad("tid-missing", "--tid", f"{GEN} {DKI}"),
    _bad("rnd-16", "--rnd", f"{CREDIT} {DKI} --rnd 16"),
    _bad("class-3", "--class", f"token generate --class 3 --subclass 0 --tid 5 {DKI}"),
    _bad("class-missing", "--class", f"token generate --subclass 0 --amount 1 --tid 5 {DKI}"),
    _bad("class0-subclass-9", "--subclass", f"{CREDIT.replace('subclass 0', 'subclass 9')} {DKI}"),
    _bad("class2-kct-subclass", "--subclass", f"{GEN2} --subclass 3 --value 1 {DKI}"),
    _bad("value-missing", "--value", f"{GEN2} --subclass 1 {DKI}"),
    _bad("value-17-bits", "--value", f"{GEN2} --subclass 1 --value 65536 {DKI}"),
    _bad("mpl-negative", "--value", f"{GEN2} --subclass 0 --value -1 {DKI}"),
    _bad("mppul-too-large", "--value", f"{GEN2} --subclass 6 --value 18201625 {DKI}"),
    _bad("control-not-hex", "--control", f"{GEN1} --control zz"),
    _bad("control-missing", "--control", GEN1),
    _bad("mfr-code-3-digits", "--mfr-code", f"{GEN1} --control 1 --mfr-code 100"),
    _bad("ken-256", "--ken", f"{KC} {KEY_02} {NEW_KEY} --ken 256"),
    _bad("new-krn", "--new-krn", f"{KC} {KEY_02} {NEW_KEY.replace('krn 2', 'krn 10')}"),
    _bad("new-ti", "--new-ti", f"{KC} {KEY_02} {NEW_KEY.replace('ti 1', 'ti 100')}"),
    _bad("new-kt", "--new-kt", f"{KC} {KEY_02} {NEW_KEY.replace('kt 2', 'kt 4')}"),
    _bad("new-sgc", "--new-sgc", f"{KC} {KEY_02} {NEW_KEY} --new-sgc 1234567"),
    _bad("new-base-date", "--new-base-date", f"{KC} {KEY_02} {NEW_KEY} --new-base-date 1999"),
    _bad("new-dk-missing", "--new-dk", f"{KC} {DKI} {NEW_KEY}"),
    _bad("new-dk-odd-hex", "--new-dk", f"{KC} {DKI} --new-dk ABC {NEW_KEY}"),
    _bad("new-dk-length", "--new-dk", f"{KC} {DKI} --new-dk {DK_11} {NEW_KEY}"),
    _bad("ea11-without-sgc", "--new-sgc", f"{KC} --dk {DK_11} --ea 11 --new-dk {DK_11} {NEW_KEY}"),
    _bad("decode-19-digits", "DIGITS", f"{DEC} 2371610050118319419 --dk {DK_07}"),
    _bad("decode-21-digits", "DIGITS", f"{DEC} 237161005011831941970 --dk {DK_07}"),
    _bad("decode-letter", "DIGITS", f"{DEC} 2371610050118319419x --dk {DK_07}"),
    _bad("decode-2-pow-66", "DIGITS", f"{DEC} 73786976294838206464 --dk {DK_07}"),
    _bad("decode-99999", "DIGITS", f"{DEC} 99999999999999999999 --dk {DK_07}"),
    _bad("decode-no-key", "--dk", f"{DEC} 23716100501183194197"),
    _bad("unknown-option", "--bogus", f"{DEC} 23716100501183194197 --dk {DK_07} --bogus"),
]


@pytest.mark.parametrize(("args", "option"), BAD_ARGUMENTS)
def test_bad_argument_is_one_line_naming_the_option(
    capsys: pytest.CaptureFixture[str], args: list[str], option: str
) -> None:
    code, out, err = run(capsys, *args)
    assert code == 2
    assert out == ""
    _one_line_error(err, option)


# --- the console entry ---------------------------------------------------------------------


def _subprocess(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


def test_module_entry_generates_the_iec_example() -> None:
    args = (
        f"token generate --class 0 --subclass 0 --rnd 11 --tid 1698595 --amount 25.6 --dk {IEC_DK}"
    )
    done = _subprocess(sys.executable, "-m", "stslab", *args.split())
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
