from datetime import datetime

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from hashgrid.contracts.states import ReplicaStatus
from hashgrid.server.db.base import Base, UTCDateTime, new_id, utcnow


class Deployment(Base):
    __tablename__ = "deployments"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    # None: an external deployment, served by `endpoint` rather than by replicas on nodes.
    model_id: Mapped[str | None] = mapped_column(ForeignKey("catalog_models.id"), index=True)
    replicas: Mapped[int] = mapped_column(Integer)  # wanted now: the autoscaler moves it
    # Autoscaling bounds; equal: a fixed size. See scheduler/autoscale.py for the rest.
    min_replicas: Mapped[int] = mapped_column(Integer)
    max_replicas: Mapped[int] = mapped_column(Integer)
    target_load: Mapped[float] = mapped_column(Float, default=8.0, server_default="8")
    ttft_target_ms: Mapped[float | None] = mapped_column(Float, default=None)
    idle_s: Mapped[float] = mapped_column(Float, default=300.0, server_default="300")
    regions: Mapped[list[str]] = mapped_column(JSON, default=list)
    tier: Mapped[str] = mapped_column(String(8))
    engine: Mapped[str | None] = mapped_column(String(32), default=None)  # None: the model's
    tensor_parallel_size: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    gpu_type: Mapped[str | None] = mapped_column(String(100), default=None)  # in the GPU name
    # Grows with each change of what replicas run (model, engine, GPUs, regions): replicas of
    # an older one are rolled over to it (scheduler/placement.py).
    generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Why replicas are missing, as the placement reconciler last saw it; None when all placed.
    condition: Mapped[str | None] = mapped_column(Text, default=None)
    # An external deployment (bring your own endpoint): an OpenAI-compatible server run outside
    # hashgrid, its base URL, and the site it is routed as part of. Placement and agents skip it.
    endpoint: Mapped[str | None] = mapped_column(String(500), default=None)
    site_id: Mapped[str | None] = mapped_column(ForeignKey("sites.id"), default=None)
    task: Mapped[str | None] = mapped_column(String(16), default=None)  # None: the model's
    # None: public, in the platform's catalog (every customer's keys may call it); else private
    # to this customer organization (only its keys see and call it).
    customer_id: Mapped[str | None] = mapped_column(
        ForeignKey("organizations.id"), index=True, default=None
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Replica(Base):
    __tablename__ = "replicas"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    # No FK: a replica outlives its deployment until its agent has stopped it.
    deployment_id: Mapped[str] = mapped_column(String(32), index=True)
    node_id: Mapped[str] = mapped_column(ForeignKey("nodes.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default=ReplicaStatus.SCHEDULED, index=True)
    memory_bytes: Mapped[int] = mapped_column(BigInteger)
    # What it runs, fixed when placed: a rolling change moves the deployment, not its replicas.
    generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    model_id: Mapped[str | None] = mapped_column(String(32), default=None)
    engine: Mapped[str | None] = mapped_column(String(32), default=None)
    # NVML indices of the GPUs the replica runs on; None or empty: CPU.
    gpus: Mapped[list[int] | None] = mapped_column(JSON, default=None)
    endpoint: Mapped[str | None] = mapped_column(String(500), default=None)
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    # Placed for this compute contract (server/contracts/): reserved for its customer while
    # the contract is active. No FK: the scheduler reads it as a label.
    contract_id: Mapped[str | None] = mapped_column(String(32), index=True, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DeploymentEvent(Base):
    """Something that happened to a deployment, in words: what `deployments show` lists."""

    __tablename__ = "deployment_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # No FK: events outlive their deployment until they age out.
    deployment_id: Mapped[str] = mapped_column(String(32), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    message: Mapped[str] = mapped_column(Text)
