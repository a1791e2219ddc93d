"""Users, their memberships in organizations, and the credentials they sign in with."""
