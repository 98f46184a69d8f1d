"""A long seeded random walk of valid and invalid entries against the reference meter.

Fresh, repeated and old TIDs, typos, tokens for other meters, class 1 tests, management
tokens, garbage, and key change sets entered in pieces between other tokens (some with RO,
some to a default key, some to DITK, some with a KEN). After every entry the invariants must
hold: every result is a Result member; a rejected entry changes nothing; credit changes only
by the accepted token's effect; no TID is accepted twice; the TID store keeps its size.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from sts.codec import MAX_TOKEN, insert_class, to_digits
from sts.identity import Drn, Pan
from sts.keys import DecoderKey, EncryptionAlgorithm
from sts.meter import (
    CreditAdded,
    CreditCleared,
    KeyInstalled,
    MeterParameters,
    MeterState,
    ReferenceMeter,
    Result,
)
from sts.tid import TID_LIMIT
from sts.tokens import (
    KEY_CHANGE_TYPES,
    ClearCredit,
    ClearTamperCondition,
    InitiateMeterTest,
    SetMaximumPhasePowerUnbalanceLimit,
    SetMaximumPowerLimit,
    TransferCredit,
    encode,
)
from sts.vending import KEN_NEVER_EXPIRES, NewKey, encode_key_change

MakeKey = Callable[..., DecoderKey]
CREDIT_LIMIT = 400_000


def _state(meter: ReferenceMeter) -> MeterState:
    """A deep copy of the meter's state, as ``meter.snapshot()`` gives.

    The decoder key is immutable and is shared instead of copied: a deep copy of a key also
    copies its expanded cipher tables (tens of MB), far too slow to do thousands of times.
    """
    return copy.deepcopy(meter.state, {id(meter.state.key): meter.state.key})


@dataclass
class _KeyChange:
    """A key change set being entered one token at a time."""

    new: NewKey
    remaining: list[str]
    entered: int = 0


@dataclass
class _Walk:
    rng: random.Random
    meter: ReferenceMeter
    make_key: MakeKey
    ea: EncryptionAlgorithm
    key: DecoderKey
    stranger: DecoderKey  # another meter's key
    next_tid: int = 1000
    epoch: int = 0  # counts RO key changes: the TID store starts afresh
    accepted_tids: set[int] = field(default_factory=set)
    accepted: list[tuple[str, DecoderKey, int]] = field(default_factory=list)
    history: list[str] = field(default_factory=list)
    change: _KeyChange | None = None
    counts: dict[str, int] = field(default_factory=dict)
    results: dict[Result, int] = field(default_factory=dict)

    # -- token sources --------------------------------------------------------------------

    def fresh_tid(self) -> int:
        self.next_tid += self.rng.randrange(1, 3000)
        assert self.next_tid < TID_LIMIT, "walk too long for one base date"
        return self.next_tid

    def fresh_credit(self, subclass: int = 0) -> tuple[str, TransferCredit]:
        amount = self.rng.choice([self.rng.randrange(1, 5000), self.rng.randrange(1, 200_000)])
        token = TransferCredit(subclass, self.fresh_tid(), amount, self.rng.randrange(16))
        return encode(token, self.key), token

    def management(self) -> str:
        tid, rnd = self.fresh_tid(), self.rng.randrange(16)
        token = self.rng.choice(
            [
                SetMaximumPowerLimit(tid, self.rng.randrange(30_000), rnd),
                ClearCredit(tid, self.rng.choice([0, 0xFFFF, 3]), rnd),  # 3: Range
                ClearTamperCondition(tid, self.rng.choice([0, 0, 1]), rnd),  # pad 1: Range
                SetMaximumPhasePowerUnbalanceLimit(tid, 500, rnd),  # not declared: Function
            ]
        )
        return encode(token, self.key)

    def typo(self) -> str:
        digits, _ = self.fresh_credit()
        position = self.rng.randrange(20)
        digit = self.rng.choice([d for d in "0123456789" if d != digits[position]])
        return digits[:position] + digit + digits[position + 1 :]

    def garbage(self) -> str:
        return self.rng.choice(
            [
                "".join(self.rng.choices("0123456789", k=self.rng.choice([0, 19, 21]))),
                "1234567890abcdefghij",
                str(self.rng.randrange(MAX_TOKEN + 1, 10**20)),
                to_digits(insert_class(3, self.rng.getrandbits(64))),
            ]
        )

    def class1(self) -> str:
        sub = self.rng.randrange(2)
        bits = 36 if sub == 0 else 28
        control = self.rng.choice([(1 << bits) - 1, 1 << self.rng.randrange(12), 0])
        mfr = self.rng.choice([0, 0, self.meter.parameters.mfr_code, 17])
        return encode(InitiateMeterTest(sub, control, mfr))

    def next_kct(self) -> str:
        if self.change is None or not self.change.remaining:
            krn = self.rng.randrange(10)
            ti = self.rng.randrange(100)
            kt = self.rng.choice([2, 2, 2, 1, 3, 0])  # 0 (DITK) must be refused
            ken = self.rng.choice(
                [KEN_NEVER_EXPIRES, KEN_NEVER_EXPIRES, min(254, self.next_tid >> 16)]
            )
            new_key = self.make_key(self.ea, krn=krn, ti=ti, kt=kt)
            sgc = self.rng.randrange(10**6) if self.ea is EncryptionAlgorithm.MISTY1 else None
            ro = self.rng.random() < 0.3
            new = NewKey(new_key, krn=krn, kt=kt, ti=ti, ken=ken, ro=ro, sgc=sgc)
            remaining = list(encode_key_change(new, self.key))
            self.rng.shuffle(remaining)
            self.change = _KeyChange(new, remaining)
        self.change.entered += 1
        return self.change.remaining.pop()

    # -- one step -------------------------------------------------------------------------

    def step(self) -> None:
        kind = self.rng.choices(
            [
                "credit",
                "other_service",
                "management",
                "repeat",
                "old",
                "typo",
                "stranger",
                "class1",
                "garbage",
                "kct",
                "history",
                "consume",
                "power_cycle",
            ],
            weights=[30, 3, 8, 8, 5, 6, 4, 5, 4, 6, 4, 3, 1],
        )[0]
        self.counts[kind] = self.counts.get(kind, 0) + 1
        meter = self.meter
        if kind == "consume":
            taken = meter.consume(0, self.rng.randrange(50_000))
            assert taken >= 0
            return
        if kind == "power_cycle":
            meter.power_cycle()
            self.change = None  # a half-entered set is gone (declared default)
            return

        expected: set[Result] | None = None
        fresh: TransferCredit | None = None
        if kind == "credit":
            digits, fresh = self.fresh_credit()
        elif kind == "other_service":
            digits, _ = self.fresh_credit(subclass=1)
            expected = {Result.FUNCTION, Result.KEY_EXPIRED, Result.DDTK}
        elif kind == "management":
            digits = self.management()
        elif kind == "repeat" and self.accepted:
            digits, key, epoch = self.rng.choice(self.accepted)
            if key == self.key and epoch == self.epoch:
                # Still in the store, or pushed out by larger TIDs.
                expected = {Result.USED, Result.OLD}
        elif kind == "old" and min(meter.state.tid_store) > 0:
            tid = self.rng.randrange(min(meter.state.tid_store))
            digits = encode(TransferCredit(0, tid, 10, 3), self.key)
            expected = {Result.OLD}
        elif kind == "typo":
            digits = self.typo()
            expected = {Result.CRC, Result.FORMAT}
        elif kind == "stranger":
            digits = encode(TransferCredit(0, self.fresh_tid(), 10, 1), self.stranger)
            expected = {Result.CRC}
        elif kind == "class1":
            digits = self.class1()
        elif kind == "garbage":
            digits = self.garbage()
            # Class-3 garbage is decrypted and fails the CRC; the rest is not a token at all.
            expected = {Result.FORMAT, Result.CRC}
        elif kind == "history" and self.history:
            digits = self.rng.choice(self.history)
        else:
            kind = "kct"
            digits = self.next_kct()

        if fresh is not None:
            expected = {self.fresh_credit_result(fresh)}
        self.enter(digits, kind, expected)

    def fresh_credit_result(self, token: TransferCredit) -> Result:
        """What the meter must answer to a new credit token under its own key."""
        s = self.meter.state
        if s.ken != KEN_NEVER_EXPIRES and token.tid >> 16 > s.ken:
            return Result.KEY_EXPIRED
        if s.kt == 1:
            return Result.DDTK
        if s.credit[0] + token.amount > CREDIT_LIMIT:
            return Result.OVERFLOW
        return Result.ACCEPT

    def enter(self, digits: str, kind: str, expected: set[Result] | None) -> None:
        meter = self.meter
        before = _state(meter)
        outcome = meter.enter(digits)
        after = _state(meter)
        self.history.append(digits)
        result = outcome.result
        self.results[result] = self.results.get(result, 0) + 1

        assert isinstance(result, Result)
        assert len(after.tid_store) == meter.parameters.tid_store_size
        if expected is not None:
            assert result in expected, (kind, result, outcome.detail)

        if not result.accepted:
            assert outcome.effects == ()
            if isinstance(outcome.token, KEY_CHANGE_TYPES):
                # A refused set (Key type) is dropped whole; nothing else may change.
                before.pending_kcts, after.pending_kcts = {}, {}
            assert after == before, (kind, result)
            self.forget_broken_change()
            return

        # Credit changes only by the accepted token's own effect.
        credit = dict(before.credit)
        installed: KeyInstalled | None = None
        for effect in outcome.effects:
            if isinstance(effect, CreditAdded):
                credit[effect.register] += effect.amount
            elif isinstance(effect, CreditCleared):
                for register in effect.registers:
                    credit[register] = 0
            elif isinstance(effect, KeyInstalled):
                installed = effect
        assert after.credit == credit

        if outcome.tid is not None and result is Result.ACCEPT:
            assert outcome.tid not in self.accepted_tids, f"TID {outcome.tid} accepted twice"
            self.accepted_tids.add(outcome.tid)
            assert outcome.tid in after.tid_store
            self.accepted.append((digits, self.key, self.epoch))
        elif installed is None:
            assert after.tid_store == before.tid_store

        if installed is None:
            self.forget_broken_change()
            return
        # A replayed half can complete a set with a half of another: the meter then holds a
        # key made of both, which is what a real meter does too. Follow the meter's key.
        assert installed.key_fingerprint == after.key.fingerprint
        assert (after.krn, after.kt, after.ti) == (installed.krn, installed.kt, installed.ti)
        if self.change is not None and after.key == self.change.new.key:
            new = self.change.new
            assert (after.krn, after.kt, after.ti) == (new.krn, new.kt, new.ti)
            self.counts["own_set_installed"] = self.counts.get("own_set_installed", 0) + 1
        self.key = after.key
        self.change = None
        if installed.rollover:
            self.epoch += 1
            self.accepted_tids.clear()
            # After a rollover change the vending side may restart low.
            self.next_tid = self.rng.randrange(0, 5000)
        else:
            assert after.tid_store == before.tid_store

    def forget_broken_change(self) -> None:
        """Drop our half-entered set when the meter no longer holds any of it."""
        change = self.change
        if change is not None and change.entered and not self.meter.state.pending_kcts:
            self.change = None


@pytest.mark.parametrize(
    ("ea", "store_size", "steps", "seed"),
    [
        (EncryptionAlgorithm.STA, 5, 4000, 20_240),
        (EncryptionAlgorithm.MISTY1, 3, 2000, 62_055),
    ],
)
def test_random_walk_keeps_the_invariants(
    make_key: MakeKey, ea: EncryptionAlgorithm, store_size: int, steps: int, seed: int
) -> None:
    key = make_key(ea)
    meter = ReferenceMeter(
        key,
        krn=1,
        kt=2,
        ti=1,
        sgc=123457,
        parameters=MeterParameters(
            tid_store_size=store_size,
            mfr_code=42,
            supported_tests=0b111_1111,
            credit_limit=CREDIT_LIMIT,
            services=frozenset({0}),
        ),
        manufacture_tid=500,
    )
    stranger = make_key(ea, pan=Pan.from_drn(Drn.build(12, 34567890)).digits)
    walk = _Walk(random.Random(seed), meter, make_key, ea, key, stranger)
    for step in range(steps):
        walk.step()
        if step % 500 == 0:
            assert meter.snapshot() == _state(meter)
    results = {r.name: n for r, n in sorted(walk.results.items())}
    print(f"entries={sum(walk.results.values())} results={results}")
    # The walk went through the interesting places, not just one corner.
    for result in (
        Result.ACCEPT,
        Result.KCT1_RECEIVED,
        Result.KCT2_RECEIVED,
        Result.USED,
        Result.OLD,
        Result.CRC,
        Result.FORMAT,
        Result.FUNCTION,
        Result.RANGE,
        Result.OVERFLOW,
        Result.KEY_TYPE,
        Result.DDTK,
        Result.KEY_EXPIRED,
        Result.MFR_CODE,
    ):
        assert walk.results.get(result, 0) > 0, f"the walk never produced {result.name}"
    assert walk.epoch > 0, "no rollover key change was installed"
    assert walk.counts.get("own_set_installed", 0) > 5
