"""Meter profiles: the built-ins load, bad ones are refused naming file, key and line, and key
material comes only from where the rules allow."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dut.profile import MeterProfile, ProfileError
from simlab.bench import SimBench
from simlab.meter import create_meter
from simlab.plant import Plant
from sts.dkga import Dkga, derive_decoder_key
from sts.identity import Pan
from sts.keys import EncryptionAlgorithm
from sts.meter import Result
from sts.tokens import TransferCredit
from tests.simlab.meter_rig import MeterRig, SteppedClock, builtin_profile

DEFAULT = builtin_profile("default")
DEFAULT_TEXT = Path(DEFAULT.source).read_text()
PUBLIC_KEY = "abababababababab"
PRIVATE_KEY = "0123456789abcdef"  # not a public test key


def write(tmp_path: Path, text: str, name: str = "meter.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def edited(old: str, new: str, text: str = DEFAULT_TEXT) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def line_of(text: str, line_text: str) -> int:
    """1-based number of the line that reads ``line_text`` (surrounding blanks ignored)."""
    return next(n for n, line in enumerate(text.splitlines(), 1) if line.strip() == line_text)


# ---- built-ins ----------------------------------------------------------------------------


def test_both_built_in_profiles_load() -> None:
    default = MeterProfile.builtin("default")
    assert default.name == "simlab-sl100"
    assert default.key.ea == "07" and default.key.dkga == "02"
    assert default.decoder_key().ea is EncryptionAlgorithm.STA
    assert default.tokens.tid_store_size == 20
    ea11 = MeterProfile.builtin("ea11")
    assert ea11.name == "simlab-sl211"
    assert ea11.key.ea == "11" and ea11.key.dkga == "04"
    assert ea11.decoder_key().ea is EncryptionAlgorithm.MISTY1
    assert ea11.tokens.mfr_code_digits == 4
    assert ea11.display.layout == "lcd_6digit"
    assert default.key_fingerprint() != ea11.key_fingerprint()


def test_built_in_profiles_load_from_their_files_alike(tmp_path: Path) -> None:
    for name in ("default", "ea11", "ea09"):
        builtin = MeterProfile.builtin(name)
        copy = MeterProfile.from_yaml(write(tmp_path, Path(builtin.source).read_text()))
        assert copy.model_dump() == builtin.model_dump()
        assert copy.key_fingerprint() == builtin.key_fingerprint()


def test_the_legacy_built_in_is_an_ea09_meter_whose_key_expires() -> None:
    ea09 = MeterProfile.builtin("ea09")
    assert (ea09.key.ea, ea09.key.legacy, ea09.key.ken) == ("09", True, 254)
    assert ea09.decoder_key().ea is EncryptionAlgorithm.DEA


def test_a_key_type_the_profile_does_not_list_changes_to_none(tmp_path: Path) -> None:
    text = edited("  services: [0]", "  services: [0]\n  kt_changes: {2: [1, 2]}")
    changes = MeterProfile.from_yaml(write(tmp_path, text)).tokens.parameters().kt_changes
    assert changes == {0: frozenset(), 1: frozenset(), 2: frozenset({1, 2}), 3: frozenset()}


def test_an_unknown_built_in_is_refused_by_name() -> None:
    with pytest.raises(ProfileError, match="no built-in meter profile 'ea99'"):
        MeterProfile.builtin("ea99")


# ---- errors name file, key path and line ----------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "key", "message"),
    [
        ("  tid_store_size: 20", "  tid_store_size: 0", "tokens.tid_store_size", "greater than"),
        ("  krn: 1", "  krn: 12", "key.krn", "less than or equal to 9"),
        ("  entry_timeout_s: 30", "  entry_timout_s: 30", "keypad.entry_timout_s", "unknown key"),
        ('    13: "rEJ 13"\n', "", "display.vocabulary", "no text for result code(s) [13]"),
        ("  baud_char: \"5\"", "  baud_char: \"9\"", "port.baud_char", "'0'"),
        ("  supported_tests: [0, 1, 2, 3, 4, 6, 9]", "  supported_tests: [0, 40]",
         "tokens.supported_tests", "outside 0-35"),
        ('  pan: "600727000000000009"', '  pan: "600727000000000008"', "meter.pan", ""),
        ("  key_expiry: true", "  kt_changes: {2: [1, 2, 5]}", "tokens.kt_changes",
         "key types [5] do not exist"),
        ("  services: [0]", "  services: [4]", "tokens.services",
         "service 0 (the electricity register) missing"),
    ],
)  # fmt: skip
def test_a_bad_profile_names_file_key_path_and_line(
    tmp_path: Path, old: str, new: str, key: str, message: str
) -> None:
    text = edited(old, new)
    path = write(tmp_path, text)
    with pytest.raises(ProfileError) as caught:
        MeterProfile.from_yaml(path)
    error = str(caught.value)
    line = line_of(text, new.strip()) if new else line_of(text, "vocabulary:")
    assert error.startswith(f"{path}:{line}: {key}: "), error
    assert message in error


def test_every_problem_in_a_profile_is_reported(tmp_path: Path) -> None:
    text = edited("  krn: 1", "  krn: 12", edited("  tid_store_size: 20", "  tid_store_size: 0"))
    with pytest.raises(ProfileError) as caught:
        MeterProfile.from_yaml(write(tmp_path, text))
    lines = str(caught.value).splitlines()
    assert len(lines) == 2
    assert any(": key.krn: " in line for line in lines)
    assert any(": tokens.tid_store_size: " in line for line in lines)


def test_a_profile_that_is_not_yaml_names_the_line(tmp_path: Path) -> None:
    text = edited('  serial: "SL100-000001"', "  serial: [unclosed")
    path = write(tmp_path, text)
    with pytest.raises(
        ProfileError, match=rf"^{re.escape(str(path))}:\d+: meter\.serial: not valid YAML"
    ) as caught:
        MeterProfile.from_yaml(path)
    line = int(str(caught.value)[len(str(path)) + 1 :].split(":")[0])
    assert abs(line - line_of(text, "serial: [unclosed")) <= 1


def test_a_missing_profile_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"nowhere\.yaml: cannot read"):
        MeterProfile.from_yaml(tmp_path / "nowhere.yaml")


def test_a_profile_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="mapping"):
        MeterProfile.from_yaml(write(tmp_path, "- just\n- a list\n"))


# ---- key material ---------------------------------------------------------------------------


def test_an_inline_vending_key_that_is_not_a_public_test_key_is_refused(tmp_path: Path) -> None:
    text = edited(f"  vending_key: {PUBLIC_KEY}", f"  vending_key: {PRIVATE_KEY}")
    path = write(tmp_path, text)
    with pytest.raises(ProfileError) as caught:
        MeterProfile.from_yaml(path)
    error = str(caught.value)
    assert error.startswith(f"{path}:{line_of(text, 'key:')}: key: "), error
    assert "vending_key_file" in error and "vending_key_env" in error
    assert PRIVATE_KEY not in error  # a secret never reaches a message


def key_source(source: str) -> str:
    return edited(f"  vending_key: {PUBLIC_KEY}        # public STS compliance-test key", source)


def credit_token_accepted(profile: MeterProfile, key_hex: str) -> bool:
    """Whether the meter built from ``profile`` takes a token minted under ``key_hex``."""
    rig = MeterRig(profile)
    key = derive_decoder_key(
        bytes.fromhex(key_hex), Dkga.DKGA02, profile.key.attributes(profile.meter.pan)
    )
    return rig.enter(rig.mint(TransferCredit(0, rig.next_tid(), 10), key)) is Result.ACCEPT


def test_vending_key_env_reads_the_key_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, key_source("  vending_key_env: SIMLAB_TEST_VK"))
    monkeypatch.setenv("SIMLAB_TEST_VK", PRIVATE_KEY)
    profile = MeterProfile.from_yaml(path)
    assert PRIVATE_KEY not in path.read_text()
    assert profile.key_fingerprint() != DEFAULT.key_fingerprint()
    assert credit_token_accepted(profile, PRIVATE_KEY)
    assert not credit_token_accepted(profile, PUBLIC_KEY)
    monkeypatch.setenv("SIMLAB_TEST_VK", PUBLIC_KEY)
    assert profile.key_fingerprint() == DEFAULT.key_fingerprint()


def test_an_unset_vending_key_env_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIMLAB_TEST_VK", raising=False)
    profile = MeterProfile.from_yaml(
        write(tmp_path, key_source("  vending_key_env: SIMLAB_TEST_VK"))
    )
    with pytest.raises(ProfileError, match=r"key.vending_key_env: \$SIMLAB_TEST_VK is not set"):
        profile.decoder_key()


def test_vending_key_file_is_read_relative_to_the_profile(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "vk.hex").write_text(PRIVATE_KEY + "\n")
    profile = MeterProfile.from_yaml(write(tmp_path, key_source("  vending_key_file: keys/vk.hex")))
    assert credit_token_accepted(profile, PRIVATE_KEY)
    (tmp_path / "keys" / "vk.hex").unlink()
    with pytest.raises(ProfileError, match=r"key.vending_key_file: cannot read .*vk.hex"):
        profile.decoder_key()


def test_a_malformed_key_in_a_key_file_is_refused_without_showing_it(tmp_path: Path) -> None:
    (tmp_path / "vk.hex").write_text("0123456789abcdeX")
    profile = MeterProfile.from_yaml(write(tmp_path, key_source("  vending_key_file: vk.hex")))
    with pytest.raises(
        ProfileError, match=r":\d+: key\.vending_key_file: .*vk\.hex: key is not hexadecimal"
    ) as caught:
        profile.decoder_key()
    assert "0123456789abcdeX" not in str(caught.value)


def test_exactly_one_key_source_is_allowed(tmp_path: Path) -> None:
    text = edited(
        f"  vending_key: {PUBLIC_KEY}",
        f"  vending_key: {PUBLIC_KEY}\n  vending_key_env: SIMLAB_TEST_VK",
    )
    with pytest.raises(ProfileError, match="exactly one of"):
        MeterProfile.from_yaml(write(tmp_path, text))


# ---- the display vocabulary must fit the LCD ------------------------------------------------


def test_a_vocabulary_text_the_lcd_cannot_show_is_refused_naming_the_key(tmp_path: Path) -> None:
    profile = MeterProfile.from_yaml(write(tmp_path, edited('13: "rEJ 13"', '13: "WrOng"')))
    bench = SimBench(profile, speed=100.0)
    with pytest.raises(ValueError) as caught:
        bench.start()
    error = str(caught.value)
    assert "display.vocabulary.13" in error
    assert "'W'" in error
    assert not bench.running


def test_a_vocabulary_text_too_long_for_the_lcd_is_refused(tmp_path: Path) -> None:
    ea11_text = Path(builtin_profile("ea11").source).read_text()
    text = edited('1: "Good"', '1: "AccEPtEd"', ea11_text)  # 8 cells on a 6-digit LCD
    profile = MeterProfile.from_yaml(write(tmp_path, text))
    with pytest.raises(ValueError, match=r"display\.vocabulary\.1: 'AccEPtEd'.*6"):
        create_meter(profile, Plant(SteppedClock()))


def test_built_in_vocabularies_read_back_from_the_lcd() -> None:
    from simlab.lcd import DisplayState

    for name in ("default", "ea11"):
        profile = builtin_profile(name)
        meter = create_meter(profile, Plant(SteppedClock()))
        for code, text in profile.display.vocabulary.items():
            lit = DisplayState(text).segments(meter.layout)
            shown = DisplayState.from_segments(meter.layout, lit).text
            assert shown == text.strip().replace("S", "5").replace("O", "0"), (name, code)


# ---- an engineering sample whose PAN carries a wrong check digit ------------------------------

SAMPLE_PAN = "600727123456789012"  # its check digit 2 should be 4, its DRN's 1 should be 3


def test_a_wrong_check_digit_is_refused_pointing_at_the_key_that_accepts_it(
    tmp_path: Path,
) -> None:
    text = edited('  pan: "600727000000000009"', f'  pan: "{SAMPLE_PAN}"')
    path = write(tmp_path, text)
    with pytest.raises(ProfileError) as caught:
        MeterProfile.from_yaml(path)
    error = str(caught.value)
    line = line_of(text, f'pan: "{SAMPLE_PAN}"')
    assert error.startswith(f"{path}:{line}: meter.pan: "), error
    assert "PAN check digit 2, expected 4; DRN check digit 1, expected 3" in error
    assert "meter.pan_check_digit: relaxed" in error


def test_a_relaxed_profile_keeps_the_pan_as_given_and_derives_its_key_from_it(
    tmp_path: Path,
) -> None:
    text = edited('  pan: "600727000000000009"',
                  f'  pan: "{SAMPLE_PAN}"\n  pan_check_digit: relaxed')  # fmt: skip
    profile = MeterProfile.from_yaml(write(tmp_path, text))
    assert profile.meter.pan == SAMPLE_PAN
    assert profile.meter.pan_number().digits == SAMPLE_PAN
    assert profile.meter.check_digit_note() == (
        "relaxed (PAN check digit 2, expected 4; DRN check digit 1, expected 3)"
    )
    attrs = profile.key.attributes(Pan(SAMPLE_PAN))  # the 18 digits, not parsed or corrected
    expected = derive_decoder_key(bytes.fromhex(PUBLIC_KEY), Dkga.DKGA02, attrs)
    assert profile.decoder_key() == expected
    assert profile.key_fingerprint() != DEFAULT.key_fingerprint()
    assert DEFAULT.meter.check_digit_note() is None  # strict, the default: nothing to say


def test_pan_check_digit_takes_strict_or_relaxed_only(tmp_path: Path) -> None:
    text = edited('  pan: "600727000000000009"',
                  '  pan: "600727000000000009"\n  pan_check_digit: lenient')  # fmt: skip
    path = write(tmp_path, text)
    with pytest.raises(ProfileError) as caught:
        MeterProfile.from_yaml(path)
    assert str(caught.value).startswith(
        f"{path}:{line_of(text, 'pan_check_digit: lenient')}: meter.pan_check_digit: "
    )
