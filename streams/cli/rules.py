"""`tierstream rules ...`: rules files."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from .common import (
    _rules,
    rules_app,
)


@rules_app.command("check")
def rules_check(rules: Annotated[str, typer.Argument(help="A rules file or a preset name.")]) -> None:
    """Validate a rules file and print its ladder."""
    loaded = _rules(rules)
    table = Table(
        title=f"{loaded.scheme} — version {loaded.version} ({loaded.timezone})", title_justify="left"
    )
    table.add_column("#", justify="right")
    table.add_column("tier")
    table.add_column("label")
    table.add_column("qualifies when any of")
    for i, tier in enumerate(loaded.tiers):
        conds = "\n".join(c.text for c in tier.any_of) or "(base tier: always)"
        table.add_row(str(i), tier.id, tier.label, conds)
    out = Console()
    out.print(table)
    high = loaded.tier_ids[loaded.high_value_from] if loaded.high_value_from < len(loaded.tiers) else "none"
    out.print(
        f"downgrade after {loaded.grace_days} days below; opportunity at {loaded.opportunity_ratio}× "
        f"(cooldown {loaded.opportunity_cooldown_days} d); dormant after {loaded.dormant_after_days} d; "
        f"high value from {high}; lateness {loaded.max_lateness_days} d",
        highlight=False,
    )
    out.print("OK", style="green")
