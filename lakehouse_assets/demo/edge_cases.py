"""Crafted key churn every replay must get right, at fixed places in the stream."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from lakehouse_assets.demo.clock import HOUR, MINUTE
from lakehouse_assets.demo.simulation import Simulation
from lakehouse_assets.demo.values import Columns, ints, json_text, replaced, timestamps


def craft_edge_cases(sim: Simulation, day: int) -> None:
    """Key churn every replay must get right, at fixed places in the stream."""
    if day == 2:
        reinsert_within_one_file(sim)
        start_churn_across_days(sim)
    elif day == 3:
        finish_churn_across_days(sim)


def crafted_customer(sim: Simulation, customer_id: int, at_us: int, **values: Any) -> Columns:
    """One customer row with explicit values (``None`` is NULL)."""
    row: dict[str, pa.Array] = {
        "id": ints(np.array([customer_id])),
        "tenant_id": ints(np.array([1])),
        "created_at": timestamps(np.array([at_us])),
        "updated_at": timestamps(np.array([at_us])),
    }
    schema = sim.logs["core_customer"].schema
    for name, value in values.items():
        row[name] = pa.array([value], schema.field(name).type)
    return row


def reinsert_within_one_file(sim: Simulation) -> None:
    """One customer goes I -> U -> D -> I between the restart checkpoint and the first
    flush of day 2: all four rows sit in one file, and the restart sends them again.
    The re-insert has other values than the first insert."""
    log, day = sim.logs["core_customer"], 2
    restart = sim.schedules[day].restart_us
    assert restart is not None
    # Separate transactions; microseconds, milliseconds, whole seconds.
    times = [
        restart + 2 * MINUTE + 123_457,
        restart + 6 * MINUTE + 250_000,
        restart + 10 * MINUTE,
        restart + 14 * MINUTE + 987_654,
    ]
    (customer_id,) = log.allocate(1)
    log.write(
        "I",
        crafted_customer(
            sim,
            customer_id,
            times[0],
            email="zoe.obrien@example.com",
            full_name='Zoë "Zee" O\'Brien, Jr.',
            country="IE",
            metadata=json_text({"source": "ads", "utm": {"campaign": 'spring "sale", 2024'}}),
        ),
        times[0],
        day,
    )
    log.write(
        "U",
        replaced(
            log.current(np.array([customer_id])),
            full_name=pa.array(["Zoë O'Brien\r\nc/o Acme, Inc."]),
            metadata=pa.array(
                [
                    json_text(
                        {
                            "vip": True,
                            "address": {
                                "city": "Zürich",
                                "lines": ["Bahnhofstrasse 1", "8001 Zürich"],
                            },
                        }
                    )
                ]
            ),
            updated_at=timestamps(np.array([times[1]])),
        ),
        times[1],
        day,
    )
    log.delete(np.array([customer_id]), times[2], day)
    log.write(
        "I",
        crafted_customer(
            sim,
            customer_id,
            times[3],
            email=None,
            full_name="山田 太郎 🎌",
            country="JP",
            metadata=None,
        ),
        times[3],
        day,
    )
    sim.edge_cases["reinsert_within_file"] = {
        "table": "core_customer",
        "id": int(customer_id),
        "day": sim.day_date(day).isoformat(),
    }


def start_churn_across_days(sim: Simulation) -> None:
    """A customer inserted early on day 2 and updated late that day (two files);
    ``finish_churn_across_days`` deletes and re-inserts it on day 3."""
    log, day = sim.logs["core_customer"], 2
    start = sim.day_start(day)
    (customer_id,) = log.allocate(1)
    inserted, updated = start + 40 * MINUTE + 500_000, start + 22 * HOUR + 30 * MINUTE + 123_456
    log.write(
        "I",
        crafted_customer(
            sim,
            customer_id,
            inserted,
            email="lee.chen@example.org",
            full_name="Lee Chen",
            country="SG",
            metadata=json_text({"source": "referral", "note": 'refers "friends"'}),
        ),
        inserted,
        day,
    )
    log.write(
        "U",
        replaced(
            log.current(np.array([customer_id])),
            full_name=pa.array(["Lee Chen\nSales, APAC"]),
            updated_at=timestamps(np.array([updated])),
        ),
        updated,
        day,
    )
    sim.edge_cases["reinsert_across_days"] = {
        "table": "core_customer",
        "id": int(customer_id),
        "days": [sim.day_date(day).isoformat()],
    }


def finish_churn_across_days(sim: Simulation) -> None:
    log, day = sim.logs["core_customer"], 3
    case = sim.edge_cases["reinsert_across_days"]
    customer_id = case["id"]
    start = sim.day_start(day)
    deleted, reinserted = start + HOUR + 15 * MINUTE, start + 21 * HOUR + 45 * MINUTE + 10_250
    log.delete(np.array([customer_id]), deleted, day)
    log.write(
        "I",
        crafted_customer(
            sim,
            customer_id,
            reinserted,
            email="lee@example.com.cn",
            full_name="陈 李 (Lee Chen)",
            country="CN",
            metadata=json_text({"restored": True, "by": "support 🛟"}),
        ),
        reinserted,
        day,
    )
    case["days"].append(sim.day_date(day).isoformat())
