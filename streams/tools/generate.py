"""A synthetic retail bank as an event stream (SPEC §2 input events), for tests and demos.

The stream is deterministic for a seed, in time order, and streamed: memory does
not grow with the number of days, and per customer it is a handful of `array`
columns (about 76 bytes, no Python objects) plus 8 bytes per event planned for the
current day. A day is planned as packed integer keys
`(second << 40) | (customer << 8) | kind` in per-minute buckets, which are sorted
and turned into events one minute at a time; no event list is ever built.

Two passes per day keep it fast and ordered:
- *plan*: for every customer, decide which kinds of events happen today and when
  (persona rates, paydays, statement days, revaluations);
- *post*: walk the keys in time order, draw amounts and update the running
  balances, so `balance_after` is always the account's true running balance.
A posting may schedule a follow-up later the same day (an end-of-day snapshot
after a transaction that omitted `balance_after`, a churner's transfer out after
a redemption).

Randomness: a customer's persona and opening position come from its own RNG seeded
with the string f"{seed}:{index}" (stable across runs and customer counts); daily
activity comes from one RNG for the run; noise and lateness have their own RNGs,
so `noise=True` / `late=True` overlay the same base stream instead of changing it.
Amounts are integer fen throughout (a few draws go through floats, then become
whole fen before any arithmetic on balances).
"""

from __future__ import annotations

import heapq
import json
import math
import random
from array import array
from collections.abc import Callable, Iterable, Iterator
from datetime import date, timedelta
from typing import Any, TextIO

from ..contract import BALANCES, PROFILES, TRANSACTIONS

__all__ = ["PERSONAS", "generate_events", "write_events"]

DEFAULT_START = date(2026, 1, 1)

#: Counterparty bank codes; every one but the home bank counts as another bank.
BANKS = ("CMB", "ICBC", "BOC", "ABC", "CCB", "BOCOM", "PSBC", "CIB", "SPDB", "CITIC", "PAB")

_OFFSET = 8 * 3600  # Asia/Shanghai, no daylight saving
_LOCAL_SUFFIX = "+08:00"
_Z_SHARE = 0.05  # timestamps written as the same instant in UTC
_OPENING_SECONDS = 1800  # day 0 opens with every customer's profile and balances

# --- personas --------------------------------------------------------------------------
MASS, SALARIED, GROWER, AFFLUENT, WEALTH, HNW, BORROWER, SPENDER, DORMANT, CHURNER = range(10)
#: name and share of customers, in persona-code order.
PERSONAS: tuple[tuple[str, float], ...] = (
    ("mass", 0.43),
    ("salaried", 0.20),
    ("grower", 0.06),
    ("affluent", 0.11),
    ("wealth", 0.035),
    ("hnw", 0.004),
    ("borrower", 0.06),
    ("spender", 0.04),
    ("dormant", 0.04),
    ("churner", 0.021),
)
_CUM_SHARES = tuple(sum(s for _, s in PERSONAS[: k + 1]) for k in range(len(PERSONAS)))
_SEGMENTS = (
    "mass",
    "payroll",
    "emerging_affluent",
    "affluent",
    "wealth",
    "private",
    "mortgage",
    "card_active",
    "mass",
    "affluent",
)

# --- account flags (per customer, array 'H') ------------------------------------------
HAS_TD, HAS_WM, HAS_FUND, HAS_INS, HAS_LOAN, HAS_CARD = 1, 2, 4, 8, 16, 32
OVERDRAFT, USD_WM, SALARY, SMS_FEE = 64, 128, 256, 512

# --- event kinds (low byte of a planned key) -------------------------------------------
(
    K_POS,
    K_ATM,
    K_XOUT,
    K_XIN,
    K_BRANCH,
    K_SALARY,
    K_INTEREST,
    K_FEE,
    K_EOD,
    K_STMT,
    K_FUND,
    K_WEALTH,
    K_LOAN,
    K_CSTMT,
    K_CREPAY,
    K_BUY,
    K_REDEEM,
    K_CHURN,
    K_BIGIN,
    K_WAKE,
    K_PROFILE,
) = range(1, 22)
_KINDS = 22  # kind 0 is unused

_CUSTOMER_BITS = 32
_CUSTOMER_MASK = (1 << _CUSTOMER_BITS) - 1
_SEC_SHIFT = _CUSTOMER_BITS + 8


def _hour_table(weights: tuple[float, ...]) -> tuple[int, ...]:
    """256 hour-start seconds, drawn uniformly, so hours come up in proportion to `weights`."""
    total = sum(weights)
    table: list[int] = []
    acc = 0.0
    for hour, w in enumerate(weights):
        acc += w
        while len(table) < round(256 * acc / total):
            table.append(hour * 3600)
    return tuple(table)


# Hour-of-day profiles: card spend peaks at lunch and evening; app transfers in office
# hours and evenings; branches keep office hours.
_H_POS = _hour_table(
    (
        0.4,
        0.2,
        0.1,
        0.1,
        0.1,
        0.2,
        0.6,
        1.6,
        2.6,
        2.2,
        2.8,
        4.2,
        5.0,
        3.6,
        3.0,
        3.0,
        3.4,
        4.4,
        6.0,
        6.6,
        6.0,
        5.0,
        3.0,
        1.2,
    )
)
_H_APP = _hour_table(
    (
        0.3,
        0.2,
        0.1,
        0.1,
        0.1,
        0.2,
        0.5,
        1.5,
        3.0,
        4.0,
        4.0,
        3.5,
        3.0,
        3.0,
        3.5,
        3.5,
        3.5,
        3.0,
        3.0,
        3.5,
        4.0,
        4.0,
        3.0,
        1.0,
    )
)
_H_ATM = _hour_table(
    (
        0.2,
        0.1,
        0.05,
        0.05,
        0.05,
        0.1,
        0.4,
        1.5,
        2.5,
        2.5,
        2.5,
        3.0,
        3.5,
        3.0,
        2.5,
        2.5,
        3.0,
        3.5,
        4.0,
        4.0,
        3.5,
        2.5,
        1.5,
        0.6,
    )
)
_H_BRANCH = _hour_table((0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 4, 4, 2, 2, 4, 4, 3, 0, 0, 0, 0, 0, 0, 0))

