"""What the agent keeps on disk of each engine it runs, one file per replica under
`<home>/engines/`, so that an agent started after a crash finds the engines left running."""

from pathlib import Path

import structlog
from pydantic import BaseModel, ValidationError

from hashgrid.common.paths import write_atomic

log = structlog.get_logger("hashgrid.agent.records")

# Set in each engine's environment to the path of its record: it marks the process as an engine
# of this agent home even when the agent died before writing the record.
ENGINE_MARK = "HASHGRID_ENGINE_RECORD"


class EngineRecord(BaseModel):
    replica_id: str
    pid: int
    create_time: float  # with the pid, names the process: a recycled pid has another
    port: int
    endpoint: str
    engine: str
    model_source: str
    argv: list[str]
    log_path: Path


class EngineRecords:
    """The records under `root`, written atomically: a crash leaves the old file or the new."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, replica_id: str) -> Path:
        if not replica_id or not replica_id.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"not a replica id: {replica_id!r}")
        return self.root / f"{replica_id}.json"

    def save(self, record: EngineRecord) -> None:
        write_atomic(self.path(record.replica_id), record.model_dump_json(indent=1))

    def remove(self, replica_id: str) -> None:
        self.path(replica_id).unlink(missing_ok=True)

    def get(self, replica_id: str) -> EngineRecord | None:
        return _read(self.path(replica_id))

    def all(self) -> list[EngineRecord]:
        """Every readable record."""
        records = (_read(path) for path in sorted(self.root.glob("*.json")))
        return [r for r in records if r is not None]


def _read(path: Path) -> EngineRecord | None:
    """The record at `path`; an unreadable one is deleted (its engine is found by its mark)."""
    try:
        return EngineRecord.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValidationError) as e:
        log.warning("dropping an unreadable engine record", path=str(path), error=str(e))
        path.unlink(missing_ok=True)
        return None
