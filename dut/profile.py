"""Meter profiles: everything a meter model declares that the standard leaves open.

A profile is YAML, validated on load; an error names the file, the key path and the line.
REFERENCE.md §10 lists what is not public (TID store size, lockout policy, display
vocabulary, supported class-1 tests, KEN support, KT change rules, the card layout …): all of
it is a profile key here, never a constant in code.

Key material: a profile names the key the meter leaves the factory with. Only the public
compliance test vending keys may be written inline (``vending_key``); any other key is read
from a file (``vending_key_file``) or an environment variable (``vending_key_env``).
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from dut.card import CardLayout
from sts.dkga import Dkga, KeyAttributes, derive_decoder_key
from sts.errors import StsError
from sts.identity import CheckDigitError, Pan
from sts.keys import DecoderKey, EncryptionAlgorithm, fingerprint, parse_hex_key
from sts.meter import MeterParameters, Result
from sts.schema import DocumentError, decode_text, located, validate
from sts.tid import BaseDate

#: The public STS compliance-test vending keys (IEC 62055-41 test data): allowed inline.
PUBLIC_TEST_VENDING_KEYS = frozenset(
    {
        "abababababababab",
        "abababababababab949494949494949401234567",
    }
)

PROFILE_DIR = "profiles"


class ProfileError(DocumentError):
    """A profile that does not validate; the message names file, key path and line."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MeterIdentity(_Strict):
    make: str
    model: str
    firmware: str
    serial: str = Field(description="The meter's serial number as printed on it.")
    #: ``relaxed``: an engineering sample whose PAN carries a wrong check digit; its key is
    #: derived from the digits as given, and the record and the report say so.
    pan_check_digit: Literal["strict", "relaxed"] = "strict"
    pan: str = Field(description="18-digit PAN (IIN + DRN + check digit).")

    @field_validator("pan", mode="before")
    @classmethod
    def _pan(cls, v: Any, info: ValidationInfo) -> str:
        relaxed = info.data.get("pan_check_digit") == "relaxed"
        try:
            return Pan.parse(str(v), check_digits=not relaxed).digits
        except CheckDigitError as exc:
            raise ValueError(
                f"{exc.reason}; for a meter that carries it, set meter.pan_check_digit: relaxed"
            ) from None

    def pan_number(self) -> Pan:
        """The PAN, with its check digits as given when the profile relaxes them."""
        return Pan.parse(self.pan, "meter.pan", check_digits=self.pan_check_digit == "strict")

    def check_digit_note(self) -> str | None:
        """How the PAN's check digits were taken, for the record; None when strict."""
        return None if self.pan_check_digit == "strict" else self.pan_number().relaxed_note()


