"""The DUT ledger: it survives the process, is written atomically, never hands out a TID
twice, models the meter's TID store, follows key changes, and carries one campaign's TIDs
into the next on the same meter."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from stslab.campaign import Outcome
from stslab.ledger import HeldSection, KeyState, Ledger, ledger_path, load_ledger
from stslab.session import Campaign, CampaignConfig
from tests.stslab.test_pack import CREDIT_SCENARIO, write_pack

KEY = KeyState(krn=1, kt=2, ti=1, sgc=123456, base_date=1993, ea="07", dkga="02",
               fingerprint="d32fa486")  # fmt: skip
FLOOR = 5_000_000


def new_ledger(directory: Path | None = None, serial: str = "SL100-000001") -> Ledger:
    path = ledger_path(directory, serial) if directory is not None else None
    return Ledger(serial=serial, pan="600727000000000009", key=KEY, store_floor=FLOOR, path=path)


def test_a_saved_ledger_loads_back_equal(tmp_path: Path) -> None:
    ledger = new_ledger(tmp_path)
    for _ in range(3):
        tid = ledger.next_tid()
        ledger.issue(tid)
        ledger.accepted_tid(tid, store_size=20)
    ledger.key_installed(replace(KEY, krn=2, ken=90, fingerprint="abcd"), rollover=False)
    loaded = load_ledger(ledger.path)
    assert loaded == ledger
    assert loaded.path == ledger.path
    assert loaded.previous_key == KEY
    assert loaded.key.krn == 2 and loaded.key.ken == 90
    assert loaded.accepted == [FLOOR + 1, FLOOR + 2, FLOOR + 3]
    assert loaded.tokens_issued == 3


def test_a_key_built_from_two_sets_loads_back_equal(tmp_path: Path) -> None:
    """The sets a combined key came from survive the file, so the key can be derived again."""
    ledger = new_ledger(tmp_path)
    first, second = replace(KEY, krn=2), replace(KEY, krn=3, ti=7)
    ledger.key_installed(replace(KEY, krn=2, ti=7, parts=((3, first), (4, second))), False)
    loaded = load_ledger(ledger.path)
    assert loaded == ledger
    assert loaded.key.parts == ((3, first), (4, second))


def test_the_key_change_sections_a_meter_keeps_load_back_equal(tmp_path: Path) -> None:
    """Held sections (one whose answer was unread has no set) survive the file, in subclass
    order, and a copy of the ledger does not share them."""
    ledger = new_ledger(tmp_path)
    second = HeldSection(4, replace(KEY, krn=2), rollover=True, digits="1" * 20)
    ledger.sections_held([second, HeldSection(3, None)])
    loaded = load_ledger(ledger.path)
    assert loaded == ledger
    assert loaded.held_sections == [HeldSection(3, None), second]
    assert loaded.held() == {3: HeldSection(3, None), 4: second}
    copy = loaded.copy()
    copy.held_sections.clear()
    assert loaded.held_sections == [HeldSection(3, None), second]


def test_no_ledger_file_is_no_ledger(tmp_path: Path) -> None:
    assert load_ledger(tmp_path / "absent.json") is None


def test_the_file_name_is_the_serial_made_safe(tmp_path: Path) -> None:
    assert ledger_path(tmp_path, "SL100-000001") == tmp_path / "SL100-000001.json"
    assert ledger_path(tmp_path, "../a b/c") == tmp_path / ".._a_b_c.json"


def test_the_ledger_never_holds_key_material(tmp_path: Path) -> None:
    ledger = new_ledger(tmp_path)
    ledger.save()
    data = json.loads(ledger.path.read_text())
    # parts: the attributes of the sets a combined key came from (attributes too).
    assert set(data["key"]) == {"krn", "kt", "ti", "sgc", "base_date", "ea", "dkga", "ken",
                                "fingerprint", "parts"}  # fmt: skip
    assert "abababababababab" not in ledger.path.read_text()


def test_every_save_is_atomic_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    ledger = new_ledger(tmp_path)
    for _ in range(25):
        ledger.issue(ledger.next_tid())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["SL100-000001.json"]
    assert load_ledger(ledger.path).last_tid == FLOOR + 25


def test_a_failed_save_keeps_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = new_ledger(tmp_path)
    ledger.issue(ledger.next_tid())
    before = ledger.path.read_bytes()

    def broken_dump(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("stslab.ledger.json.dump", broken_dump)
    with pytest.raises(OSError, match="disk full"):
        ledger.issue(ledger.next_tid())
    assert ledger.path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["SL100-000001.json"]


def test_next_tid_starts_above_the_store_floor_and_never_repeats(tmp_path: Path) -> None:
    ledger = new_ledger(tmp_path)
    assert ledger.next_tid() == FLOOR + 1
    assert ledger.next_tid() == FLOOR + 1  # asking is not issuing
    issued = []
    for _ in range(10):
        tid = ledger.next_tid()
        ledger.issue(tid)
        issued.append(tid)
    reloaded = load_ledger(ledger.path)
    for _ in range(10):
        tid = reloaded.next_tid()
        reloaded.issue(tid)
        issued.append(tid)
    assert issued == sorted(set(issued))
    assert issued == list(range(FLOOR + 1, FLOOR + 21))


def test_issuing_an_older_tid_does_not_move_the_sequence_back() -> None:
    ledger = new_ledger()
    ledger.issue(FLOOR + 100)
    ledger.issue(FLOOR + 3)  # e.g. an "absolute" TID issued on purpose
    assert ledger.last_tid == FLOOR + 100
    assert ledger.next_tid() == FLOOR + 101
    assert ledger.tokens_issued == 2


def test_next_tid_refuses_to_pass_the_kens_limit() -> None:
    from sts.errors import TokenExhaustedError

    ledger = new_ledger()
    ledger.key = replace(KEY, ken=(FLOOR >> 16) - 1)
    with pytest.raises(TokenExhaustedError, match="KEN"):
        ledger.next_tid()
    assert ledger.next_tid_unchecked() == FLOOR + 1


def test_store_min_follows_the_store_size() -> None:
    ledger = new_ledger()
    assert ledger.store_min(3) == FLOOR  # a new meter's store holds the manufacture TID
    for tid in (FLOOR + 10, FLOOR + 20):
        ledger.accepted_tid(tid, store_size=3)
    assert ledger.store_min(3) == FLOOR  # not full yet: the floor is still in it
    ledger.accepted_tid(FLOOR + 30, store_size=3)
    assert ledger.store_min(3) == FLOOR + 10  # full: the oldest accepted
    ledger.accepted_tid(FLOOR + 40, store_size=3)
    assert ledger.store_min(3) == FLOOR + 20
    assert ledger.accepted == [FLOOR + 20, FLOOR + 30, FLOOR + 40]  # only the store is kept


def test_store_min_is_the_smallest_stored_not_the_oldest() -> None:
    ledger = new_ledger()
    for tid in (FLOOR + 50, FLOOR + 20, FLOOR + 30):  # out-of-order TIDs are accepted too
        ledger.accepted_tid(tid, store_size=3)
    assert ledger.store_min(3) == FLOOR + 20


def test_a_key_change_keeps_the_tids_without_rollover(tmp_path: Path) -> None:
    ledger = new_ledger(tmp_path)
    ledger.issue(FLOOR + 7)
    ledger.accepted_tid(FLOOR + 7, store_size=20)
    new = replace(KEY, krn=2, fingerprint="f2")
    ledger.key_installed(new, rollover=False)
    assert (ledger.key, ledger.previous_key) == (new, KEY)
    assert ledger.last_tid == FLOOR + 7
    assert ledger.next_tid() == FLOOR + 8
    assert load_ledger(ledger.path).key == new


def test_a_key_change_to_the_key_installed_keeps_the_previous_key(tmp_path: Path) -> None:
    # A scenario run again after a crash installs the key its first run had installed.
    ledger = new_ledger(tmp_path)
    new = replace(KEY, krn=7, fingerprint="f7")
    ledger.key_installed(new, rollover=False)
    ledger.key_installed(new, rollover=False)
    assert (ledger.key, ledger.previous_key) == (new, KEY)
    assert load_ledger(ledger.path).previous_key == KEY


def test_a_rollover_key_change_resets_the_tids(tmp_path: Path) -> None:
    ledger = new_ledger(tmp_path)
    ledger.issue(FLOOR + 7)
    ledger.accepted_tid(FLOOR + 7, store_size=20)
    new = replace(KEY, krn=2, base_date=2014, fingerprint="f3")
    ledger.key_installed(new, rollover=True)
    assert ledger.previous_key == KEY
    assert ledger.last_tid is None
    assert ledger.accepted == []
    assert ledger.store_floor == 0
    assert ledger.next_tid() == 1
    reloaded = load_ledger(ledger.path)
    assert (reloaded.last_tid, reloaded.store_floor, reloaded.key) == (None, 0, new)


def test_a_copy_does_not_share_the_store() -> None:
    ledger = new_ledger()
    ledger.accepted_tid(FLOOR + 1, store_size=20)
    copy = ledger.copy()
    copy.accepted_tid(FLOOR + 2, store_size=20)
    assert ledger.accepted == [FLOOR + 1]


# --- two campaigns on one meter -----------------------------------------------------------


def _tids(campaign: Campaign) -> list[int]:
    return [
        step.action["token"]["tid"]
        for result in campaign.results
        for step in result.steps
        if "tid" in step.action.get("token", {})
    ]


def test_a_second_campaign_continues_from_the_first_campaigns_ledger(tmp_path: Path) -> None:
    pack = write_pack(tmp_path / "pack", {"a.yaml": CREDIT_SCENARIO})
    ledgers = tmp_path / "ledger"
    config = CampaignConfig(out=tmp_path / "runs", pack=pack, ledger_dir=ledgers, speed=5)
    tids = []
    for _ in range(2):
        with Campaign(replace(config)) as campaign:
            for scenario in campaign.pending():
                assert campaign.run_scenario(scenario).outcome is Outcome.PASS
            tids.append(_tids(campaign))
            campaign.finish()
    first, second = tids
    assert first and second
    assert min(second) > max(first)
    saved = load_ledger(ledger_path(ledgers, "SL100-000001"))
    assert saved.last_tid == max(second)
    assert saved.tokens_issued == len(first) + len(second)
    assert saved.accepted[-len(first) - len(second) :] == first + second
    # The run folders do not get a ledger of their own when one is given.
    assert not list((tmp_path / "runs").glob("*/ledger"))
