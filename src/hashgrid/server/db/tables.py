"""Every table, imported in one place so metadata (and Alembic) see the whole schema."""

from hashgrid.server.access.tables import AccessToken
from hashgrid.server.accounts.tables import BrowserSession, Invite, Membership, PersonalToken, User
from hashgrid.server.audit.tables import AuditEntry
from hashgrid.server.billing.tables import Invoice, InvoiceLineRow, InvoiceNumber
from hashgrid.server.catalog.tables import CatalogModel
from hashgrid.server.contracts.tables import ComputeContract, ContractHour
from hashgrid.server.db.base import Base
from hashgrid.server.deployments.tables import Deployment, Replica
from hashgrid.server.keys.tables import ApiKey
from hashgrid.server.nodes.tables import Node
from hashgrid.server.organizations.tables import Organization
from hashgrid.server.power.tables import Curtailment, PlannedInterval, SitePower
from hashgrid.server.prices.tables import DiscountRow, PriceRow
from hashgrid.server.reliability.tables import ReliabilityScore, SpotCheckRow
from hashgrid.server.sites.tables import JoinToken, Site
from hashgrid.server.usage.tables import RejectedUsageRow, UsageRecordRow

__all__ = [
    "AccessToken",
    "ApiKey",
    "AuditEntry",
    "Base",
    "BrowserSession",
    "CatalogModel",
    "ComputeContract",
    "ContractHour",
    "Curtailment",
    "Deployment",
    "DiscountRow",
    "Invite",
    "Invoice",
    "InvoiceLineRow",
    "InvoiceNumber",
    "JoinToken",
    "Membership",
    "Node",
    "Organization",
    "PersonalToken",
    "PlannedInterval",
    "PriceRow",
    "RejectedUsageRow",
    "ReliabilityScore",
    "Replica",
    "Site",
    "SitePower",
    "SpotCheckRow",
    "UsageRecordRow",
    "User",
]
