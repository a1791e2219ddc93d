"""Who a caller is, once proved: its `Principal`, and the roles the policy table names.

Kept apart from `auth.py` (how a caller proves it) so that what only needs to know who is
calling (the audit recorder, services) does not depend on how credentials are checked.
"""

from dataclasses import dataclass
from enum import StrEnum

from hashgrid.contracts.api.accounts import MemberRole
from hashgrid.contracts.api.organizations import OrgKind
from hashgrid.server.organizations.service import PLATFORM_OPERATOR
from hashgrid.server.organizations.tables import Organization

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class CallerRole(StrEnum):
    """Every kind of caller the policy table names."""

    ANONYMOUS = "anonymous"
    CUSTOMER_MEMBER = "customer member"
    CUSTOMER_ADMIN = "customer admin"
    OPERATOR_MEMBER = "operator member"
    OPERATOR_ADMIN = "operator admin"
    PLATFORM_ADMIN = "platform admin"  # an admin of the platform organization, or the admin token
    NODE = "node"
    GATEWAY = "gateway"


ROLE_IN = {
    (OrgKind.CUSTOMER, MemberRole.MEMBER): CallerRole.CUSTOMER_MEMBER,
    (OrgKind.CUSTOMER, MemberRole.ADMIN): CallerRole.CUSTOMER_ADMIN,
    (OrgKind.OPERATOR, MemberRole.MEMBER): CallerRole.OPERATOR_MEMBER,
    (OrgKind.OPERATOR, MemberRole.ADMIN): CallerRole.OPERATOR_ADMIN,
}


def role_in(organization: Organization, role: MemberRole) -> CallerRole:
    """What a member with `role` in `organization` is to the policy."""
    if organization.name == PLATFORM_OPERATOR and role == MemberRole.ADMIN:
        return CallerRole.PLATFORM_ADMIN
    return ROLE_IN[(OrgKind(organization.kind), role)]


@dataclass(frozen=True)
class Principal:
    """A caller that proved who it is (or `ANONYMOUS`)."""

    role: CallerRole
    organization_id: str | None = None  # a user's organization; None for tokens and nodes
    organization_kind: OrgKind | None = None
    user_id: str | None = None
    token_id: str | None = None  # the personal or access token it called with
    session_id: str | None = None  # the browser session it called with
    node_id: str | None = None
    credential_hash: str | None = None  # a node's

    @property
    def sees_all(self) -> bool:
        return self.role == CallerRole.PLATFORM_ADMIN

    @property
    def scope(self) -> str | None:
        """The organization whose data this caller sees; None: every organization's."""
        return None if self.sees_all else self.organization_id

    @property
    def is_admin(self) -> bool:
        """An admin of its organization (or the platform)."""
        return self.role in ADMINS

    @property
    def credential_id(self) -> str:
        """The id of the credential it called with (token, session or node)."""
        return self.token_id or self.session_id or self.node_id or ""

    @property
    def actor(self) -> str:
        """Who made a change, as the audit log writes it."""
        if self.user_id is not None:
            return f"user:{self.user_id}"
        if self.node_id is not None:
            return f"node:{self.node_id}"
        return f"token:{self.token_id}"


ADMINS = frozenset(
    {CallerRole.CUSTOMER_ADMIN, CallerRole.OPERATOR_ADMIN, CallerRole.PLATFORM_ADMIN}
)
ANONYMOUS = Principal(CallerRole.ANONYMOUS)


@dataclass(frozen=True)
class NodePrincipal:
    """A node that proved itself with its credential."""

    id: str
    credential_hash: str
