"""Keywords that mint tokens and enter them (or keys) into the meter, each entry read back: the
meter's answer is kept for the check keywords that follow."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, Literal

from robotlibcore import keyword

from sts.meter import Result
from stslab.campaign import StepResult
from stslab.factory import Minted
from stslab.robot.context import CampaignContext, KeywordGroup
from stslab.robot.settings import Carrier
from stslab.robot.steps import label_args
from stslab.scenario import KeyChangeStep, KeysStep, NewKeySpec, RawStep, TokenSpec, TokenStep

_RESULT_BY_LABEL = {r.label: r for r in Result}


class TokenKeywords(KeywordGroup):
    def __init__(self, ctx: CampaignContext) -> None:
        super().__init__(ctx)
        # tokens minted in this run by their digits: `Enter Token` records an accepted one
        self._minted: dict[str, Minted] = {}

    @keyword("Mint Token")
    def mint_token(
        self,
        token_class: int,
        subclass: int,
        amount: Decimal | None = None,
        value: int | None = None,
        tests: str | None = None,
        control: str | None = None,
        mfr_code: str = "0",
        tid: str = "next",
        key: Literal["current", "other_meter", "other_key", "previous"] = "current",
        rnd: int | None = None,
        name: str | None = None,
    ) -> str:
        """Mints a token for the meter under test and returns its 20 digits.

        ``token_class`` and ``subclass`` are the STS token class and subclass. Class 0 needs
        ``amount`` (in the service's unit: kWh for subclass 0); class 2 needs ``value``
        (watts for a power limit, the register for ClearCredit, 0 for ClearTamper); class 1
        needs ``tests`` (``all`` or control bits like ``3`` or ``1,4``) or ``control`` (hex).
        ``mfr_code`` is a number, ``own`` or ``other`` (class 1).

        ``tid`` picks the TID from the DUT ledger, never the wall clock: ``next``,
        ``same_as:NAME`` (the TID of the token minted with ``name=NAME`` in this test),
        ``below_store_min:N``, ``at_ken``, ``past_ken``, ``advance_minutes:N`` or
        ``absolute:N``. ``key`` is ``current``, ``other_meter`` (another PAN), ``other_key``
        (another KRN) or ``previous`` (the key before the last key change).

        The token and its fields are kept, so `Enter Token` records its TID in the ledger
        when the meter accepts it.

        | ${digits} =    Mint Token    0    0    amount=1.0    name=first
        | ${again} =     Mint Token    0    0    amount=1.0    tid=same_as:first
        """
        spec = _token_spec(
            token_class, subclass, amount, value, tests, control, mfr_code, tid, key, rnd
        )
        minted: list[Minted] = []

        def act(res: StepResult) -> None:
            assert self.ctx.campaign is not None
            target = self.ctx.target()
            m = self.ctx.campaign.factory.mint(spec, target.tids)
            if name is not None and m.tid is not None:
                target.tids[name] = m.tid
            res.action = {"token": m.fields, "digits": m.digits, "key": m.key_fingerprint}
            minted.append(m)

        self.ctx.step(
            "Mint Token",
            label_args(
                token_class,
                subclass,
                amount=amount,
                value=value,
                tests=tests,
                tid=tid,
                key=key,
                name=name,
            ),
            act,
            action=False,
        )
        self._minted[minted[0].digits] = minted[0]
        return minted[0].digits

    @keyword("Enter Token")
    def enter_token(self, digits: str, carrier: Carrier | None = None) -> None:
        """Enters ``digits`` through ``carrier`` (default: the campaign's carrier) and reads
        the meter's answer.

        Digits from `Mint Token` are recorded in the ledger when accepted; any other digits
        (a 19- or 21-digit entry, a token from elsewhere) are entered as they are.

        | Enter Token    ${digits}
        | Enter Token    ${digits}[1:]    carrier=keypad
        """
        if not re.fullmatch(r"[0-9]+", digits):
            raise ValueError(f"Enter Token: {digits!r} is not a run of digits")
        minted = self._minted.get(digits)
        step = RawStep(do="raw", digits=digits)

        def act(res: StepResult) -> None:
            assert self.ctx.campaign is not None
            self.ctx.perform(step, self.ctx.carrier(carrier), res, entry=True)
            if minted is not None:
                res.action.update(token=minted.fields, key=minted.key_fingerprint)
                answer = (res.observations.get("results") or [None])[-1]
                runner = self.ctx.campaign.runner
                runner._record_acceptance(minted.tid, _RESULT_BY_LABEL.get(answer))
            self.ctx.remember_entry(res)

        self.ctx.step("Enter Token", label_args(f"{len(digits)} digits", carrier=carrier), act)

    @keyword("Mint And Enter Token")
    def mint_and_enter_token(
        self,
        token_class: int,
        subclass: int,
        amount: Decimal | None = None,
        value: int | None = None,
        tests: str | None = None,
        control: str | None = None,
        mfr_code: str = "0",
        tid: str = "next",
        key: Literal["current", "other_meter", "other_key", "previous"] = "current",
        rnd: int | None = None,
        name: str | None = None,
        corrupt: Literal["typo"] | None = None,
        carrier: Carrier | None = None,
    ) -> str:
        """Mints a token (arguments as in `Mint Token`), enters it and reads the answer, in
        one step; returns the digits entered.

        ``corrupt=typo`` changes one digit before entry (the CRC must catch it; the ledger
        does not record such a token as accepted).

        | Mint And Enter Token    0    0    amount=10.0
        | Mint And Enter Token    2    1    value=0
        | Mint And Enter Token    0    0    amount=1.0    key=other_meter
        """
        spec = _token_spec(
            token_class, subclass, amount, value, tests, control, mfr_code, tid, key, rnd
        )
        step = TokenStep(do="token", token=spec, corrupt=corrupt, id=name)
        entered: list[str] = []

        def act(res: StepResult) -> None:
            self.ctx.perform(step, self.ctx.carrier(carrier), res, entry=True)
            entered.append(res.action["digits"])
            self.ctx.remember_entry(res)

        self.ctx.step(
            "Mint And Enter Token",
            label_args(
                token_class,
                subclass,
                amount=amount,
                value=value,
                tests=tests,
                tid=tid,
                key=key,
                corrupt=corrupt,
                carrier=carrier,
            ),
            act,
        )
        return entered[0]

    @keyword("Enter Key Change")
    def enter_key_change(
        self,
        krn: int | Literal["next"] = "next",
        ti: int | Literal["same"] = "same",
        kt: int | Literal["same"] = "same",
        base_date: int | Literal["same"] = "same",
        sgc: int | Literal["same"] = "same",
        ken: str = "never",
        ro: bool = False,
        order: list[int] | None = None,
        carrier: Carrier | None = None,
    ) -> None:
        """Enters a key change token set installing a new key, section by section.

        The new key's attributes are given relative to the current key: ``krn`` (a number or
        ``next``), ``ti``, ``kt``, ``base_date``, ``sgc`` (a number or ``same``), ``ken``
        (``never``, a number, or ``relative:N`` past the next TID's KEN) and ``ro``. ``order``
        lists the sections to enter, 1-based (``[2, 1]`` reversed, ``[1]`` half a set); the
        default is the whole set in order. The ledger follows the key when the whole set is
        accepted. Judge the answers with `Section Results Should Be` and `Result Should Be`.

        | Enter Key Change    krn=7
        | Enter Key Change    order=[2, 1]
        | Enter Key Change    kt=1
        """
        new_key = NewKeySpec.model_validate(
            {
                "krn": krn,
                "ti": ti,
                "kt": kt,
                "base_date": base_date,
                "sgc": sgc,
                "ken": _ken(ken),
                "ro": ro,
            }
        )

        step = KeyChangeStep(do="key_change", new_key=new_key, order=order)

        def act(res: StepResult) -> None:
            self.ctx.perform(step, self.ctx.carrier(carrier), res, entry=True)
            self.ctx.remember_entry(res)

        self.ctx.step(
            "Enter Key Change",
            label_args(
                krn=krn,
                ti=ti,
                kt=kt,
                base_date=base_date,
                sgc=sgc,
                ken=ken,
                ro=ro or None,
                order=order,
                carrier=carrier,
            ),
            act,
        )

    @keyword("Press Keys")
    def press_keys(self, *keys: str, hold_ms: int | None = None, gap_ms: int | None = None) -> None:
        """Presses keypad keys and reads the meter's answer.

        Keys are names from the meter's keypad layout (``ENTER`` and ``BACK`` mean the
        declared enter and backspace keys) or ``digits:`` followed by a run of digits.
        ``hold_ms`` and ``gap_ms`` set the press and pause lengths for these keys only.

        | Press Keys    digits:1844674407    digits:5    BACK    digits:3843772416    ENTER
        | Press Keys    ENTER
        """
        if not keys:
            raise ValueError("Press Keys: no keys given")
        step = KeysStep(do="keys", keys=list(keys), hold_ms=hold_ms, gap_ms=gap_ms)

        def act(res: StepResult) -> None:
            self.ctx.perform(step, "keypad", res, entry=True)
            self.ctx.remember_entry(res)

        self.ctx.step("Press Keys", " ".join(keys), act)


def _token_spec(
    token_class: int,
    subclass: int,
    amount: Decimal | None,
    value: int | None,
    tests: str | None,
    control: str | None,
    mfr_code: str,
    tid: str,
    key: str,
    rnd: int | None,
) -> TokenSpec:
    data: dict[str, Any] = {
        "class": token_class,
        "subclass": subclass,
        "key": key,
        "tid": _tid_rule(tid),
    }
    code = str(mfr_code).strip()
    data["mfr_code"] = int(code) if code.isdigit() else code
    if amount is not None:
        data["amount"] = amount
    if value is not None:
        data["value"] = value
    if tests is not None:
        text = str(tests).strip()
        data["tests"] = "all" if text == "all" else [int(t) for t in text.split(",") if t.strip()]
    if control is not None:
        data["control"] = control
    if rnd is not None:
        data["rnd"] = rnd
    try:
        return TokenSpec.model_validate(data)
    except ValueError as exc:
        raise ValueError(f"token: {_one_line(exc)}") from None


def _tid_rule(text: str) -> dict[str, Any]:
    rule, sep, arg = str(text).partition(":")
    rule = rule.strip()
    if rule in ("next", "at_ken", "past_ken") and not sep:
        return {rule: True}
    if rule == "same_as" and arg.strip():
        return {rule: arg.strip()}
    if rule in ("below_store_min", "advance_minutes", "absolute") and arg.strip().isdigit():
        return {rule: int(arg)}
    raise ValueError(
        f"tid {text!r}: use next, same_as:NAME, below_store_min:N, at_ken, past_ken, "
        "advance_minutes:N or absolute:N"
    )


def _ken(text: str) -> int | str | dict[str, int]:
    text = str(text).strip()
    if text == "never":
        return text
    if text.startswith("relative:"):
        return {"relative": int(text.split(":", 1)[1])}
    return int(text)


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())
