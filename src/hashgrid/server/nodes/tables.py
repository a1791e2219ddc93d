from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Integer, String, false
from sqlalchemy.orm import Mapped, mapped_column

from hashgrid.contracts.states import NodeAdmission, NodePower, NodeStatus
from hashgrid.server.db.base import Base, UTCDateTime, new_id, utcnow


class Node(Base):
    __tablename__ = "nodes"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default=NodeStatus.READY)
    credential_hash: Mapped[str] = mapped_column(String(64), unique=True)
    fingerprint: Mapped[dict[str, Any]] = mapped_column(JSON)
    capacity_bytes: Mapped[int] = mapped_column(BigInteger)
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Written when the status changes, not on every beat: liveness itself lives in memory.
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Cordoned: no new replicas here. Draining (a deadline is set): cordoned, and its replicas
    # leave the gateways' view at once and stop by the deadline.
    cordoned: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Powered off while idle, or being woken (`NodePower`); set by the power and placement
    # reconcilers, carried out by the site agent through the node's BMC. Indexed: the liveness
    # reconciler looks for waking nodes every pass.
    power: Mapped[str] = mapped_column(
        String(16), default=NodePower.ON, server_default="on", index=True
    )
    power_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # Power-offs its BMC refused in a row: each doubles the idle wait before the next try.
    power_refusals: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    drain_deadline: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # What the node's model store holds, as its agent last reported it: a list of
    # `contracts.agent.Holding` as JSON ({"source", "size_bytes", "sha256", "last_used"}), most
    # recently used first; written only when it changes. The scheduler prefers nodes that hold
    # a model.
    holdings: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, default=None)
    # The short benchmark and hardware check the agent runs after joining, and the capacity
    # class the server derives from it (None until the agent has reported one).
    verification: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    capacity_class: Mapped[str | None] = mapped_column(String(32), default=None)
    # Whether the node may take customer traffic (`NodeAdmission`) and why it is where it is;
    # written only by `nodes/admission.py: set_admission`. Indexed: placement and the gateways'
    # view read admitted nodes only.
    admission: Mapped[str] = mapped_column(
        String(16), default=NodeAdmission.PENDING, server_default="pending", index=True
    )
    admission_reason: Mapped[str | None] = mapped_column(String(2000), default=None)
