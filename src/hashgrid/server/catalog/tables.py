from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from hashgrid.server.db.base import Base, UTCDateTime, new_id, utcnow


class CatalogModel(Base):
    """A model in the catalog (never called just "Model": that word is the product's)."""

    __tablename__ = "catalog_models"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    source: Mapped[str] = mapped_column(String(2000))
    format: Mapped[str] = mapped_column(String(16))
    engine: Mapped[str] = mapped_column(String(32))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    context_length: Mapped[int] = mapped_column(Integer)
    # What its engines serve: "generate" (chat and completions) or "embed" (embeddings).
    task: Mapped[str] = mapped_column(String(16), default="generate", server_default="generate")
    # The weights' SHA-256: a node's model store checks downloads against it (None: size only).
    sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    # {"layers", "kv_heads", "head_dim", "kv_bytes_per_element"}: sizes the KV cache; None:
    # estimated from the weights' size.
    architecture: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