class KeyProfile(_Strict):
    """The decoder key the meter leaves the factory with, by derivation."""

    dkga: Literal["02", "04"] = "02"
    ea: Literal["07", "09", "11"] = "07"
    legacy: bool = False
    sgc: int = Field(ge=0, le=999_999)
    ti: int = Field(ge=0, le=99)
    krn: int = Field(ge=0, le=9)
    kt: int = Field(ge=0, le=3)
    base_date: Literal[1993, 2014, 2035] = 1993
    ken: int = Field(default=255, ge=0, le=255)
    vending_key: str | None = None
    vending_key_file: str | None = None
    vending_key_env: str | None = None

    @field_validator("dkga", "ea", mode="before")
    @classmethod
    def _two_digits(cls, v: Any) -> Any:
        return f"{int(v):02d}" if isinstance(v, int) else v

    @model_validator(mode="after")
    def _one_source(self) -> KeyProfile:
        given = [
            n for n in ("vending_key", "vending_key_file", "vending_key_env") if getattr(self, n)
        ]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of vending_key (public test keys only), vending_key_file, "
                "vending_key_env"
            )
        inline = self.vending_key
        if inline is not None and inline.lower() not in PUBLIC_TEST_VENDING_KEYS:
            raise ValueError(
                "vending_key: only the public compliance test keys may be written inline; "
                "use vending_key_file or vending_key_env"
            )
        if self.ea == "11" and self.dkga != "04":
            raise ValueError("EA11 keys (128-bit) come from DKGA04")
        if self.ea == "09" and not self.legacy:
            raise ValueError("ea 09 (DES) is deprecated: set legacy: true to use it")
        return self

    def vending_key_bytes(self, base: Path | None = None, source: str | None = None) -> bytes:
        """The vending key, from wherever the profile says it is. Errors name the key (and
        the profile file ``source`` with the key's line, when given); never the key."""
        dkga = Dkga(int(self.dkga))

        def refuse(name: str, message: str) -> ProfileError:
            where = located(source, ("key", name)) if source else f"key.{name}"
            return ProfileError(f"{where}: {message}")

        if self.vending_key is not None:
            name, origin, text = "vending_key", "", self.vending_key
        elif self.vending_key_env is not None:
            name, origin = "vending_key_env", f"${self.vending_key_env}: "
            text = os.environ.get(self.vending_key_env, "")
            if not text:
                raise refuse(name, f"${self.vending_key_env} is not set")
        else:
            name, path = "vending_key_file", Path(self.vending_key_file or "")
            if base is not None and not path.is_absolute():
                path = base / path
            origin = f"{path}: "
            try:
                text = path.read_text().strip()
            except OSError as exc:
                raise refuse(name, f"cannot read {path}: {exc.strerror}") from None
        try:
            return parse_hex_key(text, "key.vending_key", 8 if dkga is Dkga.DKGA02 else 20)
        except StsError as exc:
            raise refuse(name, origin + exc.reason) from None

    def attributes(self, pan: str | Pan) -> KeyAttributes:
        """The key attributes for ``pan`` (a text PAN is parsed strictly)."""
        return KeyAttributes(
            pan=pan if isinstance(pan, Pan) else Pan.parse(pan),
            sgc=self.sgc,
            ti=self.ti,
            krn=self.krn,
            kt=self.kt,
            base_date=BaseDate(self.base_date),
            ea=EncryptionAlgorithm(int(self.ea)),
        )


class LockoutPolicy(_Strict):
    """Keypad lockout after repeated rejected entries (manufacturer behaviour)."""

    after_rejects: int = Field(default=3, ge=1)
    first_seconds: float = Field(default=10.0, gt=0)
    factor: float = Field(default=2.0, ge=1)
    max_seconds: float = Field(default=1280.0, gt=0)
    enabled: bool = True


class KeypadProfile(_Strict):
    keys: tuple[str, ...] = (
        "1", "2", "3", "4", "5", "6", "7", "8", "9", "BACK", "0", "ENTER",
    )  # fmt: skip
    enter_key: str = "ENTER"
    backspace_key: str = "BACK"
    #: Seconds without a key press after which a part-typed entry is discarded.
    entry_timeout_s: float = Field(default=30.0, gt=0)
    #: Shortest hold the keypad registers as a press (a real keypad debounces).
    min_hold_ms: float = Field(default=20.0, ge=0)
    lockout: LockoutPolicy = LockoutPolicy()

    @model_validator(mode="after")
    def _keys(self) -> KeypadProfile:
        missing = [k for k in "0123456789" if k not in self.keys]
        if missing:
            raise ValueError(f"keys: digit key(s) {', '.join(missing)} missing")
        for name in ("enter_key", "backspace_key"):
            if getattr(self, name) not in self.keys:
                raise ValueError(f"{name}: {getattr(self, name)!r} is not one of keys")
        return self


