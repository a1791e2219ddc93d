from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from hashgrid.contracts.api.common import Name, Out
from hashgrid.contracts.api.organizations import OrgKind

PASSWORD_MIN = 10
PASSWORD_MAX = 200


class MemberRole(StrEnum):
    """A user's role in one organization. An admin of the platform organization is the
    platform admin; see `server/policy.py` for what each may do."""

    ADMIN = "admin"  # manages the organization: its members, keys or sites
    MEMBER = "member"  # reads what the organization may see


Email = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, to_lower=True, max_length=254, pattern=r"^[^@\s\x00]+@[^@\s\x00]+$"
    ),
]
Password = Annotated[str, StringConstraints(min_length=PASSWORD_MIN, max_length=PASSWORD_MAX)]
Secret = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$")]
PersonName = Annotated[str, StringConstraints(max_length=100, pattern=r"^[^\x00]*$")]
Days = Annotated[int, Field(ge=1, le=366, description="Days until it expires")]


class SignUp(BaseModel):
    """A new organization and its first admin."""

    model_config = ConfigDict(extra="forbid")

    email: Email
    password: Password
    name: PersonName = ""
    organization: Name
    kind: OrgKind = Field(description="customer: sends requests; operator: runs sites")
    invite: Secret | None = Field(None, description="A sign-up invite code (invite-only sign-up)")


class SignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email
    password: Annotated[str, StringConstraints(min_length=1, max_length=PASSWORD_MAX)]
    organization: Name | None = Field(None, description="Which of the user's organizations")
    token_name: Name = "cli"
    expires_days: Days = 90


class InviteAccept(BaseModel):
    """Join the invite's organization: as a new user (this password is set) or an existing one
    (this password must be theirs)."""

    model_config = ConfigDict(extra="forbid")

    code: Secret
    email: Email
    password: Password
    name: PersonName = ""


class UserOut(Out):
    id: str
    email: str
    name: str


class SignedIn(BaseModel):
    """A personal token for the user in one organization: shown in this answer only."""

    token: str
    token_id: str
    expires_at: datetime
    user: UserOut
    organization: str
    kind: OrgKind
    role: MemberRole


class SessionStarted(BaseModel):
    """The session is in an HttpOnly cookie; `csrf_token` goes in `x-csrf-token` on each change."""

    csrf_token: str
    expires_at: datetime
    user: UserOut
    organization: str
    kind: OrgKind
    role: MemberRole


class MembershipOut(BaseModel):
    organization: str
    organization_id: str
    kind: OrgKind
    role: MemberRole


class Me(BaseModel):
    user: UserOut | None  # None for the admin token
    organization: str | None  # the organization this credential acts in
    kind: OrgKind | None
    role: str  # as the policy knows it: "customer admin", "platform admin", ...
    memberships: list[MembershipOut]


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    role: MemberRole | None = Field(None, description="Default: the caller's own role")
    expires_days: Days = 90


class PersonalTokenOut(Out):
    id: str
    name: str
    prefix: str
    organization_id: str
    role: MemberRole
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class PersonalTokenCreated(PersonalTokenOut):
    token: str  # shown in this answer only


class MemberOut(BaseModel):
    user_id: str
    email: str
    name: str
    role: MemberRole
    joined_at: datetime


class RoleChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: MemberRole


class InviteCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: MemberRole = MemberRole.MEMBER
    expires_days: Days = 7


class SignupInviteCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: OrgKind
    expires_days: Days = 7


class InviteCreated(BaseModel):
    code: str  # one-time; shown in this answer only
    organization: str | None  # None: a sign-up invite
    kind: OrgKind | None
    role: MemberRole
    expires_at: datetime
