"""Every system the comparison knows: its adapter module, storage engine, and whether it is Conveyor."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class System:
    """One row of the comparison."""

    key: str
    module: str
    engine: str
    label: str

    @property
    def is_conveyor(self) -> bool:
        """True for Conveyor's own rows (run from the main venv)."""
        return self.key.startswith("conveyor")

    @property
    def tuned(self) -> bool:
        """True for Conveyor's hand-tuned rows (``conveyor-<engine>-tuned``)."""
        return self.key.endswith("-tuned")

    @property
    def default_key(self) -> str:
        """The key of the same system at default settings."""
        return self.key.removesuffix("-tuned")


SYSTEMS: dict[str, System] = {
    s.key: s
    for s in (
        System("conveyor-sqlite", "bench.peers.conveyor_peer", "sqlite", "Conveyor (SQLite)"),
        System("conveyor-postgres", "bench.peers.conveyor_peer", "postgres", "Conveyor (PostgreSQL)"),
        System("conveyor-redis", "bench.peers.conveyor_peer", "redis", "Conveyor (Redis)"),
        # The same at hand-tuned settings (conveyor_peer.CONFIG), to report default ÷ tuned.
        System("conveyor-sqlite-tuned", "bench.peers.conveyor_peer", "sqlite", "Conveyor (SQLite, tuned)"),
        System(
            "conveyor-postgres-tuned", "bench.peers.conveyor_peer", "postgres", "Conveyor (PostgreSQL, tuned)"
        ),
        System("conveyor-redis-tuned", "bench.peers.conveyor_peer", "redis", "Conveyor (Redis, tuned)"),
        System("celery", "bench.peers.celery_peer", "redis", "Celery (Redis)"),
        System("rq", "bench.peers.rq_peer", "redis", "RQ (Redis)"),
        System("dramatiq", "bench.peers.dramatiq_peer", "redis", "Dramatiq (Redis)"),
        System("huey-sqlite", "bench.peers.huey_peer", "sqlite", "Huey (SQLite)"),
        System("huey-redis", "bench.peers.huey_peer", "redis", "Huey (Redis)"),
        System("arq", "bench.peers.arq_peer", "redis", "arq (Redis)"),
        System("saq", "bench.peers.saq_peer", "redis", "SAQ (Redis)"),
        System("procrastinate", "bench.peers.procrastinate_peer", "postgres", "Procrastinate (PostgreSQL)"),
    )
}