# Discretionary activity per persona: (kind, events per day at tempo 1, hour table).
_Rates = tuple[tuple[int, float, tuple[int, ...]], ...]
_BASE: _Rates = (
    (K_POS, 0.8, _H_POS),
    (K_ATM, 0.04, _H_ATM),
    (K_XOUT, 0.15, _H_APP),
    (K_XIN, 0.04, _H_APP),
    (K_BRANCH, 0.01, _H_BRANCH),
    (K_EOD, 0.1, _H_APP),
)
_RATES: tuple[_Rates, ...] = (
    _BASE,  # mass (no-salary customers get extra K_XIN below)
    (
        (K_POS, 1.1, _H_POS),
        (K_ATM, 0.03, _H_ATM),
        (K_XOUT, 0.25, _H_APP),
        (K_XIN, 0.05, _H_APP),
        (K_EOD, 0.15, _H_APP),
        (K_BUY, 0.03, _H_APP),
    ),
    (
        (K_POS, 0.6, _H_POS),
        (K_XOUT, 0.1, _H_APP),
        (K_XIN, 0.1, _H_APP),
        (K_EOD, 0.2, _H_APP),
        (K_BUY, 0.04, _H_APP),
    ),
    (
        (K_POS, 1.0, _H_POS),
        (K_XOUT, 0.25, _H_APP),
        (K_XIN, 0.08, _H_APP),
        (K_EOD, 0.2, _H_APP),
        (K_BUY, 0.05, _H_APP),
        (K_REDEEM, 0.02, _H_APP),
        (K_BRANCH, 0.01, _H_BRANCH),
    ),
    (
        (K_POS, 1.0, _H_POS),
        (K_XOUT, 0.3, _H_APP),
        (K_XIN, 0.1, _H_APP),
        (K_EOD, 0.2, _H_APP),
        (K_BUY, 0.06, _H_APP),
        (K_REDEEM, 0.03, _H_APP),
        (K_BRANCH, 0.02, _H_BRANCH),
    ),
    (
        (K_POS, 1.2, _H_POS),
        (K_XOUT, 0.4, _H_APP),
        (K_XIN, 0.15, _H_APP),
        (K_EOD, 0.3, _H_APP),
        (K_BUY, 0.08, _H_APP),
        (K_REDEEM, 0.05, _H_APP),
        (K_BRANCH, 0.03, _H_BRANCH),
    ),
    (
        (K_POS, 1.0, _H_POS),
        (K_ATM, 0.03, _H_ATM),
        (K_XOUT, 0.2, _H_APP),
        (K_XIN, 0.03, _H_APP),
        (K_EOD, 0.15, _H_APP),
    ),
    ((K_POS, 3.0, _H_POS), (K_XOUT, 0.2, _H_APP), (K_XIN, 0.05, _H_APP), (K_EOD, 0.1, _H_APP)),
    (),  # dormant: nothing customer-initiated
    (
        (K_POS, 1.0, _H_POS),
        (K_XOUT, 0.25, _H_APP),
        (K_XIN, 0.08, _H_APP),
        (K_EOD, 0.2, _H_APP),
        (K_BUY, 0.04, _H_APP),
    ),  # churner before it leaves: an affluent customer
)
_MASS_NO_SALARY: _Rates = ((K_XIN, 0.15, _H_APP),)
_CHURNING: _Rates = ((K_POS, 0.4, _H_POS), (K_REDEEM, 0.5, _H_APP), (K_CHURN, 0.7, _H_APP))
_CHURNED: _Rates = ((K_POS, 0.1, _H_POS), (K_XOUT, 0.03, _H_APP))
#: share of monthly income spent at POS, per persona, spread over its POS rate.
_POS_SHARE = (0.35, 0.30, 0.15, 0.15, 0.08, 0.04, 0.25, 0.6, 0.1, 0.15)
_POS_MEAN = tuple(
    share / (30 * max(r, 0.1))
    for share, r in zip(_POS_SHARE, (0.8, 1.1, 0.6, 1.0, 1.0, 1.2, 1.0, 3.0, 0.1, 1.0), strict=True)
)
_CARD_SHARE = (0.5, 0.5, 0.4, 0.6, 0.6, 0.7, 0.5, 0.9, 0.5, 0.5)
_ATM_NOTES = (10000, 20000, 30000, 50000, 50000, 100000, 100000, 200000, 200000, 300000)


def _money(fen: int) -> str:
    """Integer fen as a decimal string with exactly two decimals."""
    if fen < 0:
        return "-" + _money(-fen)
    yuan, cents = divmod(fen, 100)
    return f"{yuan}.{cents:02d}"


def _log_uniform(rng: random.Random, lo: float, hi: float) -> int:
    """A whole number of fen between lo and hi yuan, spread evenly on a log scale."""
    return int(math.exp(rng.uniform(math.log(lo), math.log(hi))) * 100)


_HMS: list[str] = []


def _hms() -> list[str]:
    """'HH:MM:SS' for every second of a day, built once: formatting per event is slow."""
    if not _HMS:
        _HMS.extend(f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60))
    return _HMS