class DisplayProfile(_Strict):
    #: Built-in layout name (dut/profiles/<name>.yaml) or a path to a layout YAML.
    layout: str = "lcd_8digit"
    #: Result code -> what the display shows (manufacturer-specific texts).
    vocabulary: dict[int, str]
    message_seconds: float = Field(default=3.0, gt=0)
    test_step_seconds: float = Field(default=2.0, gt=0)
    #: Shown for class-1 test 9 (software version).
    version_text: str = "1.00"
    #: Credit below this (base units) lights the credit_low annunciator.
    credit_low_threshold: int = Field(default=50, ge=0)

    @field_validator("vocabulary")
    @classmethod
    def _codes(cls, v: dict[int, str]) -> dict[int, str]:
        unknown = sorted(set(v) - {int(r) for r in Result})
        if unknown:
            raise ValueError(f"result code(s) {unknown} do not exist (1-16)")
        missing = sorted({int(r) for r in Result} - set(v))
        if missing:
            raise ValueError(f"no text for result code(s) {missing}")
        return v


class LoadSwitchProfile(_Strict):
    #: Seconds the load must stay above the maximum power limit before the switch opens.
    mpl_trip_delay_s: float = Field(default=5.0, ge=0)
    #: Seconds after an MPL trip before the meter recloses (and trips again if still over).
    mpl_reconnect_s: float = Field(default=60.0, gt=0)
    #: Whether the switch recloses by itself when credit returns (else on the enter key).
    reconnect_on_credit: Literal["auto", "key"] = "auto"
    #: Seconds the switch stays open during the class-1 load switch test.
    test_open_s: float = Field(default=5.0, gt=0)


#: What the harness's reference twin compares after every step (stslab.sideeffect); a
#: profile turns one off where the meter does something the profile cannot declare.
TWIN_OBSERVABLES = (
    "result", "credit", "krn", "kt", "ti", "ken", "mpl", "tamper", "relay", "display",
    "annunciator.relay_open", "annunciator.credit_low", "annunciator.tamper",
    "annunciator.keypad_lock", "annunciator.kwh", "annunciator.currency",
)  # fmt: skip


class TwinSection(_Strict):
    """The reference twin's comparisons: observable -> why it is not compared (the record
    and the report say so)."""

    not_compared: dict[str, str] = Field(default_factory=dict)

    @field_validator("not_compared")
    @classmethod
    def _names(cls, v: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(v) - set(TWIN_OBSERVABLES))
        if unknown:
            raise ValueError(f"{', '.join(unknown)}: not an observable the twin compares "
                             f"(known: {', '.join(TWIN_OBSERVABLES)})")  # fmt: skip
        empty = sorted(k for k, why in v.items() if not str(why).strip())
        if empty:
            raise ValueError(f"{', '.join(empty)}: say why it is not compared")
        return v


class ReadoutRegisters(_Strict):
    """The readout addresses of the quantities a test observes (declared per meter)."""

    serial: str = "C.1.0"
    energy_kwh: str = "1.8.0"
    credit: str = "C.50.0"  # electricity credit, kWh
    relay: str = "C.52.0"  # CLOSED / OPEN
    last_result: str = "C.53.0"  # last token result code
    krn: str = "C.54.0"
    kt: str = "C.54.1"
    ti: str = "C.54.2"
    ken: str = "C.54.3"
    mpl: str = "C.55.0"
    mppul: str = "C.55.1"  # phase power unbalance limit, W (meters that take the MPPUL token)
    tamper: str = "C.56.0"


class PortProfile(_Strict):
    """IEC 62056-21 optical port."""

    manufacturer_flag: str = Field(default="SLB", pattern=r"^[A-Za-z]{3}$")
    #: Highest baud character offered ('5' = 9600 baud).
    baud_char: Literal["0", "1", "2", "3", "4", "5", "6"] = "5"
    device_address: str = ""
    password: str = "00000000"
    #: Register a token is written to in programming mode (None: port cannot take tokens).
    token_register: str | None = "C.60.0"
    #: Where the readout shows each quantity (manufacturer-specific addresses).
    registers: ReadoutRegisters = Field(default_factory=lambda: ReadoutRegisters())


class CardSection(_Strict):
    """Magnetic token card layout. PROVISIONAL: the IEC 62055-51 layout is not public."""

    provisional: Literal[True] = True
    token_track: Literal[1, 2, 3] = 2
    prefix: str = ""
    suffix: str = ""
    field_separator: str = "="

    @model_validator(mode="after")
    def _fits(self) -> CardSection:
        self.card_profile()  # raises ValueError naming what does not fit
        return self

    def card_profile(self) -> CardLayout:
        """The card layout as SimLab's card writer and the harness's card driver use it."""
        return CardLayout(self.token_track, self.prefix, self.suffix, self.field_separator)


