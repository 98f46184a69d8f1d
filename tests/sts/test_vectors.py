"""Every published vector (tests/sts/vectors.json, the project's shared/sts/vectors.json), both
directions, through the Python API, with its intermediate values: decoder keys, TIDs, amount
fields, data blocks, CRCs and the IEC STA example ciphertext."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from sts import amount as amounts
from sts.crc import crc_field
from sts.dkga import Dkga, KeyAttributes, derive_decoder_key
from sts.identity import Pan
from sts.keys import DecoderKey, EncryptionAlgorithm
from sts.meter import KeyInstalled, ReferenceMeter, Result
from sts.sta import Sta, encrypt_reference
from sts.tid import BaseDate, datetime_from_tid, tid_from_datetime
from sts.tokens import (
    MANAGEMENT_TYPES,
    InitiateMeterTest,
    Set1stSectionDecoderKey,
    Set2ndSectionDecoderKey,
    Token,
    TokenClass,
    TransferCredit,
    data_block,
    decode,
    encode,
)
from sts.vending import NewKey, encode_key_change

#: The published vectors, kept with the tests so every clone checks them (a copy of the
#: project's shared/sts/vectors.json; test_the_vectors_are_the_published_ones checks it).
VECTORS_PATH = Path(__file__).with_name("vectors.json")
PUBLISHED_PATH = Path(__file__).parents[3] / "shared/sts/vectors.json"
_DATA: dict[str, Any] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))


def _params(select: Callable[[dict[str, Any]], bool], key: str = "vectors") -> list[Any]:
    items = [v for v in _DATA[key] if select(v)]
    assert items, f"no {key} entry matches; the vectors file changed shape"
    return [pytest.param(v, id=v.get("id", v.get("input50_hex"))) for v in items]


def _is_derived(v: dict[str, Any]) -> bool:
    """A single token minted from a vending key, a meter identity and a time."""
    return "vending_key_hex" in v["inputs"] and "token_class" in v["inputs"]


def _is_class1(v: dict[str, Any]) -> bool:
    return v["inputs"].get("token_class") == 1


def _is_key_change(v: dict[str, Any]) -> bool:
    return "old_ti" in v["inputs"]


def _is_direct_key(v: dict[str, Any]) -> bool:
    return "decoder_key_hex" in v["inputs"]


def _ea(v: dict[str, Any]) -> EncryptionAlgorithm:
    if v["algorithm"]["ea"].startswith("11"):
        return EncryptionAlgorithm.MISTY1
    return EncryptionAlgorithm.STA


def _issue_time(inputs: dict[str, Any]) -> datetime:
    # The vectors write dates day first: "01/03/2004 13:55" is 1 March 2004.
    return datetime.strptime(inputs["issue_datetime_local"], "%d/%m/%Y %H:%M")


def _attributes(v: dict[str, Any], ti: str | None = None) -> KeyAttributes:
    i = v["inputs"]
    kt = i.get("key_type", v["algorithm"].get("key_type"))
    return KeyAttributes(
        pan=Pan.parse(i["pan"]),
        sgc=int(i["sgc"]),
        ti=int(ti if ti is not None else i["ti"]),
        krn=i["krn"],
        kt=kt,
        base_date=BaseDate(i.get("base_date", 1993)),
        ea=_ea(v),
    )


def _derived_key(v: dict[str, Any], ti: str | None = None) -> DecoderKey:
    i = v["inputs"]
    method = Dkga(int(v["algorithm"]["dkga"]))
    return derive_decoder_key(bytes.fromhex(i["vending_key_hex"]), method, _attributes(v, ti))


def _token(inputs: dict[str, Any], tid: int | None) -> Token:
    """The token object the inputs describe."""
    cls, sub = inputs["token_class"], inputs["subclass"]
    if cls == 1:
        control = (
            int(inputs["control_hex"], 16)
            if "control_hex" in inputs
            else 1 << inputs["control_bit"]
        )
        return InitiateMeterTest(sub, control, inputs["mfr_code"])
    assert tid is not None
    if cls == 0:
        if "amount_units_tenths" in inputs:
            units = inputs["amount_units_tenths"]
        else:
            units = amounts.decode_units(int(inputs["amount_field_hex"], 16))
        return TransferCredit(sub, tid, units, inputs["rnd"])
    value = int(inputs["value16_hex"], 16)
    if sub in (0, 6):  # MPL and MPPUL carry watts in the amount encoding
        value = amounts.decode_units(value)
    return MANAGEMENT_TYPES[sub](tid, value, inputs["rnd"])


# --- decoder keys --------------------------------------------------------------------------


@pytest.mark.parametrize("v", _params(_is_derived))
def test_decoder_key_is_derived_as_published(v: dict[str, Any]) -> None:
    key = _derived_key(v)
    assert key.hex() == v["intermediate"]["decoder_key_hex"]
    assert key.ea is _ea(v)


@pytest.mark.parametrize("v", _params(_is_key_change))
def test_key_change_old_and_new_decoder_keys(v: dict[str, Any]) -> None:
    i, im = v["inputs"], v["intermediate"]
    assert _derived_key(v, ti=i["old_ti"]).hex() == im["old_decoder_key_hex"]
    new = _derived_key(v, ti=i["new_ti"])
    assert new.hex() == im["new_decoder_key_hex"]
    assert new.hex() == im["nkho_hex"] + im["nklo_hex"]


# --- TIDs, amount fields, data blocks ------------------------------------------------------


@pytest.mark.parametrize("v", _params(lambda v: "tid" in v["intermediate"]))
def test_tid_from_issue_time(v: dict[str, Any]) -> None:
    i, tid = v["inputs"], v["intermediate"]["tid"]
    base = BaseDate(i.get("base_date", 1993))
    if "issue_datetime_local" in i:
        assert tid_from_datetime(_issue_time(i), base) == tid
        assert datetime_from_tid(tid, base) == _issue_time(i)
    else:
        assert i["tid"] == tid


@pytest.mark.parametrize("v", _params(lambda v: "amount_field_hex" in v["intermediate"]))
def test_amount_field(v: dict[str, Any]) -> None:
    units = v["inputs"]["amount_units_tenths"]
    field = int(v["intermediate"]["amount_field_hex"], 16)
    assert amounts.encode_units(units) == field
    assert amounts.decode_units(field) == units


@pytest.mark.parametrize(
    "v", _params(lambda v: "data_block_hex" in v["intermediate"] and "token_class" in v["inputs"])
)
def test_data_block(v: dict[str, Any]) -> None:
    i, im = v["inputs"], v["intermediate"]
    token = _token(i, im.get("tid", i.get("tid")))
    assert data_block(token) == int(im["data_block_hex"], 16)


@pytest.mark.parametrize("v", _params(lambda v: True, key="crc_examples"))
def test_crc_example(v: dict[str, Any]) -> None:
    assert crc_field(int(v["input50_hex"], 16)) == int(v["crc_field_hex"], 16)


# --- generate and decode -------------------------------------------------------------------


@pytest.mark.parametrize("v", _params(_is_derived))
def test_generate_derived_token(v: dict[str, Any]) -> None:
    i = v["inputs"]
    tid = tid_from_datetime(_issue_time(i), BaseDate(i["base_date"]))
    assert encode(_token(i, tid), _derived_key(v)) == v["token"]


@pytest.mark.parametrize("v", _params(_is_derived))
def test_decode_derived_token(v: dict[str, Any]) -> None:
    i, im = v["inputs"], v["intermediate"]
    decoded = decode(v["token"], _derived_key(v))
    assert decoded.crc_ok
    assert decoded.token_class == TokenClass(i["token_class"])
    assert decoded.subclass == i["subclass"]
    assert decoded.token == _token(i, im["tid"])
    assert decoded.token.tid == im["tid"]  # type: ignore[union-attr]
    if "data_block_hex" in im:
        assert decoded.data_block == int(im["data_block_hex"], 16)
    if "amount_units_tenths" in i:
        assert decoded.token.amount == i["amount_units_tenths"]  # type: ignore[union-attr]


@pytest.mark.parametrize("v", _params(_is_class1))
def test_class1_token_both_directions(v: dict[str, Any]) -> None:
    i = v["inputs"]
    token = _token(i, None)
    assert encode(token) == v["token"]
    decoded = decode(v["token"])
    assert decoded.crc_ok
    assert decoded.token == token
    assert decoded.data_block == int(v["intermediate"]["data_block_hex"], 16)


@pytest.mark.parametrize("v", _params(_is_direct_key))
def test_iec_sta_example(v: dict[str, Any]) -> None:
    i, im = v["inputs"], v["intermediate"]
    key = DecoderKey.from_hex(i["decoder_key_hex"])
    block = int(im["data_block_hex"], 16)
    cipher = int(im["encrypted_block_hex"], 16)
    token = _token(i, i["tid"])
    assert data_block(token) == block
    assert Sta(int(i["decoder_key_hex"], 16)).encrypt(block) == cipher
    assert encrypt_reference(int(i["decoder_key_hex"], 16), block) == cipher
    assert key.cipher.decrypt(cipher) == block
    assert encode(token, key) == v["token"]
    decoded = decode(v["token"], key)
    assert decoded.crc_ok
    assert decoded.token == token


@pytest.mark.parametrize("v", _params(_is_key_change))
def test_key_change_pair_both_directions(v: dict[str, Any]) -> None:
    i = v["inputs"]
    old = _derived_key(v, ti=i["old_ti"])
    new = _derived_key(v, ti=i["new_ti"])
    ken = i["kenho"] << 4 | i["kenlo"]
    new_key = NewKey(
        new, krn=i["krn"], kt=i["key_type"], ti=int(i["new_ti"]), ken=ken, ro=bool(i["ro"])
    )
    assert encode_key_change(new_key, old) == tuple(v["token"])

    first, second = (decode(t, old) for t in v["token"])
    assert first.crc_ok and second.crc_ok
    assert first.token == Set1stSectionDecoderKey(
        i["kenho"], i["krn"], bool(i["ro"]), i["key_type"], int(v["intermediate"]["nkho_hex"], 16)
    )
    assert second.token == Set2ndSectionDecoderKey(
        i["kenlo"], int(i["new_ti"]), int(v["intermediate"]["nklo_hex"], 16)
    )

    # A meter holding the old key installs exactly the published new key.
    meter = ReferenceMeter(
        old, krn=i["krn"], kt=i["key_type"], ti=int(i["old_ti"]), sgc=int(i["sgc"])
    )
    assert meter.enter(v["token"][0]).result is Result.KCT1_RECEIVED
    done = meter.enter(v["token"][1])
    assert done.result is Result.ACCEPT
    assert isinstance(done.effects[0], KeyInstalled)
    assert meter.state.key.hex() == v["intermediate"]["new_decoder_key_hex"]
    assert meter.state.ti == int(i["new_ti"])


def test_the_vectors_are_the_published_ones() -> None:
    if not PUBLISHED_PATH.is_file():
        pytest.skip(f"no published copy at {PUBLISHED_PATH} to compare with")
    assert json.loads(PUBLISHED_PATH.read_text(encoding="utf-8")) == _DATA
