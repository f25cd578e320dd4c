"""The Knowledge database schema, one script per version (applied in order)."""

from __future__ import annotations

__all__ = ["MIGRATIONS"]

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE incidents (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL,
        kind TEXT NOT NULL,
        root_cause TEXT NOT NULL,
        opened_at REAL NOT NULL,
        closed_at REAL,
        state TEXT NOT NULL,
        confidence REAL NOT NULL,
        symptom TEXT NOT NULL,
        explanation TEXT NOT NULL,
        source TEXT NOT NULL
    );
    CREATE INDEX incidents_open ON incidents (key) WHERE closed_at IS NULL;
    CREATE TABLE symptoms (
        id INTEGER PRIMARY KEY,
        incident_id INTEGER NOT NULL REFERENCES incidents (id),
        ts REAL NOT NULL,
        kind TEXT NOT NULL,
        entity TEXT NOT NULL,
        metric TEXT NOT NULL,
        value REAL NOT NULL,
        baseline REAL NOT NULL,
        scale REAL NOT NULL,
        score REAL NOT NULL
    );
    CREATE INDEX symptoms_incident ON symptoms (incident_id);
    CREATE TABLE actions (
        id INTEGER PRIMARY KEY,
        incident_id INTEGER NOT NULL REFERENCES incidents (id),
        key TEXT NOT NULL,
        kind TEXT NOT NULL,
        target TEXT NOT NULL,
        factor REAL NOT NULL,
        diagnosis_kind TEXT NOT NULL,
        planned_at REAL NOT NULL,
        executed_at REAL,
        state TEXT NOT NULL,
        score REAL NOT NULL,
        benefit REAL NOT NULL,
        disruption REAL NOT NULL,
        effectiveness REAL NOT NULL,
        prediction TEXT NOT NULL,
        error TEXT,
        UNIQUE (incident_id, key)
    );
    CREATE TABLE outcomes (
        id INTEGER PRIMARY KEY,
        action_id INTEGER NOT NULL UNIQUE REFERENCES actions (id),
        checked_at REAL NOT NULL,
        success INTEGER NOT NULL,
        detail TEXT NOT NULL,
        observed TEXT NOT NULL
    );
    CREATE TABLE baselines (
        kind TEXT NOT NULL,
        entity TEXT NOT NULL,
        metric TEXT NOT NULL,
        mean REAL NOT NULL,
        mad REAL NOT NULL,
        n INTEGER NOT NULL,
        updated_at REAL NOT NULL,
        PRIMARY KEY (kind, entity, metric)
    );
    """,
)
"""Schema versions; entry ``i`` takes a database from version ``i`` to ``i + 1``."""