class TokenProcessing(_Strict):
    """The declared parameters of the token process (sts.meter.MeterParameters)."""

    tid_store_size: int = Field(default=50, ge=1, le=10_000)
    manufacture_tid: int = Field(default=0, ge=0, lt=1 << 24)
    mfr_code: int = Field(default=0, ge=0, le=9999)
    mfr_code_digits: Literal[2, 4] = 2
    supported_tests: tuple[int, ...] = (0, 1, 2, 3, 4, 6, 9)
    key_expiry: bool = True
    kt_changes: dict[int, tuple[int, ...]] = Field(
        default_factory=lambda: {0: (0, 1, 2, 3), 1: (1, 2, 3), 2: (1, 2, 3), 3: (1, 2, 3)}
    )
    services: tuple[int, ...] = (0,)
    credit_limit: int = Field(default=99_999_999, ge=1)
    currency_credit_limit: int = Field(default=99_999_999_999, ge=1)
    supports_mppul: bool = False
    supports_tariff_rate: bool = False
    supports_water_meter_factor: bool = False
    kct_kept_over_power_cycle: bool = False

    @field_validator("kt_changes")
    @classmethod
    def _key_types(cls, v: dict[int, tuple[int, ...]]) -> dict[int, tuple[int, ...]]:
        named = set(v) | {kt for kts in v.values() for kt in kts}
        bad = sorted(kt for kt in named if not 0 <= kt <= 3)
        if bad:
            raise ValueError(f"key types {bad} do not exist (KT is 0 to 3)")
        return v

    @field_validator("supported_tests")
    @classmethod
    def _tests(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        bad = [b for b in v if not 0 <= b <= 35]
        if bad:
            raise ValueError(f"control bit(s) {bad} are outside 0-35")
        return v

    @field_validator("services")
    @classmethod
    def _services(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        bad = [s for s in v if not 0 <= s <= 7]
        if bad:
            raise ValueError(f"service register(s) {bad} are outside 0-7")
        if 0 not in v:
            # The harness judges credit, the credit display and the load switch on the
            # electricity register (its rest state, kWh credit expectations, the low-credit
            # warning): a meter without one cannot be tested by this catalogue.
            raise ValueError(
                "service 0 (the electricity register) missing: stslab tests "
                "meters that keep electricity credit in register 0"
            )
        return v

    @model_validator(mode="after")
    def _mfr(self) -> TokenProcessing:
        if self.mfr_code >= 10**self.mfr_code_digits:
            raise ValueError(f"mfr_code {self.mfr_code} does not fit {self.mfr_code_digits} digits")
        return self

    def parameters(self) -> MeterParameters:
        return MeterParameters(
            tid_store_size=self.tid_store_size,
            mfr_code=self.mfr_code,
            mfr_code_digits=self.mfr_code_digits,
            supported_tests=sum(1 << b for b in set(self.supported_tests)),
            key_expiry=self.key_expiry,
            # Every key type has its entry: one the declaration does not list changes to none.
            kt_changes={kt: frozenset(self.kt_changes.get(kt, ())) for kt in range(4)},
            services=frozenset(self.services),
            credit_limit=self.credit_limit,
            currency_credit_limit=self.currency_credit_limit,
            supports_mppul=self.supports_mppul,
            supports_tariff_rate=self.supports_tariff_rate,
            supports_water_meter_factor=self.supports_water_meter_factor,
            kct_kept_over_power_cycle=self.kct_kept_over_power_cycle,
        )


Carrier = Literal["keypad", "port", "card"]


class MeterProfile(_Strict):
    """A meter model's declared parameters (one YAML file)."""

    profile_version: Literal[1] = 1
    name: str
    meter: MeterIdentity
    key: KeyProfile
    tokens: TokenProcessing = TokenProcessing()
    carriers: tuple[Carrier, ...] = ("keypad", "port", "card")
    keypad: KeypadProfile = KeypadProfile()
    display: DisplayProfile
    load_switch: LoadSwitchProfile = LoadSwitchProfile()
    port: PortProfile = PortProfile()
    card: CardSection = CardSection()
    twin: TwinSection = TwinSection()
    #: Rated maximum current of the meter (A): above it the plant cannot draw more.
    rated_current_a: Annotated[float, Field(gt=0)] = 80.0
    source: str = Field(default="<memory>", exclude=True)

    def vending_key(self) -> bytes:
        """The vending key (key files are found relative to the profile)."""
        known = self.source not in ("<memory>", "")
        base = Path(self.source).parent if known else None
        return self.key.vending_key_bytes(base, self.source if known else None)

    def decoder_key(self) -> DecoderKey:
        """The factory decoder key (derived; never stored in the profile)."""
        return derive_decoder_key(
            self.vending_key(),
            Dkga(int(self.key.dkga)),
            self.key.attributes(self.meter.pan_number()),
            legacy=self.key.legacy,
        )

    def key_fingerprint(self) -> str:
        return fingerprint(self.decoder_key().value)

    def layout_path(self) -> Path:
        ref = self.display.layout
        if ref.endswith((".yaml", ".yml")) or "/" in ref:
            path = Path(ref)
            if not path.is_absolute() and self.source not in ("<memory>", ""):
                path = Path(self.source).parent / path
            return path
        return Path(str(resources.files("dut").joinpath(PROFILE_DIR, f"{ref}.yaml")))

    # -- loading --------------------------------------------------------------------------

    @classmethod
    def from_yaml(cls, path: str | Path) -> MeterProfile:
        path = Path(path)
        try:
            text = decode_text(path.read_bytes(), str(path), "profile")
        except OSError as exc:
            raise ProfileError(f"{path}: cannot read: {exc.strerror}") from None
        except DocumentError as exc:
            raise ProfileError(str(exc)) from None
        return cls.parse_yaml(text, source=str(path))

    @classmethod
    def parse_yaml(cls, text: str, *, source: str = "<memory>") -> MeterProfile:
        try:
            profile = validate(cls, text, source, extra={"source": source})
        except DocumentError as exc:
            raise ProfileError(str(exc)) from None
        layout = profile.layout_path()
        if not layout.is_file():
            ref = profile.display.layout
            builtin = ref == layout.stem and not ref.endswith((".yaml", ".yml"))
            known = ", ".join(sorted(p.stem for p in layout.parent.glob("lcd_*.yaml")))
            problem = (f"{ref!r} is not a built-in layout ({known}) or a file" if builtin
                       else f"no layout file {layout}")  # fmt: skip
            raise ProfileError(f"{located(source, ('display', 'layout'), text)}: {problem}")
        return profile

    @classmethod
    def load(cls, ref: str | None) -> MeterProfile:
        """A profile from a YAML file path, or a built-in name (default: ``default``)."""
        if ref is None:
            return cls.builtin("default")
        if Path(ref).exists() or ref.endswith((".yaml", ".yml")):
            return cls.from_yaml(ref)
        return cls.builtin(ref)

    @classmethod
    def builtin(cls, name: str = "default") -> MeterProfile:
        """A profile shipped with SimLab: ``default``, ``ea11`` or ``ea09`` (a legacy meter)."""
        ref = resources.files("dut").joinpath(PROFILE_DIR, f"meter_{name}.yaml")
        if not ref.is_file():
            folder = Path(str(resources.files("dut").joinpath(PROFILE_DIR)))
            known = ", ".join(sorted(p.stem.removeprefix("meter_")
                                     for p in folder.glob("meter_*.yaml")))  # fmt: skip
            raise ProfileError(
                f"{name}: no such file, and no built-in meter profile {name!r} (known: {known})"
            )
        return cls.parse_yaml(ref.read_text(), source=str(ref))
