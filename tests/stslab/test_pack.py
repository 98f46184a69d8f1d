"""Scenario packs: the manifest and its signature catch every change, accredited mode refuses
anything but an untampered pack on a real bench, and ``stslab pack`` does the same on the
command line.

:func:`write_pack` (scenario YAML + :func:`stslab.pack.build_manifest`) is shared by the other
harness tests, which build small packs of their own instead of using the shipped catalogue.
"""

from __future__ import annotations

import hashlib
import json
import textwrap
import threading
from pathlib import Path

import pytest

from stslab.cli import main
from stslab.pack import (
    MANIFEST,
    SIGNATURE,
    PackError,
    build_manifest,
    generate_key,
    key_fingerprint,
    sign_pack,
    trusted_keys,
    verify_pack,
)
from stslab.scenario import STEP_KINDS, json_schema
from stslab.session import DEV_KEYS, Campaign, CampaignConfig, CampaignError

#: One credit token through the optical port (port entries are timed by the line, not by the
#: simulated clock, so they are quick and steady at any clock speed).
CREDIT_SCENARIO = """\
id: T-CREDIT-001
title: A credit token is accepted
group: TransferCredit
clauses: ["IEC 62055-41 TransferCredit"]
carrier: port
steps:
  - do: token
    token: {class: 0, subclass: 0, amount: 0.1}
    expect: {result: accept, credit: {change: 0.1}}
"""

#: Needs a carrier no SimLab meter has: SKIP without touching the bench.
NOT_APPLICABLE_SCENARIO = """\
id: T-SKIP-001
title: Needs a class-1 test nobody supports
group: InitiateMeterTest
clauses: ["IEC 62055-41 InitiateMeterTest"]
applies: {tests: [35]}
steps:
  - do: token
    token: {class: 1, subclass: 0, tests: [35]}
    expect: {result: accept}
"""


