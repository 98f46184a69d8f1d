"""The token factory: mints the right token for the meter under test.

It holds the DUT's vending key (never shown: keys appear only as fingerprints) and reads
and updates the DUT ledger, so TIDs only move forward and keys follow every installed key
change. Scenarios speak in relative terms ("the next TID", "the same TID as step s1", "just
past the KEN", "a key the meter does not have"); this is where they become digits.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from dut.profile import MeterProfile
from sts import amount as amounts
from sts.dkga import Dkga, KeyAttributes, derive_decoder_key
from sts.identity import Drn, Pan
from sts.keys import DecoderKey, EncryptionAlgorithm
from sts.tid import TID_LIMIT, BaseDate
from sts.tokens import (
    ClearCredit,
    ClearTamperCondition,
    InitiateMeterTest,
    SetMaximumPhasePowerUnbalanceLimit,
    SetMaximumPowerLimit,
    SetTariffRate,
    SetWaterMeterFactor,
    Token,
    TransferCredit,
    describe,
    encode,
)
from sts.vending import KEN_NEVER_EXPIRES, NewKey, key_change_tokens
from stslab.ledger import KeyState, Ledger
from stslab.scenario import NewKeySpec, TokenSpec


class MintError(Exception):
    """A token a scenario asks for cannot be minted (the step is an ERROR, not a FAIL)."""


@dataclass(frozen=True)
class Minted:
    digits: str
    token: Token
    tid: int | None
    key_fingerprint: str | None
    fields: dict[str, Any]


def key_state_from_profile(profile: MeterProfile) -> KeyState:
    k = profile.key
    return KeyState(
        krn=k.krn,
        kt=k.kt,
        ti=k.ti,
        sgc=k.sgc,
        base_date=k.base_date,
        ea=k.ea,
        dkga=k.dkga,
        ken=k.ken,
        fingerprint=profile.key_fingerprint(),
    )


class TokenFactory:
    def __init__(self, profile: MeterProfile, ledger: Ledger, seed: int | None = None) -> None:
        self.profile = profile
        self.ledger = ledger
        self._vk = profile.vending_key()
        self._rng = random.Random(seed)
        self._keys: dict[tuple, DecoderKey] = {}

    # -- keys -----------------------------------------------------------------------------

    def key_for(self, state: KeyState, pan: str | None = None) -> DecoderKey:
        cache_key = (
            state.krn,
            state.kt,
            state.ti,
            state.sgc,
            state.base_date,
            state.ea,
            state.dkga,
            pan,
            state.parts,
        )
        key = self._keys.get(cache_key)
        if key is None and state.parts:
            key = self._combined_key(state.parts, pan)
            self._keys[cache_key] = key
        if key is None:
            attrs = KeyAttributes(
                pan=Pan.parse(pan) if pan else self.profile.meter.pan_number(),
                sgc=state.sgc,
                ti=state.ti,
                krn=state.krn,
                kt=state.kt,
                base_date=BaseDate(state.base_date),
                ea=EncryptionAlgorithm(int(state.ea)),
            )
            key = derive_decoder_key(
                self._vk, Dkga(int(state.dkga)), attrs, legacy=self.profile.key.legacy
            )
            self._keys[cache_key] = key
        return key

    def _combined_key(self, parts: tuple[tuple[int, KeyState], ...], pan: str | None) -> DecoderKey:
        """The key a meter builds from sections of different sets: each set's key word."""
        keys = {n: self.key_for(state, pan) for n, state in parts}
        if len(keys) == 2:  # 64-bit: KCT1 bits 63-32, KCT2 bits 31-0
            value = _word(keys[3], 1) << 32 | _word(keys[4], 0)
        else:  # 128-bit: KCT1 bits 127-96, KCT3 95-64, KCT4 63-32, KCT2 31-0
            value = 0
            for n, index in ((3, 3), (8, 2), (9, 1), (4, 0)):
                value |= _word(keys[n], index) << (32 * index)
        first = keys[3]
        return DecoderKey(value.to_bytes(len(first.value), "big"), first.ea, legacy=first.legacy)

    def installed_state(self, sections: dict[int, KeyState]) -> KeyState:
        """The key state a meter takes from ``sections`` (KCT subclass: the set it came
        from): the set's own state when they are all of one set, else a combined one."""
        sets = set(sections.values())
        if len(sets) == 1:
            return next(iter(sets))
        first, second = sections[3], sections[4]
        sgc = first.sgc
        if 8 in sections:  # SGC bits 11-0 ride in KCT3, bits 23-12 in KCT4
            sgc = sections[9].sgc & 0xFFF000 | sections[8].sgc & 0xFFF
        state = KeyState(
            krn=first.krn,
            kt=first.kt,
            ti=second.ti,
            sgc=sgc,
            base_date=first.base_date,
            ea=first.ea,
            dkga=first.dkga,
            ken=first.ken & 0xF0 | second.ken & 0x0F,
            parts=tuple(sorted(sections.items())),
        )
        return KeyState(**{**state.__dict__, "fingerprint": self.key_for(state).fingerprint})

    @property
    def current_key(self) -> DecoderKey:
        return self.key_for(self.ledger.key)

    def _spec_key(self, which: str) -> DecoderKey:
        state = self.ledger.key
        if which == "current":
            return self.current_key
        if which == "previous":
            if self.ledger.previous_key is None:
                raise MintError("no previous key: the meter has had no key change yet")
            return self.key_for(self.ledger.previous_key)
        if which == "other_key":
            # Derived from the vending key like any key, never from a combined key's sets.
            other = KeyState(**{**state.__dict__, "krn": (state.krn % 9) + 1, "parts": ()})
            return self.key_for(other)
        return self.key_for(state, other_meter_pan(self.profile.meter.pan))

    # -- TIDs -----------------------------------------------------------------------------

    def tid_for(self, spec: TokenSpec, earlier: dict[str, int]) -> tuple[int, bool]:
        """The TID for ``spec`` and whether it is a fresh one to record as issued."""
        t = spec.tid
        rule = t.rule
        ledger = self.ledger
        if rule == "same_as":
            assert t.same_as is not None
            if t.same_as not in earlier:
                raise MintError(f"step {t.same_as!r} minted no TID-bearing token")
            return earlier[t.same_as], False
        if rule == "at_store_min":
            return ledger.store_min(self.profile.tokens.tid_store_size), False
        if rule == "below_store_min":
            size = self.profile.tokens.tid_store_size
            tid = ledger.store_min(size) - int(t.below_store_min or 1)
            if tid < 0:
                raise MintError("no TID below the store minimum (the store minimum is 0)")
            return tid, False
        if rule == "absolute":
            return int(t.absolute or 0), False
        if rule == "at_ken":
            ken = ledger.key.ken
            if ken == KEN_NEVER_EXPIRES:
                raise MintError("the key never expires (KEN 255): no KEN boundary")
            tid = (ken << 16) | 0xFFFF
            if ledger.last_tid is not None and tid <= ledger.last_tid:
                raise MintError(f"the TIDs issued already passed KEN {ken}")
            return tid, True
        if rule == "past_ken":
            ken = ledger.key.ken
            if ken == KEN_NEVER_EXPIRES:
                raise MintError("the key never expires (KEN 255): no TID is past it")
            tid = max((ken + 1) << 16, ledger.next_tid_unchecked())
            return tid, True
        if rule == "advance_minutes":
            base = ledger.last_tid if ledger.last_tid is not None else ledger.store_floor
            return min(base + int(t.advance_minutes or 1), TID_LIMIT - 1), True
        return ledger.next_tid(), True

    # -- minting --------------------------------------------------------------------------

    def mint(self, spec: TokenSpec, earlier: dict[str, int]) -> Minted:
        """Mint ``spec``; TID-bearing tokens are recorded in the ledger as issued."""
        try:
            return self._mint(spec, earlier)
        except (ValueError, KeyError) as exc:  # an StsError from the engine, or a lookup
            raise MintError(str(exc)) from None

    def _mint(self, spec: TokenSpec, earlier: dict[str, int]) -> Minted:
        rnd = spec.rnd if spec.rnd is not None else self._rng.randrange(16)
        if spec.token_class == 1:
            token: Token = self._class1(spec)
            digits = encode(token)
            return Minted(digits, token, None, None, describe(token))
        tid, fresh = self.tid_for(spec, earlier)
        token = self._tid_token(spec, tid, rnd)
        key = self._spec_key(spec.key)
        digits = encode(token, key)
        if fresh:
            self.ledger.issue(tid)
        return Minted(digits, token, tid, key.fingerprint, describe(token))

    def _class1(self, spec: TokenSpec) -> InitiateMeterTest:
        bits = 36 if spec.subclass == 0 else 28
        if spec.tests == "all":
            control = (1 << bits) - 1
        elif spec.tests is not None:
            control = sum(1 << b for b in spec.tests)
        else:
            control = int(spec.control or "0", 16)
        own = self.profile.tokens.mfr_code
        if spec.mfr_code == "own":
            code = own
        elif spec.mfr_code == "other":
            limit = 99 if spec.subclass == 0 else 9999
            code = next(c for c in (17, 42, 73, 91) if c not in (0, own) and c <= limit)
        else:
            code = spec.mfr_code
        return InitiateMeterTest(spec.subclass, control, code)

    def _tid_token(self, spec: TokenSpec, tid: int, rnd: int) -> Token:
        if spec.token_class == 0:
            assert spec.amount is not None
            units = amounts.to_base_units(spec.amount, spec.subclass)
            if spec.subclass >= 4:
                return TransferCredit(spec.subclass, tid, amounts.round_up_currency(units))
            return TransferCredit(spec.subclass, tid, amounts.round_up(units), rnd)
        value = int(spec.value or 0)
        s = spec.subclass
        if s == 0:
            return SetMaximumPowerLimit(tid, amounts.round_up(value, param="value"), rnd)
        if s == 6:
            watts = amounts.round_up(value, param="value")
            return SetMaximumPhasePowerUnbalanceLimit(tid, watts, rnd)
        makers = {1: ClearCredit, 2: SetTariffRate, 5: ClearTamperCondition, 7: SetWaterMeterFactor}
        return makers[s](tid, value, rnd)

    # -- key changes ----------------------------------------------------------------------

    def key_change(self, spec: NewKeySpec) -> tuple[list[str], KeyState, NewKey]:
        """The KCT set for ``spec`` under the current key, and the key it installs."""
        cur = self.ledger.key
        krn = (cur.krn % 9) + 1 if spec.krn == "next" else int(spec.krn)
        ti = cur.ti if spec.ti == "same" else int(spec.ti)
        kt = cur.kt if spec.kt == "same" else int(spec.kt)
        base = cur.base_date if spec.base_date == "same" else int(spec.base_date)
        sgc = cur.sgc if spec.sgc == "same" else int(spec.sgc)
        if spec.ken == "never":
            ken = KEN_NEVER_EXPIRES
        elif isinstance(spec.ken, dict):
            ken = (self.ledger.next_tid_unchecked() >> 16) + int(spec.ken.get("relative", 0))
        else:
            ken = int(spec.ken)
        if not 0 <= ken <= 255:
            raise MintError(f"KEN {ken} is outside 0-255")
        state = KeyState(
            krn=krn, kt=kt, ti=ti, sgc=sgc, base_date=base, ea=cur.ea, dkga=cur.dkga, ken=ken
        )
        try:
            new_key = self.key_for(state)
            new = NewKey(
                new_key,
                krn=krn,
                kt=kt,
                ti=ti,
                ken=ken,
                ro=spec.ro,
                sgc=sgc if new_key.ea.key_bytes == 16 else None,
            )
            digits = [encode(t, self.current_key) for t in key_change_tokens(new)]
        except ValueError as exc:
            raise MintError(str(exc)) from None
        state = KeyState(**{**state.__dict__, "fingerprint": new_key.fingerprint})
        return digits, state, new


def _word(key: DecoderKey, index: int) -> int:
    """The key's 32-bit word ``index`` (0 = least significant)."""
    return int.from_bytes(key.value, "big") >> (32 * index) & 0xFFFFFFFF


def other_meter_pan(pan: str) -> str:
    """A valid PAN of another meter of the same manufacturer (the next serial number); the
    meter's own PAN may carry a wrong check digit (a relaxed profile)."""
    drn = Pan.parse(pan, check_digits=False).drn
    serial = (drn.serial + 1) % 10**8
    return Pan.from_drn(Drn.build(drn.mfr_code, serial, drn.mfr_digits)).digits
