"""A bad warehouse snapshot is refused with one line naming file, row, column and fix."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import pytest

from tierstream.engine.rules import load_rules
from tierstream.golive.load import LoadError, open_source
from tierstream.golive.warehouse import SnapshotError
from tierstream.testing.golive import started

AS_OF = "2026-03-31"
GOOD = {
    "balances": "customer_id,account_id,product,business_date,balance,observed_at\n"
    "C1,C1-D,deposit,2026-03-01,60000.00,2026-03-01T10:00:00+08:00\n"
    "C1,C1-L,loan,2026-03-15,100.5,\n"
    "C2,C2-D,wealth,2026-03-30,12.300,\n",
    "activity": "customer_id,business_date,txn_count,debit,credit,spend,external_outflow\n"
    "C1,2026-03-20,2,10.00,5.00,10.00,0\n",
    "customers": "customer_id,first_seen,last_activity,tier,tier_since,below_since,lifecycle\n"
    "C1,2026-03-01,2026-03-20,gold,2026-03-02T00:00:00+08:00,,new\n"
    "C2,2026-03-30,,,,,\n",
    "attributes": "customer_id,name,value,type,ts\nC1,high_end_card,true,bool,2026-03-01T00:00:00+08:00\n",
    "cooldowns": "customer_id,kind,key,last_day\nC1,opportunity,sunflower,2026-03-10\n",
}


def write(tmp_path: Path, **changes: str | None) -> Path:
    folder = tmp_path / "snap"
    folder.mkdir()
    for name, text in {**GOOD, **changes}.items():
        if text is not None:
            (folder / f"{name}.csv").write_text(text, "utf-8")
    return folder


def test_a_good_snapshot_starts_its_customers(tmp_path: Path) -> None:
    rules = load_rules("cmb")
    engine = started(rules, write(tmp_path), AS_OF)
    c1, c2 = engine.customers["C1"], engine.customers["C2"]
    assert rules.tier_ids[c1.tier] == "gold"  # the bank's tier, adopted
    assert engine.evaluator.getters["aum"](c1) == 6_000_000
    assert engine.evaluator.getters["avg_aum_30d"](c1) == 6_000_000  # 30 days of 60,000.00
    assert engine.evaluator.getters["aum"](c2) == 1230
    assert c1.attrs["high_end_card"][2] is True
    assert c1.opp_last == {2: engine.calendar.day_from_text("2026-03-10")}
    assert rules.tier_ids[c2.tier] == "standard"  # no tier given: the qualified one


def test_gzip_csv_and_a_missing_optional_file_are_fine(tmp_path: Path) -> None:
    folder = write(tmp_path, cooldowns=None)
    (folder / "balances.csv.gz").write_bytes(gzip.compress((folder / "balances.csv").read_bytes()))
    (folder / "balances.csv").unlink()
    assert len(started(load_rules("cmb"), folder, AS_OF).customers) == 2


CASES = [
    (
        {"balances": GOOD["balances"].replace("60000.00", "60000.001")},
        "balances.csv:2: column balance is '60000.001'",
    ),
    (
        {"balances": GOOD["balances"].replace("2026-03-30", "2026-02-30")},
        "balances.csv:4: column business_date is '2026-02-30'",
    ),
    (
        {"balances": GOOD["balances"].replace("wealth", "gold_bar")},
        "balances.csv:4: column product is 'gold_bar'",
    ),
    ({"balances": GOOD["balances"].replace("100.5", "-100.5")}, "balances.csv:3: a loan balance of -100.5"),
    (
        {"balances": GOOD["balances"].replace("2026-03-30", "2026-04-01")},
        "business_date 2026-04-01 is after the as-of day",
    ),
    ({"balances": GOOD["balances"].replace("+08:00\n", "\n", 1)}, "balances.csv:2: column observed_at"),
    (
        {"balances": GOOD["balances"].replace("2026-03-01T10", "2026-03-02T10")},
        "observed_at 2026-03-02T10:00:00+08:00 is not on business_date",
    ),
    (
        {"balances": GOOD["balances"] + "C1,C1-D,deposit,2026-03-01,1.00,\n"},
        "balances.csv:5: a second row for the same account and business_date",
    ),
    ({"balances": GOOD["balances"].replace("observed_at", "observed")}, "unknown column(s) observed"),
    ({"activity": GOOD["activity"].replace("txn_count,", "")}, "missing column(s) txn_count"),
    ({"activity": GOOD["activity"].replace(",2,", ",two,")}, "activity.csv:2: column txn_count is 'two'"),
    ({"activity": GOOD["activity"] + "C1,2026-03-21,1,1.00\n"}, "activity.csv: cannot be read"),
    (
        {"activity": GOOD["activity"].replace("C1,", "C9,")},
        "activity.csv:2: customer 'C9' is not in customers.csv",
    ),
    (
        {"customers": GOOD["customers"].replace(",gold,", ",platinum,")},
        "customers.csv:2: column tier is 'platinum'",
    ),
    (
        {"customers": GOOD["customers"] + "C1,2026-03-01,,,,,\n"},
        "customers.csv:4: customer 'C1' has a second row",
    ),
    (
        {"attributes": GOOD["attributes"].replace("true,bool", "yes,bool")},
        "attributes.csv:2: column value: 'yes' is not a bool",
    ),
    (
        {"cooldowns": GOOD["cooldowns"].replace("sunflower", "moon")},
        "cooldowns.csv:2: opportunity key 'moon'",
    ),
    ({"attributes": None}, "no attributes.csv"),
]


@pytest.mark.parametrize(("changes", "expected"), CASES, ids=[c[1][:40] for c in CASES])
def test_each_bad_snapshot_is_refused_naming_file_row_and_column(
    tmp_path: Path, changes: dict[str, str | None], expected: str
) -> None:
    with pytest.raises(SnapshotError) as refused:
        open_source(write(tmp_path, **changes), load_rules("cmb"), AS_OF)
    message = str(refused.value)
    assert expected in message
    assert "\n" not in message


def test_a_window_longer_than_the_history_given_is_a_warning(tmp_path: Path) -> None:
    """Rows that all start after a window's first day, with a customer seen before it: the
    export may be cut short, or nothing happened that early; the files cannot tell."""
    old = GOOD["customers"].replace("C2,2026-03-30", "C2,2025-01-01")
    source = open_source(write(tmp_path, customers=old, cooldowns=None), load_rules("ccb"), AS_OF)
    (warning,) = source.warnings
    assert "the rules read 365-day windows, so history should start by 2025-04-01" in warning
    assert "customers.csv:3" in warning and "\n" not in warning
    assert source.customers == 2  # it goes on: the days before count as 0
    (tmp_path / "b").mkdir()
    assert not open_source(write(tmp_path / "b"), load_rules("cmb"), AS_OF).warnings


def test_a_warehouse_snapshot_needs_its_day(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="needs --as-of DATE"):
        open_source(write(tmp_path), load_rules("cmb"), None)


def test_the_cli_refuses_in_one_line_and_writes_nothing(tmp_path: Path) -> None:
    folder = write(tmp_path, activity=GOOD["activity"].replace(",2,", ",two,"))
    events = tmp_path / "after.jsonl"
    events.write_text("")
    done = subprocess.run(
        [sys.executable, "-m", "tierstream.cli", "simulate", "--rules", "cmb", "--events", str(events),
         "--snapshot", str(folder), "--as-of", AS_OF, "--export", str(tmp_path / "state")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert (
        done.stderr.strip().count("\n") == 0
        and "activity.csv:2" in done.stderr
        and "Traceback" not in done.stderr
    )
    assert not (tmp_path / "state").exists()