class _Bank:
    """Per-customer columns and the two daily passes (plan, post)."""

    def __init__(self, customers: int, days: int, seed: int, start: date, home_bank: str, usd: bool) -> None:
        if customers < 1 or days < 1:
            raise ValueError("customers and days must be at least 1")
        if customers > _CUSTOMER_MASK:
            raise ValueError(f"at most {_CUSTOMER_MASK:,} customers")
        n = customers
        self.n, self.days, self.seed, self.start = n, days, seed, start
        self.home, self.usd = home_bank, usd
        self.others = tuple(b for b in BANKS if b != home_bank)
        self.rng = random.Random(f"{seed}:main")
        self.persona = array("B", bytes(n))
        self.flags = array("H", bytes(2 * n))
        self.tempo = array("B", bytes(n))  # activity multiplier × 16
        self.anchor = array("B", bytes(n))  # payday, 1..28; card and loan days derive from it
        self.eday = array("H", bytes(2 * n))  # grower inflow / churn start / dormant wake-up
        self.income = array("i", bytes(4 * n))  # monthly inflow, fen (at most 21 million yuan)
        self.loan_pay = array("i", bytes(4 * n))  # monthly instalment, fen
        self.seq = array("I", bytes(4 * n))  # events so far, for event ids
        self.dep = array("q", bytes(8 * n))
        self.td = array("q", bytes(8 * n))
        self.wm = array("q", bytes(8 * n))  # in USD cents when the customer's flags have USD_WM
        self.fund = array("q", bytes(8 * n))
        self.ins = array("q", bytes(8 * n))
        self.loan = array("q", bytes(8 * n))
        self.card = array("q", bytes(8 * n))
        self.eod_pending = bytearray(n)
        self.buckets = [array("q") for _ in range(1440)]
        self.hms = _hms()
        self.out: list[tuple[int, dict[str, Any]]] = []
        # the day being posted
        self.day = 0
        self.date = start
        self.t0 = 0  # epoch seconds of local midnight
        self.prefix = self.utc_prefix = self.utc_prev_prefix = ""
        self.minute = 0
        self.t = 0
        self.ts = ""
        self.handlers: list[Callable[[int], None]] = [self._noop] * _KINDS
        for kind, fn in (
            (K_POS, self._pos),
            (K_ATM, self._atm),
            (K_XOUT, self._xout),
            (K_XIN, self._xin),
            (K_BRANCH, self._branch),
            (K_SALARY, self._salary),
            (K_INTEREST, self._interest),
            (K_FEE, self._fee),
            (K_EOD, self._eod),
            (K_STMT, self._stmt),
            (K_FUND, self._fund),
            (K_WEALTH, self._wealth),
            (K_LOAN, self._loan),
            (K_CSTMT, self._card_stmt),
            (K_CREPAY, self._card_repay),
            (K_BUY, self._buy),
            (K_REDEEM, self._redeem),
            (K_CHURN, self._churn),
            (K_BIGIN, self._big_in),
            (K_WAKE, self._wake),
            (K_PROFILE, self._profile),
        ):
            self.handlers[kind] = fn

    # --- the run ---------------------------------------------------------------------------
    def events(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """(epoch second, line) pairs in time order."""
        block = 512
        for d in range(self.days):
            self._begin_day(d)
            if d == 0:
                # Opening positions go out while customers are created, spread over
                # 00:00-00:30 in customer order, so the first lines come at once.
                for lo in range(0, self.n, block):
                    hi = min(lo + block, self.n)
                    for i in range(lo, hi):
                        self._open(i)
                    yield from self.out
                    self.out.clear()
                    self._plan(lo, hi)
            else:
                self._plan(0, self.n)
            yield from self._post()

    def _begin_day(self, d: int) -> None:
        day = self.start + timedelta(days=d)
        self.day = d
        self.date = day
        self.t0 = (day - date(1970, 1, 1)).days * 86400 - _OFFSET
        self.prefix = day.isoformat() + "T"
        self.utc_prefix = self.prefix
        self.utc_prev_prefix = (day - timedelta(days=1)).isoformat() + "T"

    def _stamp(self, sec: int) -> None:
        """Set the instant and its wire text for the events being posted."""
        self.t = self.t0 + sec
        if self.rng.random() < _Z_SHARE:
            u = sec - _OFFSET
            if u >= 0:
                self.ts = self.utc_prefix + self.hms[u] + "Z"
            else:
                self.ts = self.utc_prev_prefix + self.hms[u + 86400] + "Z"
        else:
            self.ts = self.prefix + self.hms[sec] + _LOCAL_SUFFIX

    # --- customers -------------------------------------------------------------------------
    def _open(self, i: int) -> None:
        """Create customer i from its own RNG and post its profile and opening balances."""
        r = random.Random(f"{self.seed}:{i}")
        u = r.random()
        p = 0
        while p < len(_CUM_SHARES) - 1 and u >= _CUM_SHARES[p]:
            p += 1
        self.persona[i] = p
        self.tempo[i] = int(16 * math.exp(r.uniform(math.log(0.5), math.log(2.2))))
        self.anchor[i] = r.randint(1, 28)
        flags = 0
        days = self.days
        income = dep = 0
        aum = 0
        if p == MASS:
            if r.random() < 0.6:
                flags |= SALARY
                income = _log_uniform(r, 3000, 9000)
            else:
                income = _log_uniform(r, 1500, 6000)
            dep = _log_uniform(r, 200, 30000)
        elif p == SALARIED:
            flags |= SALARY
            income = _log_uniform(r, 6000, 35000)
            dep = _log_uniform(r, 5000, 60000)
        elif p == GROWER:
            flags |= SALARY
            income = _log_uniform(r, 12000, 40000)
            if r.random() < 0.65:
                dep = _log_uniform(r, 15000, 42000)
            else:
                aum = _log_uniform(r, 200000, 420000)
                flags |= HAS_WM
            self.eday[i] = min(int(days * r.uniform(0.1, 0.7)), 65535)
        elif p in (AFFLUENT, WEALTH, HNW, CHURNER):
            lo, hi, inc_lo, inc_hi = {
                AFFLUENT: (100000, 600000, 20000, 80000),
                WEALTH: (500000, 5000000, 40000, 200000),
                HNW: (5000000, 20000000, 150000, 800000),
                CHURNER: (80000, 900000, 20000, 80000),
            }[p]
            aum = _log_uniform(r, lo, hi)
            income = _log_uniform(r, inc_lo, inc_hi)
            if p != HNW or r.random() < 0.5:
                flags |= SALARY
            flags |= HAS_WM if r.random() < 0.8 else 0
            flags |= HAS_FUND if r.random() < 0.5 else 0
            flags |= HAS_TD if r.random() < 0.5 else 0
            flags |= HAS_INS if r.random() < {AFFLUENT: 0.3, WEALTH: 0.5, HNW: 0.7}.get(p, 0.2) else 0
            if self.usd and flags & HAS_WM and r.random() < {WEALTH: 0.08, HNW: 0.2}.get(p, 0.0):
                flags |= USD_WM
            if p == CHURNER:
                self.eday[i] = min(int(days * r.uniform(0.15, 0.75)), 65535)
        elif p == BORROWER:
            flags |= SALARY | HAS_LOAN
            income = _log_uniform(r, 10000, 40000)
            dep = _log_uniform(r, 3000, 50000)
        elif p == SPENDER:
            flags |= SALARY | HAS_CARD
            income = _log_uniform(r, 12000, 40000)
            dep = _log_uniform(r, 5000, 60000)
        else:  # DORMANT
            dep = _log_uniform(r, 50, 300000)
            flags |= HAS_TD if r.random() < 0.3 else 0
            if r.random() < 0.25:
                self.eday[i] = min(int(days * r.random()), 65535)
            else:
                self.eday[i] = 65535
        if aum:
            # Split the customer's AUM over the products it holds; deposits keep 15-40 %.
            held = [k for k in (HAS_TD, HAS_WM, HAS_FUND, HAS_INS) if flags & k]
            weights = [r.uniform(0.5, 1.5) for _ in held]
            dep = int(aum * r.uniform(0.15, 0.4)) if held else aum
            rest = aum - dep
            total_w = sum(weights)
            for k, w in zip(held, weights, strict=True):
                part = int(rest * w / total_w) // 100 * 100
                if k == HAS_TD:
                    self.td[i] = part
                elif k == HAS_WM:
                    self.wm[i] = part * 10 // 71 if flags & USD_WM else part
                elif k == HAS_FUND:
                    self.fund[i] = part
                else:
                    self.ins[i] = part
        elif p == DORMANT and flags & HAS_TD:
            self.td[i] = _log_uniform(r, 10000, 200000) // 100000 * 100000 or 1000000
        card_share = (0.25, 0.55, 0.4, 0.7, 0.75, 0.8, 0.5, 1.0, 0.05, 0.6)[p]
        if r.random() < card_share:
            flags |= HAS_CARD
            self.card[i] = int(income * r.uniform(0.0, 0.8)) if r.random() < 0.8 else 0
        if (p in (AFFLUENT, WEALTH) and r.random() < 0.15) or (p in (MASS, SALARIED) and r.random() < 0.05):
            flags |= HAS_LOAN
        if flags & HAS_LOAN:
            if p in (MASS, SALARIED):  # consumer loan, 3 years
                principal, months = _log_uniform(r, 20000, 200000) // 10000 * 10000, 36
            else:  # mortgage, 20-30 years, part-way through
                principal, months = (
                    _log_uniform(r, 300000, 2000000) // 1000000 * 1000000,
                    r.choice((240, 300, 360)),
                )
            rate = 0.041 / 12
            self.loan_pay[i] = int(principal * rate / (1 - (1 + rate) ** -months))
            self.loan[i] = principal
        if p in (MASS, SALARIED, SPENDER) and r.random() < 0.04:
            flags |= OVERDRAFT
        if p != HNW and r.random() < 0.3:
            flags |= SMS_FEE
        self.flags[i] = flags
        self.income[i] = income
        self.dep[i] = dep

        # Profile and opening balances, at one second of 00:00-00:30 (rising with i).
        sec = i * _OPENING_SECONDS // self.n
        self._stamp(sec)
        cid = f"C{i + 1:06d}"
        age = int(r.triangular(20, 80, {DORMANT: 65, HNW: 52, WEALTH: 48, MASS: 30}.get(p, 38)))
        yearly = income * 12 // 100 * r.uniform(1.0, 2.2)
        attrs: dict[str, Any] = {
            "segment": _SEGMENTS[p],
            "high_end_card": r.random() < (0.02, 0.03, 0.05, 0.2, 0.5, 0.8, 0.05, 0.3, 0.01, 0.2)[p],
            "diamond_card": r.random() < (0.0, 0.0, 0.0, 0.005, 0.05, 0.4, 0.0, 0.0, 0.0, 0.0)[p],
            "household_income": int(yearly) if r.random() < 0.85 else round(yearly, 2),
            "age": age,
        }
        if p in (AFFLUENT, WEALTH, HNW, CHURNER, GROWER):
            attrs["risk_level"] = f"R{r.randint(2, 5)}"
        self._emit(
            PROFILES, {"event_id": self._eid(i, cid), "customer_id": cid, "ts": self.ts, "attributes": attrs}
        )
        self._bal(i, cid, "D1", "deposit", dep)
        if flags & HAS_TD:
            self._bal(i, cid, "T1", "time_deposit", self.td[i])
        if flags & HAS_WM:
            self._bal(i, cid, "W1", "wealth", self.wm[i], "USD" if flags & USD_WM else None)
        if flags & HAS_FUND:
            self._bal(i, cid, "F1", "fund", self.fund[i])
        if flags & HAS_INS:
            self._bal(i, cid, "I1", "insurance", self.ins[i])
        if flags & HAS_LOAN:
            self._bal(i, cid, "L1", "loan", self.loan[i])
        if flags & HAS_CARD:
            self._bal(i, cid, "K1", "credit_card", self.card[i])

    # --- plan ------------------------------------------------------------------------------
    def _plan(self, lo: int, hi: int) -> None:
        """Decide today's events of customers lo..hi-1 as keys in the minute buckets."""
        d = self.day
        today = self.date
        dom, weekday = today.day, today.weekday()
        weekend = weekday >= 5
        rnd = self.rng.random
        exp = math.exp
        buckets = self.buckets
        shift = _SEC_SHIFT
        persona, flags_col, tempo_col, anchor_col, eday_col = (
            self.persona,
            self.flags,
            self.tempo,
            self.anchor,
            self.eday,
        )
        for i in range(lo, hi):
            base = i << 8
            p = persona[i]
            flags = flags_col[i]
            anchor = anchor_col[i]
            eday = eday_col[i]
            churn_phase = 0
            if p == CHURNER and d >= eday:
                churn_phase = 1 if d < eday + 4 + i % 9 else 2
            # calendar: (second, kind) of batch postings at fixed hours
            cal: list[tuple[int, int]] = []
            if flags & SALARY and dom == anchor and churn_phase == 0:
                cal.append((9 * 3600 + (i * 7919) % 7200, K_SALARY))
            if dom == 21:
                cal.append((3600 + int(rnd() * 7200), K_INTEREST))
            elif dom == 1 and d:
                cal.append((2 * 3600 + int(rnd() * 7200), K_STMT))
            elif dom == 5 and flags & SMS_FEE:
                cal.append((3 * 3600 + int(rnd() * 3600), K_FEE))
            if flags & HAS_LOAN and dom == (anchor + 9) % 28 + 1:
                cal.append((6 * 3600 + int(rnd() * 7200), K_LOAN))
            if flags & HAS_CARD:
                if dom == (anchor + 4) % 28 + 1:
                    cal.append((3600 + int(rnd() * 3600), K_CSTMT))
                elif dom == (anchor + 22) % 28 + 1 and p != DORMANT:
                    cal.append((8 * 3600 + int(rnd() * 50400), K_CREPAY))
            if flags & HAS_FUND and not weekend:
                cal.append((20 * 3600 + int(rnd() * 7200), K_FUND))
            if flags & HAS_WM and weekday == 4:
                cal.append((18 * 3600 + int(rnd() * 7200), K_WEALTH))
            if rnd() < 0.002:
                cal.append((8 * 3600 + int(rnd() * 50400), K_PROFILE))
            # discretionary activity, Poisson counts around the persona's rates
            if p == DORMANT:
                rates: _Rates = ()
                if d == eday:
                    cal.append((10 * 3600 + int(rnd() * 30000), K_WAKE))
            elif churn_phase:
                rates = _CHURNING if churn_phase == 1 else _CHURNED
            else:
                rates = _RATES[p]
                if p == MASS and not flags & SALARY:
                    rates = rates + _MASS_NO_SALARY
                elif p == GROWER and d == eday:
                    cal.append((11 * 3600 + int(rnd() * 18000), K_BIGIN))
            for sec, kind in cal:
                buckets[sec // 60].append((sec << shift) | base | kind)
            tempo = tempo_col[i] * 0.0625
            for kind, rate, hours in rates:
                lam = rate * tempo
                if weekend:
                    lam *= 1.3 if kind == K_POS else 0.7
                u = rnd()
                prob = exp(-lam)
                if u <= prob:
                    continue
                cum = prob
                n = 0
                while u > cum and n < 20:
                    n += 1
                    prob *= lam / n
                    cum += prob
                for _ in range(n):
                    sec = hours[int(rnd() * 256)] + int(rnd() * 3600)
                    buckets[sec // 60].append((sec << shift) | base | kind)

    def _later(self, i: int, kind: int, lo_minute: int, hi_minute: int) -> bool:
        """Schedule a follow-up for customer i later today (never in the minute being posted)."""
        lo = max(lo_minute, self.minute + 1)
        if lo >= hi_minute:
            return False
        minute = lo + int(self.rng.random() * (hi_minute - lo))
        sec = minute * 60 + int(self.rng.random() * 60)
        self.buckets[minute].append((sec << _SEC_SHIFT) | (i << 8) | kind)
        return True

    # --- post ------------------------------------------------------------------------------
    def _post(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """Turn today's keys into events, minute by minute, in time order."""
        handlers = self.handlers
        out = self.out
        stamp = self._stamp
        if self.day == 0:
            # the first half hour of day 0 belongs to the opening positions
            moved = _OPENING_SECONDS << _SEC_SHIFT
            for minute in range(_OPENING_SECONDS // 60):
                for key in self.buckets[minute]:
                    self.buckets[minute + _OPENING_SECONDS // 60].append(key + moved)
                del self.buckets[minute][:]
        for minute, bucket in enumerate(self.buckets):
            if not bucket:
                continue
            self.minute = minute
            keys = sorted(bucket)
            del bucket[:]
            for key in keys:
                stamp(key >> _SEC_SHIFT)
                handlers[key & 255]((key >> 8) & _CUSTOMER_MASK)
            yield from out
            out.clear()

    def _emit(self, topic: str, value: dict[str, Any]) -> None:
        self.out.append((self.t, {"topic": topic, "value": value}))

    def _eid(self, i: int, cid: str) -> str:
        n = self.seq[i] + 1
        self.seq[i] = n
        return f"{cid}-{n:06d}"

    def _bal(self, i: int, cid: str, acct: str, product: str, fen: int, currency: str | None = None) -> None:
        value: dict[str, Any] = {
            "event_id": self._eid(i, cid),
            "customer_id": cid,
            "account_id": f"{cid}-{acct}",
            "product": product,
            "balance": _money(fen),
            "ts": self.ts,
        }
        if currency is not None:
            value["currency"] = currency
        elif self.rng.random() < 0.1:
            value["currency"] = "CNY"
        self._emit(BALANCES, value)

    def _txn(
        self,
        i: int,
        cid: str,
        amount: int,
        direction: str,
        channel: str,
        counterparty: str | None = None,
        acct: str = "D1",
        product: str | None = None,
        after: int | None = None,
    ) -> None:
        """One posted transaction; deposit postings carry balance_after 90 % of the time."""
        value: dict[str, Any] = {
            "event_id": self._eid(i, cid),
            "customer_id": cid,
            "account_id": f"{cid}-{acct}",
            "ts": self.ts,
            "amount": _money(amount),
            "direction": direction,
            "channel": channel,
        }
        u = self.rng.random()
        if product is not None:
            value["product"] = product
        elif u < 0.2:
            value["product"] = "deposit"
        if counterparty is not None:
            value["counterparty_bank"] = counterparty
        if acct == "D1":
            if u < 0.9:
                value["balance_after"] = _money(self.dep[i])
            elif not self.eod_pending[i] and self._later(i, K_EOD, 1430, 1440):
                self.eod_pending[i] = 1  # the bank still publishes the balance at end of day
        elif after is not None:
            value["balance_after"] = _money(after)
        if self.rng.random() < 0.08:
            value["currency"] = "CNY"
        self._emit(TRANSACTIONS, value)

    def _available(self, i: int) -> int:
        """What the deposit account can pay out, overdraft included."""
        limit = min(self.income[i], 500000) if self.flags[i] & OVERDRAFT else 0
        return self.dep[i] + limit

    def _bank(self, home_share: float) -> str:
        r = self.rng.random()
        if r < home_share:
            return self.home
        others = self.others
        return others[int((r - home_share) / (1 - home_share) * len(others)) % len(others)]

    def _aum(self, i: int) -> int:
        wm = self.wm[i] * 71 // 10 if self.flags[i] & USD_WM else self.wm[i]
        return self.dep[i] + self.td[i] + wm + self.fund[i] + self.ins[i]

    # --- handlers, one per kind ------------------------------------------------------------
    def _noop(self, i: int) -> None:
        return None

    def _pos(self, i: int) -> None:
        p = self.persona[i]
        rng = self.rng
        amount = int(self.income[i] * _POS_MEAN[p] * rng.expovariate(1.0)) + 100
        if rng.random() < 0.3:
            amount = amount // 100 * 100 or 100  # whole yuan
        cid = f"C{i + 1:06d}"
        flags = self.flags[i]
        if flags & HAS_CARD and rng.random() < _CARD_SHARE[p]:
            limit = max(self.income[i] * 3, 1000000)
            if self.card[i] + amount <= limit:
                owed = self.card[i] + amount
                self.card[i] = owed
                self._txn(
                    i,
                    cid,
                    amount,
                    "debit",
                    "pos",
                    None,
                    "K1",
                    "credit_card",
                    owed if rng.random() < 0.8 else None,
                )
                return
        if self._available(i) < amount:
            return  # declined: nothing is posted
        self.dep[i] -= amount
        self._txn(i, cid, amount, "debit", "pos")

    def _atm(self, i: int) -> None:
        amount = _ATM_NOTES[int(self.rng.random() * len(_ATM_NOTES))]
        while amount > 10000 and self._available(i) < amount:
            amount //= 2
        if self._available(i) < amount:
            return
        self.dep[i] -= amount
        self._txn(i, f"C{i + 1:06d}", amount, "debit", "atm")

    def _xout(self, i: int) -> None:
        rng = self.rng
        amount = int(self.income[i] * 0.08 * rng.expovariate(1.0)) + 1000
        if rng.random() < 0.5:
            amount = amount // 10000 * 10000 or 10000
        if self._available(i) < amount:
            amount = self.dep[i] // 2 // 100 * 100
            if amount < 1000:
                return
        self.dep[i] -= amount
        self._txn(
            i,
            f"C{i + 1:06d}",
            amount,
            "debit",
            "mobile" if rng.random() < 0.75 else "online",
            self._bank(0.45),
        )

    def _xin(self, i: int) -> None:
        rng = self.rng
        p = self.persona[i]
        if p == MASS and not self.flags[i] & SALARY:
            mean = self.income[i] / (30 * 0.15)
        else:
            mean = self.income[i] * 0.2
        amount = int(mean * rng.expovariate(1.0)) + 1000
        if rng.random() < 0.6:
            amount = amount // 10000 * 10000 or 10000
        self.dep[i] += amount
        self._txn(i, f"C{i + 1:06d}", amount, "credit", "transfer", self._bank(0.3))

    def _branch(self, i: int) -> None:
        rng = self.rng
        amount = int(self.income[i] * rng.uniform(0.2, 1.0)) // 10000 * 10000 or 50000
        cid = f"C{i + 1:06d}"
        if rng.random() < 0.5:
            self.dep[i] += amount
            self._txn(i, cid, amount, "credit", "branch")
        elif self._available(i) >= amount:
            self.dep[i] -= amount
            self._txn(i, cid, amount, "debit", "branch")

    def _salary(self, i: int) -> None:
        rng = self.rng
        amount = self.income[i]
        if self.date.month <= 2 and rng.random() < 0.15:
            amount += int(amount * rng.uniform(1.0, 3.0))  # year-end bonus
        if amount <= 0:
            return
        self.dep[i] += amount
        # the employer pays from the same bank every month
        h = (i * 2654435761) & 0xFFFFFFFF
        employer = self.home if h & 1 else self.others[(h >> 8) % len(self.others)]
        self._txn(i, f"C{i + 1:06d}", amount, "credit", "transfer", employer)

    def _interest(self, i: int) -> None:
        """Monthly interest on the 21st: 0.15 %/yr on credit balances, 0.5 %/month on overdrafts."""
        dep = self.dep[i]
        cid = f"C{i + 1:06d}"
        if dep > 0:
            amount = dep * 15 // 120000
            if amount > 0:
                self.dep[i] = dep + amount
                self._txn(i, cid, amount, "credit", "system")
        elif dep < 0:
            amount = -dep * 5 // 1000 or 1
            self.dep[i] = dep - amount
            self._txn(i, cid, amount, "debit", "system")

    def _fee(self, i: int) -> None:
        if self.dep[i] >= 200:  # SMS alert fee, 2.00 a month
            self.dep[i] -= 200
            self._txn(i, f"C{i + 1:06d}", 200, "debit", "system")

    def _eod(self, i: int) -> None:
        self.eod_pending[i] = 0
        self._bal(i, f"C{i + 1:06d}", "D1", "deposit", self.dep[i])

    def _stmt(self, i: int) -> None:
        """Month-start statement balances of deposits, time deposits and insurance cash value."""
        cid = f"C{i + 1:06d}"
        flags = self.flags[i]
        self._bal(i, cid, "D1", "deposit", self.dep[i])
        if flags & HAS_TD:
            self._bal(i, cid, "T1", "time_deposit", self.td[i])
        if flags & HAS_INS:
            self.ins[i] += self.ins[i] * 25 // 10000
            self._bal(i, cid, "I1", "insurance", self.ins[i])

    def _fund(self, i: int) -> None:
        """Daily NAV: a move of about ±0.7 % (at most ±2.1 %)."""
        if self.fund[i] <= 0:
            return
        rnd = self.rng.random
        bp = int((rnd() + rnd() + rnd() - 1.5) * 140)
        self.fund[i] += self.fund[i] * bp // 10000
        self._bal(i, f"C{i + 1:06d}", "F1", "fund", self.fund[i])

    def _wealth(self, i: int) -> None:
        """Weekly valuation of wealth-management products: small gains, rare dips."""
        if self.wm[i] <= 0:
            return
        rng = self.rng
        bp = rng.randint(-40, -5) if rng.random() < 0.04 else rng.randint(1, 8)
        self.wm[i] += self.wm[i] * bp // 10000
        usd = self.flags[i] & USD_WM
        self._bal(i, f"C{i + 1:06d}", "W1", "wealth", self.wm[i], "USD" if usd else None)

    def _loan(self, i: int) -> None:
        """Monthly instalment: debit the deposit account, then the amortised loan balance."""
        owed = self.loan[i]
        if owed <= 0:
            return
        cid = f"C{i + 1:06d}"
        interest = owed * 41 // 12000
        pay = min(self.loan_pay[i], owed + interest)
        if self._available(i) >= pay:
            self.dep[i] -= pay
            self._txn(i, cid, pay, "debit", "transfer", self.home)
            self.loan[i] = owed + interest - pay
        else:
            self.loan[i] = owed + interest  # missed: arrears accrue
        self._bal(i, cid, "L1", "loan", self.loan[i])

    def _card_stmt(self, i: int) -> None:
        self._bal(i, f"C{i + 1:06d}", "K1", "credit_card", self.card[i])

    def _card_repay(self, i: int) -> None:
        owed = self.card[i]
        if owed <= 0:
            return
        rng = self.rng
        amount = owed if rng.random() < 0.8 else max(owed // 10, min(owed, 10000))
        amount = min(amount, self.dep[i])
        if amount <= 0:
            return
        cid = f"C{i + 1:06d}"
        self.dep[i] -= amount
        self._txn(i, cid, amount, "debit", "mobile", self.home)
        self.card[i] = owed - amount
        self._txn(i, cid, amount, "credit", "mobile", None, "K1", "credit_card", self.card[i])

    def _buy(self, i: int) -> None:
        """Move spare deposits into a product (at most 40 % of AUM, so AUM never seems to halve)."""
        flags = self.flags[i]
        targets = [
            k for k in (HAS_WM, HAS_FUND, HAS_TD) if flags & k and not (k == HAS_WM and flags & USD_WM)
        ]
        if not targets:
            return
        rng = self.rng
        spare = self.dep[i] - max(self.income[i] * 3 // 2, 2000000)
        amount = min(int(spare * rng.uniform(0.3, 0.8)), self._aum(i) * 2 // 5) // 100000 * 100000
        if amount < 100000:
            return
        cid = f"C{i + 1:06d}"
        target = targets[int(rng.random() * len(targets))]
        self.dep[i] -= amount
        self._txn(i, cid, amount, "debit", "mobile", self.home)
        if target == HAS_WM:
            self.wm[i] += amount
            self._bal(i, cid, "W1", "wealth", self.wm[i])
        elif target == HAS_FUND:
            self.fund[i] += amount
            self._bal(i, cid, "F1", "fund", self.fund[i])
        else:
            self.td[i] += amount
            self._bal(i, cid, "T1", "time_deposit", self.td[i])

    def _redeem(self, i: int) -> None:
        """Sell part of a product into deposits; a churner sells everything and sends it away."""
        flags = self.flags[i]
        churning = self.persona[i] == CHURNER
        sources = [k for k in (HAS_WM, HAS_FUND) if flags & k and not (k == HAS_WM and flags & USD_WM)]
        sources = [k for k in sources if (self.wm[i] if k == HAS_WM else self.fund[i]) > 0]
        if not sources:
            if churning:
                self._later(i, K_CHURN, 600, 1380)
            return
        rng = self.rng
        source = sources[int(rng.random() * len(sources))]
        held = self.wm[i] if source == HAS_WM else self.fund[i]
        amount = held if churning else min(int(held * rng.uniform(0.2, 0.6)), self._aum(i) * 2 // 5)
        if amount <= 0:
            return
        cid = f"C{i + 1:06d}"
        if source == HAS_WM:
            self.wm[i] = held - amount
            self._bal(i, cid, "W1", "wealth", self.wm[i])
        else:
            self.fund[i] = held - amount
            self._bal(i, cid, "F1", "fund", self.fund[i])
        self.dep[i] += amount
        self._txn(i, cid, amount, "credit", "mobile", self.home)
        if churning:
            self._later(i, K_CHURN, 600, 1380)

    def _churn(self, i: int) -> None:
        """Send most of the deposit balance to another bank."""
        rng = self.rng
        amount = int(self.dep[i] * rng.uniform(0.6, 0.95)) // 10000 * 10000
        if amount < 100000:
            return
        self.dep[i] -= amount
        self._txn(
            i,
            f"C{i + 1:06d}",
            amount,
            "debit",
            "mobile" if rng.random() < 0.7 else "online",
            self.others[int(rng.random() * 4)],
        )

    def _big_in(self, i: int) -> None:
        """A grower's windfall (bonus, property sale) that lifts AUM over the next threshold."""
        rng = self.rng
        aum = self._aum(i)
        target = 5000000 if aum < 5000000 else 50000000 if aum < 50000000 else 500000000
        amount = (int(target * rng.uniform(1.1, 1.9)) - aum) // 100000 * 100000
        if amount <= 0:
            amount = self.income[i] * 3
        self.dep[i] += amount
        branch = rng.random() < 0.3
        self._txn(
            i,
            f"C{i + 1:06d}",
            amount,
            "credit",
            "branch" if branch else "transfer",
            None if branch else self._bank(0.4),
        )

    def _wake(self, i: int) -> None:
        """A dormant customer's one visit: a cash withdrawal."""
        amount = min(self.dep[i] // 2, 200000) // 10000 * 10000
        if amount <= 0:
            return
        self.dep[i] -= amount
        self._txn(i, f"C{i + 1:06d}", amount, "debit", "atm" if self.rng.random() < 0.6 else "branch")

    def _profile(self, i: int) -> None:
        rng = self.rng
        u = rng.random()
        attrs: dict[str, Any]
        if u < 0.4:
            attrs = {"household_income": int(self.income[i] * 12 // 100 * rng.uniform(1.0, 2.5))}
        elif u < 0.65:  # the bank's periodic re-segmentation by AUM
            aum = self._aum(i)
            attrs = {
                "segment": "mass"
                if aum < 5000000
                else "affluent"
                if aum < 50000000
                else "wealth"
                if aum < 500000000
                else "private"
            }
        elif u < 0.85:
            attrs = {"high_end_card": rng.random() < 0.7}
        else:
            attrs = {"risk_level": f"R{rng.randint(1, 5)}", "marketing_consent": rng.random() < 0.5}
        cid = f"C{i + 1:06d}"
        self._emit(
            PROFILES, {"event_id": self._eid(i, cid), "customer_id": cid, "ts": self.ts, "attributes": attrs}
        )


# --- noise and lateness overlays ---------------------------------------------------------------
_DUP_SHARE = 0.015
_BAD_SHARE = 0.007
_OVERSIZE_SHARE = 1 / 250_000
_LATE_SHARE = 0.01
#: at most this many delayed events are held (about 30 MB), whatever the customer count
_LATE_BUFFER = 100_000

_BAD_KINDS = (
    "not_json",
    "truncated",
    "nan",
    "list_attr",
    "no_seconds",
    "naive",
    "bad_amount",
    "underscore",
    "negative_loan",
    "missing",
    "currency",
    "channel",
    "zero",
    "unknown_topic",
)


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _bad_record(rng: random.Random, serial: int, like: dict[str, Any]) -> dict[str, Any]:
    """A broken record for the customer of `like` (a value), as its raw payload text."""
    cid = like.get("customer_id", "C000001")
    eid = f"{cid}-N{serial:06d}"
    ts = like.get("ts", "2026-01-01T00:00:00+08:00")
    acct = f"{cid}-D1"
    kind = _BAD_KINDS[int(rng.random() * len(_BAD_KINDS))]
    topic = TRANSACTIONS
    txn = {
        "event_id": eid,
        "customer_id": cid,
        "account_id": acct,
        "ts": ts,
        "amount": "88.00",
        "direction": "debit",
        "channel": "pos",
    }
    if kind == "not_json":
        raw = rng.choice(
            (
                f"customer_id={cid};account={acct};amount=88.00;dir=D",
                "<html><body><h1>502 Bad Gateway</h1></body></html>",
                "\ufffd\ufffd\x00\x01core-banking heartbeat",
            )
        )
    elif kind == "truncated":
        text = _compact(txn)
        raw = text[: len(text) * 2 // 3]
    elif kind == "nan":
        topic = BALANCES
        raw = (
            f'{{"event_id":"{eid}","customer_id":"{cid}","account_id":"{cid}-F1",'
            f'"product":"fund","balance":NaN,"ts":"{ts}"}}'
        )
    elif kind == "list_attr":
        topic = PROFILES
        raw = _compact(
            {
                "event_id": eid,
                "customer_id": cid,
                "ts": ts,
                "attributes": {"segment": ["affluent", "payroll"], "age": 41},
            }
        )
    elif kind == "no_seconds":
        raw = _compact({**txn, "ts": ts[:16] + ts[19:]})
    elif kind == "naive":
        raw = _compact({**txn, "ts": ts[:19]})
    elif kind == "bad_amount":
        raw = _compact({**txn, "amount": "12.345"})
    elif kind == "underscore":
        topic = BALANCES
        raw = _compact(
            {
                "event_id": eid,
                "customer_id": cid,
                "account_id": acct,
                "product": "deposit",
                "balance": "1_000",
                "ts": ts,
            }
        )
    elif kind == "negative_loan":
        topic = BALANCES
        raw = _compact(
            {
                "event_id": eid,
                "customer_id": cid,
                "account_id": f"{cid}-L1",
                "product": "loan",
                "balance": "-1200.00",
                "ts": ts,
            }
        )
    elif kind == "missing":
        field = rng.choice(("account_id", "direction", "ts", "amount"))
        raw = _compact({k: v for k, v in txn.items() if k != field})
    elif kind == "currency":
        raw = _compact({**txn, "currency": "RMB"})
    elif kind == "channel":
        raw = _compact({**txn, "channel": "wechat"})
    elif kind == "zero":
        raw = _compact({**txn, "amount": "0.00"})
    else:  # a producer writing to a topic that is not an input
        return {"topic": "bank.transfers", "value": txn}
    return {"topic": topic, "value": raw}


def _oversize(serial: int, like: dict[str, Any]) -> dict[str, Any]:
    cid = like.get("customer_id", "C000001")
    value = {
        "event_id": f"{cid}-N{serial:06d}",
        "customer_id": cid,
        "ts": like.get("ts", "2026-01-01T00:00:00+08:00"),
        "attributes": {"segment": "mass", "notes": "客户备注" * 17_000},
    }
    return {"topic": PROFILES, "value": _compact(value)}


def _with_noise(
    stream: Iterator[tuple[int, dict[str, Any]]], seed: int
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Redeliver ~1.5 % of events right after themselves and slip in ~0.7 % bad records."""
    rng = random.Random(f"{seed}:noise")
    rnd = rng.random
    serial = 0
    for t, line in stream:
        yield t, line
        u = rnd()
        if u < _DUP_SHARE:
            yield t, {"topic": line["topic"], "value": dict(line["value"])}
        elif u < _DUP_SHARE + _BAD_SHARE:
            serial += 1
            yield t, _bad_record(rng, serial, line["value"])
        elif u < _DUP_SHARE + _BAD_SHARE + _OVERSIZE_SHARE:
            serial += 1
            yield t, _oversize(serial, line["value"])


def _delay(rng: random.Random) -> int:
    """Seconds of delay: mostly hours, some days, a few beyond a week."""
    u = rng.random()
    if u < 0.55:
        return rng.randint(3600, 6 * 3600)
    if u < 0.8:
        return rng.randint(6 * 3600, 2 * 86400)
    if u < 0.92:
        return rng.randint(2 * 86400, 7 * 86400)
    return rng.randint(7 * 86400, int(9.5 * 86400))


def _with_lateness(
    stream: Iterator[tuple[int, dict[str, Any]]], seed: int
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Hold ~1 % of events back and release them once the stream passes ts + delay.

    Held events wait as compact JSON in a heap of bounded size, so memory stays
    bounded at any customer count; when it is full, events are simply not delayed.
    """
    rng = random.Random(f"{seed}:late")
    rnd = rng.random
    held: list[tuple[int, int, str]] = []
    n = 0
    for t, line in stream:
        while held and held[0][0] <= t:
            due, _, text = heapq.heappop(held)
            yield due, json.loads(text)
        if rnd() < _LATE_SHARE and len(held) < _LATE_BUFFER:
            n += 1
            heapq.heappush(held, (t + _delay(rng), n, _compact(line)))
            continue
        yield t, line
    while held:
        due, _, text = heapq.heappop(held)
        yield due, json.loads(text)


# --- public API ------------------------------------------------------------------------------
def generate_events(
    customers: int,
    days: int,
    seed: int,
    start: date | None = None,
    noise: bool = False,
    late: bool = False,
    *,
    home_bank: str = "CMB",
    usd: bool = True,
) -> Iterator[dict[str, Any]]:
    """Yield event-file lines as dicts {"topic": ..., "value": {...} or "raw string"}.

    Lazy: the first lines come before later customers exist. Arguments are checked
    at the call, not at the first `next()`. `usd=False` keeps every amount in CNY
    (rules files without `currencies: {USD: ...}` dead-letter the few USD wealth
    balances as schema violations).
    """
    bank = _Bank(customers, days, seed, start or DEFAULT_START, home_bank, usd)
    stream: Iterator[tuple[int, dict[str, Any]]] = bank.events()
    if noise:
        stream = _with_noise(stream, seed)
    if late:
        stream = _with_lateness(stream, seed)
    return (line for _, line in stream)


def write_events(lines: Iterable[dict[str, Any]], out: TextIO) -> int:
    """Write one compact JSON line per dict, return the count (batched: one write per 1,000)."""
    encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    batch: list[str] = []
    n = 0
    for line in lines:
        batch.append(encode(line))
        if len(batch) >= 1000:
            batch.append("")
            out.write("\n".join(batch))
            n += len(batch) - 1
            batch.clear()
    if batch:
        batch.append("")
        out.write("\n".join(batch))
        n += len(batch) - 1
    return n