def write_pack(
    directory: Path, files: dict[str, str], pack_id: str = "test-pack", version: str = "1.0.0"
) -> Path:
    """A pack folder with ``files`` (name -> scenario YAML) and its manifest (unsigned)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(textwrap.dedent(text))
    build_manifest(directory, pack_id, version, ["IEC 62055-41:2018"], title="test pack")
    return directory


@pytest.fixture(scope="module")
def owner_key() -> tuple[str, str]:
    return generate_key()


@pytest.fixture
def signed_pack(tmp_path: Path, owner_key: tuple[str, str]) -> Path:
    pack = write_pack(
        tmp_path / "pack", {"a.yaml": CREDIT_SCENARIO, "b.yaml": NOT_APPLICABLE_SCENARIO}
    )
    sign_pack(pack, owner_key[0])
    return pack


def trusted(owner_key: tuple[str, str]) -> dict[str, str]:
    return {"owner": owner_key[1]}


# --- manifest and signature ---------------------------------------------------------------


def test_an_untouched_signed_pack_verifies(signed_pack: Path, owner_key: tuple[str, str]) -> None:
    status = verify_pack(signed_pack, trusted(owner_key))
    assert status.problems == []
    assert status.untampered
    assert status.signed and status.signature_valid
    assert status.signer == "owner"
    assert status.signer_fingerprint == key_fingerprint(owner_key[1])
    assert (status.pack_id, status.version, status.title) == ("test-pack", "1.0.0", "test pack")
    assert status.standards == ["IEC 62055-41:2018"]
    manifest = (signed_pack / MANIFEST).read_bytes()
    assert status.manifest_sha256 == hashlib.sha256(manifest).hexdigest()
    assert status.files == {
        name: hashlib.sha256((signed_pack / name).read_bytes()).hexdigest()
        for name in ("a.yaml", "b.yaml")
    }


def _verify(pack: Path, owner_key: tuple[str, str]) -> list[str]:
    status = verify_pack(pack, trusted(owner_key))
    assert not status.untampered
    return status.problems


def test_a_changed_file_is_a_problem(signed_pack: Path, owner_key: tuple[str, str]) -> None:
    path = signed_pack / "a.yaml"
    path.write_text(path.read_text().replace("amount: 0.1", "amount: 0.2"))
    assert _verify(signed_pack, owner_key) == ["a.yaml: does not match its SHA-256 in the manifest"]


def test_a_missing_file_is_a_problem(signed_pack: Path, owner_key: tuple[str, str]) -> None:
    (signed_pack / "b.yaml").unlink()
    assert _verify(signed_pack, owner_key) == ["b.yaml: listed in the manifest but missing"]


def test_an_extra_file_is_a_problem(signed_pack: Path, owner_key: tuple[str, str]) -> None:
    (signed_pack / "c.yaml").write_text(CREDIT_SCENARIO.replace("T-CREDIT-001", "T-CREDIT-002"))
    assert _verify(signed_pack, owner_key) == ["c.yaml: not listed in the manifest"]


def test_an_edited_manifest_breaks_the_signature(
    signed_pack: Path, owner_key: tuple[str, str]
) -> None:
    # Tamper with a file and "fix" its hash in the manifest: only the signature tells.
    path = signed_pack / "a.yaml"
    path.write_text(path.read_text().replace("amount: 0.1", "amount: 0.2"))
    manifest = signed_pack / MANIFEST
    old = hashlib.sha256(CREDIT_SCENARIO.encode()).hexdigest()
    new = hashlib.sha256(path.read_bytes()).hexdigest()
    assert old in manifest.read_text()
    manifest.write_text(manifest.read_text().replace(old, new))
    status = verify_pack(signed_pack, trusted(owner_key))
    assert status.problems == ["manifest signature does not verify with any trusted key"]
    assert status.signed and not status.signature_valid and not status.untampered
    assert status.signer is None


def test_a_signature_by_another_key_is_a_problem(
    signed_pack: Path, owner_key: tuple[str, str]
) -> None:
    sign_pack(signed_pack, generate_key()[0])
    assert _verify(signed_pack, owner_key) == [
        "manifest signature does not verify with any trusted key"
    ]


def test_a_garbled_signature_file_is_a_problem(
    signed_pack: Path, owner_key: tuple[str, str]
) -> None:
    (signed_pack / SIGNATURE).write_text("not hex at all\n")
    assert _verify(signed_pack, owner_key) == [
        "manifest signature does not verify with any trusted key"
    ]


def test_a_signature_without_trusted_keys_is_a_problem(signed_pack: Path) -> None:
    status = verify_pack(signed_pack, {})
    assert status.signed and not status.untampered
    assert status.problems == ["manifest signature does not verify with any trusted key"]


def test_an_unsigned_pack_is_a_problem(tmp_path: Path, owner_key: tuple[str, str]) -> None:
    pack = write_pack(tmp_path / "pack", {"a.yaml": CREDIT_SCENARIO})
    status = verify_pack(pack, trusted(owner_key))
    assert status.problems == ["the pack is not signed"]
    assert not status.signed and not status.untampered


def test_every_problem_is_listed_at_once(signed_pack: Path, owner_key: tuple[str, str]) -> None:
    (signed_pack / "a.yaml").write_text("changed\n")
    (signed_pack / "b.yaml").unlink()
    (signed_pack / "c.yaml").write_text("extra\n")
    (signed_pack / SIGNATURE).unlink()
    problems = _verify(signed_pack, owner_key)
    assert len(problems) == 4
    assert {p.split(":")[0] for p in problems[:3]} == {"a.yaml", "b.yaml", "c.yaml"}
    assert problems[3] == "the pack is not signed"


def test_a_new_manifest_removes_the_old_signature(signed_pack: Path) -> None:
    build_manifest(signed_pack, "test-pack", "1.0.1", [])
    assert not (signed_pack / SIGNATURE).exists()


def test_a_pack_without_scenario_files_gets_no_manifest(tmp_path: Path) -> None:
    with pytest.raises(PackError, match="no scenario files"):
        build_manifest(tmp_path, "empty", "1", [])
    assert not (tmp_path / MANIFEST).exists()


def test_a_folder_without_a_manifest_is_not_a_pack(tmp_path: Path) -> None:
    with pytest.raises(PackError, match="cannot read the manifest"):
        verify_pack(tmp_path)
    (tmp_path / MANIFEST).write_text("- just\n- a list\n")
    with pytest.raises(PackError, match=r"manifest\.yaml:1: \(top level\): expected a mapping"):
        verify_pack(tmp_path)


def test_only_an_ed25519_private_key_signs(tmp_path: Path, owner_key: tuple[str, str]) -> None:
    from Crypto.PublicKey import ECC

    pack = write_pack(tmp_path / "pack", {"a.yaml": CREDIT_SCENARIO})
    with pytest.raises(PackError, match="Ed25519 private key"):
        sign_pack(pack, owner_key[1])
    with pytest.raises(PackError, match="Ed25519 private key"):
        sign_pack(pack, ECC.generate(curve="P-256").export_key(format="PEM"))
    assert not (pack / SIGNATURE).exists()


def test_a_fingerprint_names_the_key_pair(owner_key: tuple[str, str]) -> None:
    private, public = owner_key
    assert key_fingerprint(private) == key_fingerprint(public)
    assert len(key_fingerprint(public)) == 16
    assert key_fingerprint(generate_key()[1]) != key_fingerprint(public)


def test_trusted_keys_are_the_public_pems_of_a_folder(
    tmp_path: Path, owner_key: tuple[str, str]
) -> None:
    (tmp_path / "owner.pub.pem").write_text(owner_key[1])
    (tmp_path / "owner.pem").write_text(owner_key[0])  # a private key is not a trusted key
    assert trusted_keys(tmp_path) == {"owner": owner_key[1]}
    assert trusted_keys(tmp_path / "absent") == {}


# --- accredited and pre-submission campaigns ----------------------------------------------


def _refusal(config: CampaignConfig) -> str:
    threads = threading.active_count()
    campaign = Campaign(config)
    with pytest.raises(CampaignError) as info:
        campaign.open()
    campaign.close()
    assert campaign._sim is None  # a SimLab started for the check is stopped again
    assert threading.active_count() <= threads
    return str(info.value)


def test_accredited_mode_refuses_a_tampered_pack(
    signed_pack: Path, tmp_path: Path, owner_key: tuple[str, str]
) -> None:
    (signed_pack / "owner.pub.pem").write_text(owner_key[1])
    key = signed_pack / "owner.pub.pem"
    path = signed_pack / "a.yaml"
    path.write_text(path.read_text().replace("amount: 0.1", "amount: 0.2"))
    out = tmp_path / "runs"
    message = _refusal(CampaignConfig(out=out, pack=signed_pack, mode="accredited",
                                      pack_keys=(key,)))  # fmt: skip
    assert "accredited mode refuses this scenario pack" in message
    assert "a.yaml: does not match its SHA-256" in message
    assert not out.exists()  # refused before any run folder exists


def test_accredited_mode_refuses_an_unsigned_pack(tmp_path: Path) -> None:
    pack = write_pack(tmp_path / "pack", {"a.yaml": CREDIT_SCENARIO})
    message = _refusal(CampaignConfig(out=tmp_path / "runs", pack=pack, mode="accredited"))
    assert "accredited mode refuses this scenario pack" in message
    assert "the pack is not signed" in message


def test_accredited_mode_does_not_trust_the_development_key(tmp_path: Path) -> None:
    pack = write_pack(tmp_path / "pack", {"a.yaml": CREDIT_SCENARIO})
    sign_pack(pack, (DEV_KEYS / "development.pem").read_text())
    message = _refusal(CampaignConfig(out=tmp_path / "runs", pack=pack, mode="accredited"))
    assert "does not verify with any trusted key" in message


@pytest.mark.parametrize("bench", ["sim", "virtual"])
def test_accredited_mode_refuses_simlab(
    signed_pack: Path, tmp_path: Path, owner_key: tuple[str, str], bench: str
) -> None:
    key = tmp_path / "owner.pub.pem"
    key.write_text(owner_key[1])
    out = tmp_path / "runs"
    message = _refusal(CampaignConfig(bench=bench, out=out, pack=signed_pack,
                                      mode="accredited", pack_keys=(key,)))  # fmt: skip
    assert message == "accredited mode needs a real bench, not SimLab"


def test_a_refused_accredited_campaign_leaves_no_run_folder(
    signed_pack: Path, tmp_path: Path, owner_key: tuple[str, str]
) -> None:
    key = tmp_path / "owner.pub.pem"
    key.write_text(owner_key[1])
    out = tmp_path / "runs"
    _refusal(CampaignConfig(out=out, pack=signed_pack, mode="accredited", pack_keys=(key,)))
    assert not out.exists() or not any(out.iterdir())


def test_a_campaign_on_a_folder_without_a_manifest_is_refused(tmp_path: Path) -> None:
    pack = tmp_path / "pack"
    pack.mkdir()
    (pack / "a.yaml").write_text(CREDIT_SCENARIO)
    message = _refusal(CampaignConfig(out=tmp_path / "runs", pack=pack))
    assert "manifest" in message


def test_pre_submission_runs_an_unsigned_pack_and_records_why_it_is_not_accredited(
    tmp_path: Path,
) -> None:
    pack = write_pack(tmp_path / "pack", {"b.yaml": NOT_APPLICABLE_SCENARIO})
    with Campaign(CampaignConfig(out=tmp_path / "runs", pack=pack)) as campaign:
        for scenario in campaign.pending():
            campaign.run_scenario(scenario)
        record = campaign.finish()
    assert "scenario pack: the pack is not signed" in record["deviations"]
    assert record["mode"] == "pre-submission"
    assert record["pack"]["untampered"] is False
    assert record["pack"]["signed"] is False
    assert record["pack"]["id"] == "test-pack"
    manifest = (pack / MANIFEST).read_bytes()
    assert record["pack"]["manifest_sha256"] == hashlib.sha256(manifest).hexdigest()


def test_pre_submission_names_a_development_key_signature(tmp_path: Path) -> None:
    pack = write_pack(tmp_path / "pack", {"b.yaml": NOT_APPLICABLE_SCENARIO})
    sign_pack(pack, (DEV_KEYS / "development.pem").read_text())
    with Campaign(CampaignConfig(out=tmp_path / "runs", pack=pack)) as campaign:
        record = campaign.finish()
    assert record["pack"]["signature_valid"] is True
    assert "development key" in record["pack"]["signer"]


# --- stslab pack ----------------------------------------------------------------------------


def test_pack_cli_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    private, public = keys / "owner.pem", keys / "owner.pub.pem"
    assert main(["pack", "keygen", str(private)]) == 0
    assert private.exists() and public.exists()
    assert private.stat().st_mode & 0o077 == 0
    assert key_fingerprint(private.read_text()) == key_fingerprint(public.read_text())

    pack = tmp_path / "pack"
    pack.mkdir()
    (pack / "a.yaml").write_text(CREDIT_SCENARIO)
    assert main(["pack", "manifest", str(pack), "--id", "mine", "--version", "2.1",
                 "--standard", "IEC 62055-41:2018", "--title", "My pack"]) == 0  # fmt: skip
    assert main(["pack", "sign", str(pack), "--key", str(private)]) == 0
    capsys.readouterr()
    assert main(["pack", "verify", str(pack), "--key", str(public)]) == 0
    out = capsys.readouterr().out
    assert "pack mine 2.1" in out
    assert "signature: valid" in out
    assert "problem" not in out

    (pack / "a.yaml").write_text(CREDIT_SCENARIO.replace("0.1", "0.3"))
    assert main(["pack", "verify", str(pack), "--key", str(public)]) == 1
    out = capsys.readouterr().out
    assert "problem: a.yaml: does not match its SHA-256 in the manifest" in out

    assert main(["pack", "verify", str(pack)]) == 1
    assert "signature: NOT valid" in capsys.readouterr().out


def test_pack_keygen_never_overwrites(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    private = tmp_path / "owner.pem"
    private.write_text("precious")
    assert main(["pack", "keygen", str(private)]) == 2
    assert "not overwritten" in capsys.readouterr().err
    assert private.read_text() == "precious"


def test_pack_cli_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pack", "verify", str(tmp_path)]) == 2
    assert "cannot read the manifest" in capsys.readouterr().err
    pack = write_pack(tmp_path / "pack", {"a.yaml": CREDIT_SCENARIO})
    assert main(["pack", "sign", str(pack), "--key", str(tmp_path / "absent.pem")]) == 2
    assert "--key" in capsys.readouterr().err
    assert not (pack / SIGNATURE).exists()


def test_pack_manifest_refuses_a_scenario_that_does_not_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pack = tmp_path / "pack"
    pack.mkdir()
    (pack / "a.yaml").write_text(CREDIT_SCENARIO.replace("amount: 0.1", "amount: 0.1, x: 1"))
    assert main(["pack", "manifest", str(pack), "--id", "p", "--version", "1"]) == 2
    err = capsys.readouterr().err
    assert f"{pack / 'a.yaml'}:8: scenario T-CREDIT-001 step 1: token.x: unknown key" in err
    assert not (pack / MANIFEST).exists()


def test_pack_schema_is_json_with_every_step_kind(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pack", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema == json.loads(json_schema())
    assert set(schema["required"]) == {"id", "title", "clauses", "group", "steps"}
    assert schema["properties"]["id"]["pattern"] == r"^[A-Z][A-Z0-9]*(-[A-Z0-9]+)+$"
    steps = schema["properties"]["steps"]["items"]
    assert steps["discriminator"]["propertyName"] == "do"
    kinds = steps["discriminator"]["mapping"]
    assert set(kinds) == STEP_KINDS
    for kind, ref in kinds.items():
        definition = schema["$defs"][ref.rsplit("/", 1)[1]]
        assert definition["properties"]["do"]["const"] == kind
        assert definition["additionalProperties"] is False
    token = schema["$defs"]["TokenSpec"]["properties"]
    assert {"class", "subclass", "amount", "tid", "key"} <= set(token)


def test_pack_schema_offers_only_keys_a_scenario_author_writes() -> None:
    schema = json.loads(json_schema())
    # The loader fills in where a scenario came from; a file cannot set it.
    assert "source_file" not in schema["properties"]
