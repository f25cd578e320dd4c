"""Knowledge: incidents, symptoms, actions, outcomes and baselines in SQLite.

One file in WAL mode (readers such as ``x0tta6bl4 incidents`` never block the
Supervisor writing), schema versions applied in order through
``PRAGMA user_version``, so a Supervisor restarted by Ray, or a newer
release, opens what an older one wrote.  :class:`Knowledge` is synchronous;
on an event loop use :class:`AsyncKnowledge`, which runs every call on one
dedicated thread (SQLite connections stay on the thread that made them).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from x0tta6bl4.errors import ConfigError, TelemetryError
from x0tta6bl4.mapek._schema import MIGRATIONS
from x0tta6bl4.mapek._types import Action, ActionKind, Candidate, Diagnosis, Outcome, Symptom
from x0tta6bl4.mapek.baselines import BaselineRecord

__all__ = ["AsyncKnowledge", "IncidentRow", "Knowledge", "OpenIncident", "PendingAction"]

T = TypeVar("T")


@dataclass(frozen=True)
class IncidentRow:
    """One incident with its latest action and outcome, for operator views."""

    id: int
    key: str
    kind: str
    root_cause: str
    opened_at: float
    closed_at: float | None
    state: str
    confidence: float
    symptom: str
    explanation: str
    source: str
    action: str | None
    action_state: str | None
    outcome: str | None
    success: bool | None

    @property
    def time_to_heal_s(self) -> float | None:
        return None if self.closed_at is None else self.closed_at - self.opened_at


@dataclass(frozen=True)
class OpenIncident:
    """The incident a diagnosis belongs to."""

    id: int
    created: bool
    state: str
    """``open`` or ``escalated``."""
    previous_kind: str
    """Its kind before this diagnosis (equal to the diagnosis's unless it changed)."""


@dataclass(frozen=True)
class PendingAction:
    """An action whose outcome was not checked yet (e.g. before a restart)."""

    id: int
    incident_id: int
    action: Action
    diagnosis_kind: str
    root_cause: str
    state: str
    planned_at: float
    prediction: dict[str, Any]


class Knowledge:
    """The Supervisor's memory in one SQLite file (see the module doc)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.execute("PRAGMA busy_timeout=5000")
            self._migrate()
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(
                f"cannot open the knowledge base {self.path}: {exc}",
                fix="check supervisor.db_path and that its directory is writable",
            ) from exc

    @property
    def version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        current = self.version
        if current > len(MIGRATIONS):
            raise ConfigError(
                f"{self.path} has schema version {current}, newer than this release knows "
                f"({len(MIGRATIONS)})",
                fix="upgrade x0tta6bl4, or point supervisor.db_path at another file",
            )
        for version in range(current, len(MIGRATIONS)):
            try:
                self.db.executescript(
                    f"BEGIN;{MIGRATIONS[version]};PRAGMA user_version={version + 1};COMMIT;"
                )
            except sqlite3.Error:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        self.db.close()

    # --- incidents ------------------------------------------------------------------

    def open_incident(self, diagnosis: Diagnosis, now: float) -> OpenIncident:
        """The open incident of the diagnosis's root cause, or a new one.

        An open incident whose diagnosis changed kind (a degraded node now
        down; not back to milder, as while it recovers), or that a model now
        explains where statistics did, takes the new kind, confidence,
        explanation and source.
        """
        row = self.db.execute(
            "SELECT id, kind, state, source FROM incidents WHERE key = ? AND closed_at IS NULL",
            (diagnosis.key,),
        ).fetchone()
        if row is not None:
            self.db.execute("BEGIN")
            learned = diagnosis.source != "statistical" and row["source"] == "statistical"
            changed = row["kind"] != diagnosis.kind.value
            if (changed and not diagnosis.kind.milder_than(row["kind"])) or learned:
                self.db.execute(
                    "UPDATE incidents SET kind = ?, confidence = ?, explanation = ?, source = ?"
                    " WHERE id = ?",
                    (
                        diagnosis.kind.value,
                        diagnosis.confidence,
                        diagnosis.explanation,
                        diagnosis.source,
                        row["id"],
                    ),
                )
            self._insert_symptoms(row["id"], diagnosis.symptoms)
            self.db.execute("COMMIT")
            return OpenIncident(int(row["id"]), False, row["state"], row["kind"])
        top = diagnosis.symptoms[0].describe() if diagnosis.symptoms else diagnosis.kind.value
        self.db.execute("BEGIN")
        try:
            cursor = self.db.execute(
                "INSERT INTO incidents (key, kind, root_cause, opened_at, state, confidence,"
                " symptom, explanation, source) VALUES (?, ?, ?, ?, 'open', ?, ?, ?, ?)",
                (
                    diagnosis.key,
                    diagnosis.kind.value,
                    diagnosis.root_cause,
                    now,
                    diagnosis.confidence,
                    top,
                    diagnosis.explanation,
                    diagnosis.source,
                ),
            )
            incident = int(cursor.lastrowid or 0)
            self._insert_symptoms(incident, diagnosis.symptoms)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return OpenIncident(incident, True, "open", diagnosis.kind.value)

    def add_symptoms(self, incident: int, symptoms: Sequence[Symptom]) -> None:
        self.db.execute("BEGIN")
        self._insert_symptoms(incident, symptoms)
        self.db.execute("COMMIT")

    def _insert_symptoms(self, incident: int, symptoms: Sequence[Symptom]) -> None:
        self.db.executemany(
            "INSERT INTO symptoms (incident_id, ts, kind, entity, metric, value, baseline,"
            " scale, score) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    incident,
                    s.ts,
                    s.kind,
                    s.entity,
                    s.metric,
                    _finite(s.value),
                    _finite(s.baseline),
                    _finite(s.scale),
                    _finite(s.score),
                )
                for s in symptoms
            ],
        )

    def close_incident(self, incident: int, state: str, now: float) -> None:
        """Close an incident as ``healed`` (an action worked) or ``cleared`` (its
        symptoms went away); idempotent: the first close wins."""
        self.db.execute(
            "UPDATE incidents SET state = ?, closed_at = ? WHERE id = ? AND closed_at IS NULL",
            (state, now, incident),
        )

    def escalate(self, incident: int) -> None:
        """Nothing more to try: the incident stays open for an operator, no more actions."""
        self.db.execute(
            "UPDATE incidents SET state = 'escalated' WHERE id = ? AND closed_at IS NULL",
            (incident,),
        )

    def incidents(self, limit: int = 50, open_only: bool = False) -> list[IncidentRow]:
        where = "WHERE i.closed_at IS NULL" if open_only else ""
        rows = self.db.execute(
            f"""SELECT i.*, a.kind AS a_kind, a.target AS a_target, a.factor AS a_factor,
                       a.state AS a_state, o.detail AS o_detail, o.success AS o_success
                FROM incidents i
                LEFT JOIN actions a ON a.id = (
                    SELECT MAX(id) FROM actions WHERE incident_id = i.id)
                LEFT JOIN outcomes o ON o.action_id = a.id
                {where} ORDER BY i.id DESC LIMIT ?""",
            (limit,),
        ).fetchall()
        return [_incident(row) for row in rows]

    def incident(
        self, incident: int
    ) -> tuple[IncidentRow, list[dict[str, Any]], list[dict[str, Any]]]:
        """One incident with its symptoms and its actions (each with its outcome)."""
        found = [r for r in self.incidents(limit=1_000_000) if r.id == incident]
        if not found:
            raise TelemetryError(
                f"no incident {incident} in {self.path}", fix="list them with `x0tta6bl4 incidents`"
            )
        symptoms = [
            dict(r)
            for r in self.db.execute(
                "SELECT ts, kind, entity, metric, value, baseline, scale, score FROM symptoms"
                " WHERE incident_id = ? ORDER BY score DESC LIMIT 50",
                (incident,),
            )
        ]
        actions = [
            {
                **dict(r),
                "prediction": json.loads(r["prediction"]),
                "observed": json.loads(r["observed"]) if r["observed"] else None,
            }
            for r in self.db.execute(
                "SELECT a.*, o.checked_at, o.success, o.detail, o.observed FROM actions a"
                " LEFT JOIN outcomes o ON o.action_id = a.id WHERE a.incident_id = ?"
                " ORDER BY a.id",
                (incident,),
            )
        ]
        return found[0], symptoms, actions

    # --- actions and outcomes --------------------------------------------------------

    def plan_action(
        self, incident: int, diagnosis_kind: str, candidate: Candidate, now: float
    ) -> int:
        """Record a planned action (idempotent per incident and action key); returns its id."""
        action = candidate.action
        self.db.execute(
            "INSERT OR IGNORE INTO actions (incident_id, key, kind, target, factor,"
            " diagnosis_kind, planned_at, state, score, benefit, disruption, effectiveness,"
            " prediction) VALUES (?, ?, ?, ?, ?, ?, ?, 'planned', ?, ?, ?, ?, ?)",
            (
                incident,
                action.key,
                action.kind.value,
                action.target,
                action.factor,
                diagnosis_kind,
                now,
                candidate.score,
                candidate.benefit,
                candidate.disruption,
                candidate.effectiveness,
                json.dumps(candidate.prediction, default=str),
            ),
        )
        row = self.db.execute(
            "SELECT id FROM actions WHERE incident_id = ? AND key = ?", (incident, action.key)
        ).fetchone()
        return int(row["id"])

    def mark_executed(self, action: int, now: float, error: str | None = None) -> None:
        self.db.execute(
            "UPDATE actions SET state = ?, executed_at = ?, error = ? WHERE id = ?",
            ("failed" if error else "executed", now, error, action),
        )

    def record_outcome(self, action: int, outcome: Outcome) -> None:
        """Store the checked outcome (the first check of an action wins)."""
        self.db.execute("BEGIN")
        inserted = self.db.execute(
            "INSERT OR IGNORE INTO outcomes (action_id, checked_at, success, detail, observed)"
            " VALUES (?, ?, ?, ?, ?)",
            (
                action,
                outcome.checked_at,
                int(outcome.success),
                outcome.detail,
                json.dumps(outcome.observed, default=str),
            ),
        ).rowcount
        if inserted:
            self.db.execute(
                "UPDATE actions SET state = ? WHERE id = ?",
                ("succeeded" if outcome.success else "ineffective", action),
            )
        self.db.execute("COMMIT")

    def pending_actions(self) -> list[PendingAction]:
        """Actions planned or executed whose outcome was never checked."""
        rows = self.db.execute(
            """SELECT a.*, i.root_cause FROM actions a JOIN incidents i ON i.id = a.incident_id
               WHERE a.state IN ('planned', 'executed') AND i.closed_at IS NULL
               ORDER BY a.id"""
        ).fetchall()
        return [
            PendingAction(
                r["id"],
                r["incident_id"],
                Action(ActionKind(r["kind"]), r["target"], r["factor"]),
                r["diagnosis_kind"],
                r["root_cause"],
                r["state"],
                r["planned_at"],
                json.loads(r["prediction"]),
            )
            for r in rows
        ]

    def tried(self, incident: int) -> set[str]:
        """Keys of the actions already planned for an incident."""
        rows = self.db.execute("SELECT key FROM actions WHERE incident_id = ?", (incident,))
        return {r["key"] for r in rows}

    def in_effect(self) -> list[tuple[Action, bool]]:
        """Lasting changes made so far (costs, drained links, isolated nodes), oldest
        first, each with whether its outcome check succeeded."""
        rows = self.db.execute(
            "SELECT kind, target, factor, state FROM actions WHERE state IN"
            " ('executed', 'succeeded', 'ineffective') AND kind IN (?, ?, ?) ORDER BY id",
            (ActionKind.RAISE_COST, ActionKind.ROUTE_AROUND_LINK, ActionKind.ISOLATE_NODE),
        )
        return [
            (Action(ActionKind(r["kind"]), r["target"], r["factor"]), r["state"] == "succeeded")
            for r in rows
        ]

    def effectiveness(self) -> dict[tuple[str, str], float]:
        """Laplace-smoothed success rate per (action kind, diagnosis kind) of checked actions."""
        rows = self.db.execute(
            """SELECT a.kind, a.diagnosis_kind, COUNT(*) AS n, SUM(o.success) AS ok
               FROM actions a JOIN outcomes o ON o.action_id = a.id
               GROUP BY a.kind, a.diagnosis_kind"""
        ).fetchall()
        return {(r["kind"], r["diagnosis_kind"]): (r["ok"] + 1) / (r["n"] + 2) for r in rows}

    # --- baselines -------------------------------------------------------------------

    def save_baselines(
        self, rows: Iterable[tuple[str, str, str, float, float, int]], now: float
    ) -> int:
        """Upsert ``(kind, entity, metric, mean, mad, n)`` rows (see BaselineSnapshot.rows)."""
        stamped = [(*row, now) for row in rows]
        self.db.execute("BEGIN")
        self.db.executemany(
            "INSERT INTO baselines (kind, entity, metric, mean, mad, n, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (kind, entity, metric) DO UPDATE SET"
            " mean = excluded.mean, mad = excluded.mad, n = excluded.n,"
            " updated_at = excluded.updated_at",
            stamped,
        )
        self.db.execute("COMMIT")
        return len(stamped)

    def baselines(self) -> list[BaselineRecord]:
        return [
            BaselineRecord(r["kind"], r["entity"], r["metric"], r["mean"], r["mad"], r["n"])
            for r in self.db.execute("SELECT * FROM baselines")
        ]

    def counts(self) -> dict[str, int]:
        """Rows per table and open incidents (for status views)."""
        out = {
            table: int(self.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
            for table in ("incidents", "symptoms", "actions", "outcomes", "baselines")
        }
        out["open_incidents"] = int(
            self.db.execute("SELECT COUNT(*) FROM incidents WHERE closed_at IS NULL").fetchone()[0]
        )
        return out


def _finite(value: float) -> float:
    """SQLite has no infinity in JSON views; clamp to a large finite number."""
    return max(-1e300, min(1e300, value))


def _incident(row: sqlite3.Row) -> IncidentRow:
    action = None
    if row["a_kind"] is not None:
        action = Action(ActionKind(row["a_kind"]), row["a_target"], row["a_factor"])
    return IncidentRow(
        id=row["id"],
        key=row["key"],
        kind=row["kind"],
        root_cause=row["root_cause"],
        opened_at=row["opened_at"],
        closed_at=row["closed_at"],
        state=row["state"],
        confidence=row["confidence"],
        symptom=row["symptom"],
        explanation=row["explanation"],
        source=row["source"],
        action=action.describe() if action else None,
        action_state=row["a_state"],
        outcome=row["o_detail"],
        success=None if row["o_success"] is None else bool(row["o_success"]),
    )


class AsyncKnowledge:
    """Runs :class:`Knowledge` calls on one thread so the event loop never waits on SQLite."""

    def __init__(self, path: Path | str) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="x0-knowledge")
        self._path = Path(path)
        self._kb: Knowledge | None = None

    async def open(self) -> None:
        self._kb = await self._run(Knowledge, self._path)

    async def call(self, fn: Callable[[Knowledge], T]) -> T:
        """``await kb.call(lambda k: k.incidents())``."""
        kb = self._kb
        if kb is None:
            raise ConfigError("the knowledge base is not open", fix="await AsyncKnowledge.open()")
        return await self._run(fn, kb)

    async def run(self, method: Callable[..., T], *args: Any) -> T:
        """``await kb.run(Knowledge.close_incident, incident, "healed", now)``."""
        return await self.call(lambda k: method(k, *args))

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def close(self) -> None:
        if self._kb is not None:
            await self._run(Knowledge.close, self._kb)
            self._kb = None
        self._pool.shutdown(wait=False)
